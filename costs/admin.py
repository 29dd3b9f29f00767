from django import forms
from django.contrib import admin, messages

from costs import retention, services
from costs.models import (
    AllocationPolicy,
    AllocationRule,
    BillingImport,
    Budget,
    BudgetAlert,
    CapacityQuota,
    ChargebackPeriod,
    CloudAccount,
    CommitmentOffer,
    CostRow,
    RetentionPolicy,
    RetentionRun,
    SharedPool,
    SharedPoolShare,
    SlaPenaltyPolicy,
    Statement,
    StatementLine,
    SyncRun,
    TagSet,
    TcoScenario,
)
from costs.penalties import BandError, bands_parse
from governance.admin import PlatformAdminOnly
from governance.exceptions import DomainError
from governance.policy import CURRENCY_HELP, currency_code_parse


class CostManagerOnly:
    """Cost data in the admin follows Capgov's roles: finance and platform admins only,
    whatever model permissions a staff account has been given."""

    def _allowed(self, request) -> bool:
        return request.user.is_active and request.user.manages_costs

    def has_module_permission(self, request):
        return self._allowed(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return self._allowed(request) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._allowed(request) and super().has_delete_permission(request, obj)


class ReadOnly:
    """Rows written only by the importer (upload page or `import_billing`), never by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BillingImport)
class BillingImportAdmin(ReadOnly, CostManagerOnly, admin.ModelAdmin):
    list_display = (
        "pk",
        "file_name",
        "detected_format",
        "status",
        "rows_read",
        "rows_stored",
        "created_at",
    )
    list_filter = ("status", "detected_format")
    readonly_fields = [f.name for f in BillingImport._meta.fields]


@admin.register(AllocationRule)
class AllocationRuleAdmin(CostManagerOnly, admin.ModelAdmin):
    list_display = ("priority", "tag_key", "tag_values", "business_unit", "is_active")
    list_filter = ("is_active", "business_unit")
    list_select_related = ("business_unit",)
    ordering = ("priority", "pk")

    def save_model(self, request, obj, form, change):
        try:
            services.allocation_rule_save(
                rule=obj,
                business_unit=obj.business_unit,
                tag_key=obj.tag_key,
                tag_values=obj.tag_values,
                priority=obj.priority,
                is_active=obj.is_active,
                description=obj.description,
                by=request.user,
            )
        except DomainError as exc:
            messages.error(request, exc.message)

    def delete_model(self, request, obj):
        services.allocation_rule_delete(rule=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            services.allocation_rule_delete(rule=rule, by=request.user)


@admin.register(TagSet)
class TagSetAdmin(CostManagerOnly, admin.ModelAdmin):
    list_display = ("pk", "__str__", "business_unit", "rule")
    list_filter = ("business_unit",)
    list_select_related = ("business_unit", "rule__business_unit")
    readonly_fields = ("digest", "tags", "business_unit", "rule")


@admin.register(CostRow)
class CostRowAdmin(ReadOnly, CostManagerOnly, admin.ModelAdmin):
    list_display = (
        "usage_date",
        "service_name",
        "sub_account_id",
        "charge_category",
        "billed_cost",
        "currency",
    )
    list_filter = ("source", "charge_category", "currency", "billing_period")
    search_fields = ("resource_id", "service_name", "sub_account_id")
    list_select_related = ("tag_set",)
    show_full_result_count = False


@admin.register(Budget)
class BudgetAdmin(CostManagerOnly, admin.ModelAdmin):
    list_display = (
        "name",
        "business_unit",
        "tag_key",
        "tag_value",
        "amount",
        "currency",
        "basis",
        "freeze_at_percent",
    )
    list_filter = ("business_unit", "currency", "basis")
    list_select_related = ("business_unit",)
    search_fields = ("name", "tag_value")
    readonly_fields = ("created_by", "created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        try:
            services.budget_save(
                budget=obj,
                name=obj.name,
                business_unit=obj.business_unit,
                amount=obj.amount,
                currency=obj.currency,
                basis=obj.basis,
                tag_key=obj.tag_key,
                tag_value=obj.tag_value,
                thresholds=obj.thresholds,
                forecast_thresholds=obj.forecast_thresholds,
                freeze_at_percent=obj.freeze_at_percent,
                first_month=obj.first_month,
                last_month=obj.last_month,
                notify=obj.notify,
                by=request.user,
            )
        except DomainError as exc:
            messages.error(request, exc.message)

    def delete_model(self, request, obj):
        services.budget_delete(budget=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for budget in queryset.select_related("business_unit"):
            services.budget_delete(budget=budget, by=request.user)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnly, CostManagerOnly, admin.ModelAdmin):
    """Written only by the evaluation; the record of who was told what, and when."""

    list_display = ("budget", "month", "measure", "threshold", "spend", "sent_at", "freeze")
    list_filter = ("measure", "month")
    list_select_related = ("budget__business_unit", "freeze__business_unit")
    readonly_fields = [f.name for f in BudgetAlert._meta.fields]


@admin.register(CloudAccount)
class CloudAccountAdmin(PlatformAdminOnly):
    """References to credentials only (a profile, a role ARN, a key file path or env:NAME)."""

    list_display = ("name", "provider", "account_id", "cost_source", "is_active")
    list_filter = ("provider", "is_active")
    fieldsets = (
        (None, {"fields": ("name", "provider", "account_id", "is_active", "cost_source")}),
        (
            "AWS",
            {"fields": ("aws_profile", "aws_role_arn", "aws_region", "cur_bucket", "cur_prefix")},
        ),
        ("Google Cloud", {"fields": ("gcp_credentials", "gcp_project", "bq_table")}),
        ("Attribution", {"fields": ("cost_allocation_tags",)}),
    )

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.base_fields[
            "cost_allocation_tags"
        ].help_text = 'A JSON list of tag or label keys, e.g. ["team", "cost-center"].'
        return form


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnly, PlatformAdminOnly):
    list_display = ("pk", "account", "kind", "status", "rows", "started_at", "finished_at")
    list_filter = ("status", "kind")
    list_select_related = ("account",)


# --- Chargeback policy (finance sets it here) and the statements it produced (read only) ------


class SharedPoolShareInline(admin.TabularInline):
    model = SharedPoolShare
    extra = 0


@admin.register(SharedPool)
class SharedPoolAdmin(CostManagerOnly, admin.ModelAdmin):
    list_display = ("name", "policy", "source_unit", "method")
    list_filter = ("method",)
    filter_horizontal = ("recipients",)
    inlines = [SharedPoolShareInline]


class SharedPoolInline(admin.TabularInline):
    model = SharedPool
    extra = 0
    fields = ("name", "source_unit", "method")
    show_change_link = True


def _first_of_month(value):
    return value.replace(day=1) if value else value


class AllocationPolicyForm(forms.ModelForm):
    class Meta:
        model = AllocationPolicy
        fields = ["name", "first_month", "basis", "description"]

    def clean_first_month(self):
        # A policy "from the 15th" means from that month: months are what it governs.
        return _first_of_month(self.cleaned_data["first_month"])


@admin.register(AllocationPolicy)
class AllocationPolicyAdmin(CostManagerOnly, admin.ModelAdmin):
    form = AllocationPolicyForm
    list_display = ("name", "first_month", "basis")
    inlines = [SharedPoolInline]


class SlaPenaltyPolicyForm(forms.ModelForm):
    class Meta:
        model = SlaPenaltyPolicy
        fields = ["slo", "bands", "consumer", "charge_service", "charge_resource", "is_active"]

    def clean_bands(self):
        try:
            bands_parse(self.cleaned_data["bands"])
        except BandError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return self.cleaned_data["bands"]


@admin.register(SlaPenaltyPolicy)
class SlaPenaltyPolicyAdmin(CostManagerOnly, admin.ModelAdmin):
    form = SlaPenaltyPolicyForm
    list_display = ("slo", "consumer", "charge_service", "charge_resource", "is_active")


class CapacityQuotaForm(forms.ModelForm):
    class Meta:
        model = CapacityQuota
        fields = [
            "business_unit",
            "pool",
            "first_month",
            "last_month",
            "gpu_hours",
            "unit_price",
            "currency",
            "multiplier",
            "source",
        ]

    def clean_first_month(self):
        return _first_of_month(self.cleaned_data["first_month"])

    def clean_last_month(self):
        return _first_of_month(self.cleaned_data.get("last_month"))

    def clean_currency(self):
        try:
            return currency_code_parse(self.cleaned_data["currency"])
        except ValueError as exc:
            raise forms.ValidationError(CURRENCY_HELP) from exc


@admin.register(CapacityQuota)
class CapacityQuotaAdmin(CostManagerOnly, admin.ModelAdmin):
    form = CapacityQuotaForm
    list_display = (
        "business_unit",
        "pool",
        "first_month",
        "last_month",
        "gpu_hours",
        "unit_price",
        "currency",
        "multiplier",
        "source",
    )
    list_filter = ("pool", "source")


class StatementLineInline(admin.TabularInline):
    model = StatementLine
    extra = 0
    fields = ("position", "kind", "label", "amount", "explanation")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ChargebackPeriod)
class ChargebackPeriodAdmin(ReadOnly, CostManagerOnly, admin.ModelAdmin):
    """Published through the Statements page or the API, never edited here."""

    list_display = ("month", "status", "basis", "published_at", "closed_at")


@admin.register(Statement)
class StatementAdmin(ReadOnly, CostManagerOnly, admin.ModelAdmin):
    list_display = ("period", "business_unit", "currency", "total", "notified_at")
    list_filter = ("currency", "period__status")
    list_select_related = ("period", "business_unit")
    inlines = [StatementLineInline]


class RetentionPolicyForm(forms.ModelForm):
    class Meta:
        model = RetentionPolicy
        fields = ["keep_days", "prune", "notes"]

    def clean(self):
        data = super().clean()
        if data.get("prune") and self.instance.data_class == "audit_history":
            raise forms.ValidationError(
                "Audit history is never pruned: its policy lists what is past it and nothing more."
            )
        return data


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(PlatformAdminOnly):
    """One policy per data class, added with its defaults when the list is opened; the audit
    page (/costs/retention/) shows what each takes and what is past it."""

    form = RetentionPolicyForm
    list_display = ("data_class", "keep_days", "prune", "updated_at")
    readonly_fields = ("data_class",)

    def changelist_view(self, request, extra_context=None):
        retention.retention_policies_ensure()
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request):
        return False  # every class already has its policy

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnly, CostManagerOnly, admin.ModelAdmin):
    """Written by the prune task, the command and the audit page's buttons."""

    list_display = (
        "started_at",
        "data_class",
        "dry_run",
        "cutoff",
        "rows_removed",
        "rows_added",
        "bytes_freed",
    )
    list_filter = ("data_class", "dry_run")
    readonly_fields = [f.name for f in RetentionRun._meta.fields]


@admin.register(TcoScenario)
class TcoScenarioAdmin(ReadOnly, CostManagerOnly, admin.ModelAdmin):
    """Filed and edited on the TCO pages (/costs/tco/), which compute the results."""

    list_display = ("name", "business_unit", "currency", "utilisation_percent", "updated_at")
    list_select_related = ("business_unit",)
    readonly_fields = [f.name for f in TcoScenario._meta.fields]


class CommitmentOfferForm(forms.ModelForm):
    """A provider's discount for committing to a pool's hardware; checked before the database
    constraints so the message says what to enter."""

    class Meta:
        model = CommitmentOffer
        fields = ["pool", "kind", "term_years", "discount_percent", "upfront"]
        help_texts = {
            "term_years": "1 or 3 years.",
            "discount_percent": "Percent off the on-demand price, e.g. 35 (above 0, below 100).",
        }

    def clean_term_years(self):
        years = self.cleaned_data["term_years"]
        if years not in (1, 3):
            raise forms.ValidationError(
                f"A commitment runs 1 or 3 years, not {years}: providers sell these terms."
            )
        return years

    def clean_discount_percent(self):
        discount = self.cleaned_data["discount_percent"]
        if discount is None or not 0 < discount < 100:
            raise forms.ValidationError(
                "The discount is a percent above 0 and below 100 (e.g. 35 for 35 % off)."
            )
        return discount


@admin.register(CommitmentOffer)
class CommitmentOfferAdmin(CostManagerOnly, admin.ModelAdmin):
    """Offers feed the commitment recommendations (recomputed weekly, or from its page)."""

    form = CommitmentOfferForm
    list_display = ("pool", "kind", "term_years", "discount_percent", "upfront")
    list_filter = ("pool", "kind", "term_years")
    list_select_related = ("pool",)
