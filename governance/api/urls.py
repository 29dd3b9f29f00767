"""The one DRF router: every app's viewsets under /api/v1/."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from costs.api import AllocationRuleViewSet, BillingImportViewSet, ChargebackView, CostRowViewSet
from governance.api.views import BusinessUnitViewSet

router = DefaultRouter()
router.register("business-units", BusinessUnitViewSet, basename="business-unit")
router.register("costs", CostRowViewSet, basename="cost")
router.register("imports", BillingImportViewSet, basename="import")
router.register("allocation-rules", AllocationRuleViewSet, basename="allocation-rule")

urlpatterns = [
    path("chargeback/", ChargebackView.as_view(), name="chargeback"),
    path("", include(router.urls)),
]
