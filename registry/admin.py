"""Admin for the registry's reference data. Lifecycle moves go through the pages and API.

Hardware, prices, pools, protocols, registration requirements and retirement policies are
edited here by platform admins; versions, benchmarks, assessments and retirement cases are
read-only here because their changes must go through the services (history, decisions, the
gate, the cloud actions).
"""

from django import forms
from django.contrib import admin

from governance.admin import PlatformAdminOnly
from governance.policy import CURRENCY_HELP, currency_code_parse
from registry.models import (
    BenchmarkProtocol,
    CapacityAssessment,
    CapacityPool,
    CostTierApproval,
    EfficiencyBenchmark,
    HardwarePrice,
    HardwareProfile,
    ModelVersion,
    PoolUsage,
    RegisteredModel,
    RegistrationRequirement,
    RequirementWaiver,
    RetirementCase,
    RetirementExemption,
    RetirementLink,
    RetirementPolicy,
    RetirementStep,
)


class ReadOnly(PlatformAdminOnly):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class HardwarePriceInline(admin.TabularInline):
    model = HardwarePrice
    extra = 1


@admin.register(HardwareProfile)
class HardwareProfileAdmin(PlatformAdminOnly):
    list_display = ("name", "accelerator", "accelerator_count", "accelerator_memory_gb")
    search_fields = ("name", "accelerator")
    inlines = [HardwarePriceInline]


@admin.register(HardwarePrice)
class HardwarePriceAdmin(PlatformAdminOnly):
    list_display = (
        "hardware_profile",
        "provider",
        "instance_type",
        "region",
        "hourly_price",
        "currency",
        "effective_from",
        "source",
    )
    list_filter = ("provider", "source")
    list_select_related = ("hardware_profile",)


@admin.register(CapacityPool)
class CapacityPoolAdmin(PlatformAdminOnly):
    list_display = ("code", "name", "provider", "hardware_profile", "accelerator_count", "owner")
    list_select_related = ("hardware_profile", "owner")


class CostTierInline(admin.TabularInline):
    model = CostTierApproval
    extra = 1


@admin.register(RegistrationRequirement)
class RegistrationRequirementAdmin(PlatformAdminOnly):
    list_display = (
        "name",
        "business_unit",
        "risk_tier",
        "max_benchmark_age_days",
        "assessment_required",
    )
    list_select_related = ("business_unit",)
    inlines = [CostTierInline]


@admin.register(BenchmarkProtocol)
class BenchmarkProtocolAdmin(ReadOnly):
    list_display = ("name", "revision", "status", "hardware_profile", "approved_at")
    list_filter = ("status",)


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ReadOnly):
    list_display = ("name", "business_unit", "task", "source", "risk_tier")
    list_filter = ("task", "source", "risk_tier", "business_unit")
    list_select_related = ("business_unit",)
    search_fields = ("name",)


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnly):
    list_display = ("model", "version", "state", "precision", "hardware_profile")
    list_filter = ("state", "precision")
    list_select_related = ("model", "hardware_profile")


@admin.register(EfficiencyBenchmark)
class EfficiencyBenchmarkAdmin(ReadOnly):
    list_display = ("version", "tool", "protocol", "hardware_profile", "measured_at")
    list_select_related = ("version__model", "protocol", "hardware_profile")


@admin.register(CapacityAssessment)
class CapacityAssessmentAdmin(ReadOnly):
    list_display = ("version", "status", "replicas", "monthly_cost", "currency", "submitted_at")
    list_filter = ("status",)
    list_select_related = ("version__model",)


@admin.register(RequirementWaiver)
class RequirementWaiverAdmin(ReadOnly):
    list_display = ("version", "requirement", "expires_at", "granted_by")
    list_select_related = ("version__model", "granted_by")


@admin.register(PoolUsage)
class PoolUsageAdmin(PlatformAdminOnly):
    """Pool usage comes in through uploads, the API and the endpoint derivation, which check
    it; here a platform admin reads it and may delete a wrong row."""

    list_display = ("pool", "business_unit", "day", "gpu_hours", "source")
    list_filter = ("source", "pool")
    list_select_related = ("pool", "business_unit")
    search_fields = ("pool__code", "business_unit__code")
    date_hierarchy = "day"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- Retirement -------------------------------------------------------------------------------


class RetirementPolicyForm(forms.ModelForm):
    """The JSON fields and numbers the evaluation relies on, checked before they are saved:
    one bad policy must not stop every policy's evaluation."""

    class Meta:
        model = RetirementPolicy
        fields = "__all__"  # noqa: DJ007 - every field of the policy is edited here

    def _strings(self, name: str) -> list[str]:
        value = self.cleaned_data.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise forms.ValidationError('A list of names, e.g. ["prod", "canary"].')
        return [v.strip() for v in value]

    def clean_providers(self):
        return self._strings("providers")

    def clean_environments(self):
        return self._strings("environments")

    def clean_tags(self):
        value = self.cleaned_data.get("tags") or {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise forms.ValidationError('Tags are {"key": "value", ...} with text values.')
        return value

    def clean_currency(self):
        try:
            return currency_code_parse(self.cleaned_data["currency"])
        except ValueError as exc:
            raise forms.ValidationError(CURRENCY_HELP) from exc

    def clean(self):
        data = super().clean()
        if (data.get("min_monthly_cost") or 0) < 0:
            self.add_error("min_monthly_cost", "A minimum cost is 0 or more.")
        if (data.get("max_daily_invocations") or 0) < 1:
            self.add_error("max_daily_invocations", "Idle means fewer than at least 1 request.")
        if data.get("action") == "scale_min" and (data.get("min_instances") or 0) < 1:
            self.add_error("min_instances", "Scaling to the minimum keeps at least 1 instance.")
        if (data.get("reminder_days") or 0) >= (data.get("grace_days") or 0) > 0:
            self.add_error("reminder_days", "The reminder comes before the grace period ends.")
        return data


@admin.register(RetirementPolicy)
class RetirementPolicyAdmin(PlatformAdminOnly):
    form = RetirementPolicyForm
    """Policies are data: which endpoints, what idle means, the action. Only platform admins
    reach this page, so only they turn a policy's dry run off."""

    list_display = (
        "name",
        "is_active",
        "action",
        "dry_run",
        "window_days",
        "max_daily_invocations",
        "min_monthly_cost",
        "currency",
        "grace_days",
    )
    list_filter = ("is_active", "action", "dry_run")
    search_fields = ("name",)
    filter_horizontal = ("business_units",)


class RetirementStepInline(admin.TabularInline):
    model = RetirementStep
    extra = 0
    fields = ("at", "kind", "by", "dry_run", "succeeded", "text", "request", "response")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RetirementCase)
class RetirementCaseAdmin(ReadOnly):
    list_display = (
        "pk",
        "kind",
        "endpoint",
        "model",
        "business_unit",
        "status",
        "opened_at",
        "grace_ends_at",
        "monthly_cost",
        "currency",
        "decision",
    )
    list_filter = ("status", "kind", "policy", "business_unit")
    list_select_related = ("endpoint", "model", "business_unit")
    search_fields = ("endpoint__name", "model__name", "summary")
    date_hierarchy = "opened_at"
    inlines = [RetirementStepInline]


@admin.register(RetirementStep)
class RetirementStepAdmin(ReadOnly):
    list_display = ("case", "at", "kind", "by", "dry_run", "succeeded")
    list_filter = ("kind", "dry_run", "succeeded")
    list_select_related = ("case__endpoint", "case__model", "by")
    date_hierarchy = "at"


@admin.register(RetirementExemption)
class RetirementExemptionAdmin(ReadOnly):
    list_display = ("endpoint", "until", "granted_by", "case", "created_at", "revoked_at")
    list_select_related = ("endpoint", "granted_by", "case__endpoint", "case__model")
    search_fields = ("endpoint__name", "reason")


@admin.register(RetirementLink)
class RetirementLinkAdmin(ReadOnly):
    list_display = ("case", "person", "action", "created_at", "expires_at", "used_at")
    list_filter = ("action",)
    list_select_related = ("case__endpoint", "case__model", "person")
