"""The one DRF router: every app's viewsets under /api/v1/."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from costs.api import (
    AllocationRuleViewSet,
    BillingImportViewSet,
    BudgetViewSet,
    ChargebackView,
    CloudAccountViewSet,
    CostRowViewSet,
    SyncRunViewSet,
)
from costs.forecast_api import (
    BusinessEventViewSet,
    CostAnomalyViewSet,
    ForecastExclusionViewSet,
    ForecastViewSet,
)
from costs.planning_api import (
    CapacityPlanViewSet,
    CommitmentOfferViewSet,
    CommitmentRecommendationViewSet,
    PlanLineViewSet,
    PlanningCycleViewSet,
)
from costs.statement_api import (
    CapacityQuotaViewSet,
    ReconciliationView,
    StatementCloseView,
    StatementDetailView,
    StatementListView,
    StatementPublishView,
    StatementUnpublishView,
)
from costs.tco_api import TcoCalculateView, TcoScenarioViewSet
from governance.api.audit import AuditEntryViewSet
from governance.api.tokens import ApiTokenViewSet
from governance.api.views import (
    ApprovalRequestViewSet,
    BusinessUnitViewSet,
    DecisionViewSet,
    DeploymentFreezeViewSet,
    ServiceLevelObjectiveViewSet,
    SloMeasurementViewSet,
)
from incidents.api import (
    ActionItemViewSet,
    ContributingFactorViewSet,
    IncidentViewSet,
    PostMortemViewSet,
    RunbookViewSet,
)
from registry.api import (
    BenchmarkProtocolViewSet,
    CapacityAssessmentViewSet,
    CapacityPoolViewSet,
    EfficiencyBenchmarkViewSet,
    HardwareProfileViewSet,
    ModelVersionViewSet,
    PoolUsageViewSet,
    RegisteredModelViewSet,
    RequirementWaiverViewSet,
)
from registry.retirement_api import RetirementCaseViewSet, RetirementPolicyViewSet

router = DefaultRouter()
router.register("business-units", BusinessUnitViewSet, basename="business-unit")
router.register("approval-requests", ApprovalRequestViewSet, basename="approval-request")
router.register("decisions", DecisionViewSet, basename="decision")
router.register("freezes", DeploymentFreezeViewSet, basename="freeze")
router.register("slos", ServiceLevelObjectiveViewSet, basename="slo")
router.register("slo-measurements", SloMeasurementViewSet, basename="slo-measurement")
router.register("audit", AuditEntryViewSet, basename="audit-entry")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("costs", CostRowViewSet, basename="cost")
router.register("imports", BillingImportViewSet, basename="import")
router.register("allocation-rules", AllocationRuleViewSet, basename="allocation-rule")
router.register("budgets", BudgetViewSet, basename="budget")
router.register("cloud-accounts", CloudAccountViewSet, basename="cloud-account")
router.register("sync-runs", SyncRunViewSet, basename="sync-run")
router.register("models", RegisteredModelViewSet, basename="model")
router.register("model-versions", ModelVersionViewSet, basename="model-version")
router.register("benchmarks", EfficiencyBenchmarkViewSet, basename="benchmark")
router.register("assessments", CapacityAssessmentViewSet, basename="assessment")
router.register("waivers", RequirementWaiverViewSet, basename="waiver")
router.register("benchmark-protocols", BenchmarkProtocolViewSet, basename="benchmark-protocol")
router.register("hardware-profiles", HardwareProfileViewSet, basename="hardware-profile")
router.register("capacity-pools", CapacityPoolViewSet, basename="capacity-pool")
router.register("pool-usage", PoolUsageViewSet, basename="pool-usage")
router.register("retirement-cases", RetirementCaseViewSet, basename="retirement-case")
router.register("retirement-policies", RetirementPolicyViewSet, basename="retirement-policy")

router.register("quotas", CapacityQuotaViewSet, basename="quota")
router.register("forecasts", ForecastViewSet, basename="forecast")
router.register("anomalies", CostAnomalyViewSet, basename="anomaly")
router.register("business-events", BusinessEventViewSet, basename="business-event")
router.register("forecast-exclusions", ForecastExclusionViewSet, basename="forecast-exclusion")
router.register("planning-cycles", PlanningCycleViewSet, basename="planning-cycle")
router.register("capacity-plans", CapacityPlanViewSet, basename="capacity-plan")
router.register("plan-lines", PlanLineViewSet, basename="plan-line")
router.register("commitment-offers", CommitmentOfferViewSet, basename="commitment-offer")
router.register(
    "commitment-recommendations",
    CommitmentRecommendationViewSet,
    basename="commitment-recommendation",
)
router.register("incidents", IncidentViewSet, basename="incident")
router.register("postmortems", PostMortemViewSet, basename="postmortem")
router.register("contributing-factors", ContributingFactorViewSet, basename="contributing-factor")
router.register("action-items", ActionItemViewSet, basename="action-item")
router.register("runbooks", RunbookViewSet, basename="runbook")
router.register("tco-scenarios", TcoScenarioViewSet, basename="tco-scenario")

urlpatterns = [
    path("tco/calculate/", TcoCalculateView.as_view(), name="tco-calculate"),
    path("chargeback/", ChargebackView.as_view(), name="chargeback"),
    path("statements/", StatementListView.as_view(), name="statement-list"),
    path(
        "statements/<str:month>/publish/", StatementPublishView.as_view(), name="statement-publish"
    ),
    path(
        "statements/<str:month>/unpublish/",
        StatementUnpublishView.as_view(),
        name="statement-unpublish",
    ),
    path("statements/<str:month>/close/", StatementCloseView.as_view(), name="statement-close"),
    path(
        "statements/<str:month>/<str:code>/",
        StatementDetailView.as_view(),
        name="statement-detail",
    ),
    path("reconciliation/", ReconciliationView.as_view(), name="reconciliation"),
    path("", include(router.urls)),
]
