from auditlog.admin import LogEntryAdmin
from auditlog.filters import CIDFilter, ResourceTypeFilter
from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied, ValidationError

from governance import policy as rules
from governance.audit import audit_can_read
from governance.choices import RequestKind, Role
from governance.models import (
    ApiToken,
    ApprovalEvent,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalStep,
    AuditEntry,
    BoardMembership,
    BusinessUnit,
    CapacityConflict,
    Decision,
    DeploymentFreeze,
    PolicyStep,
    ReviewBoard,
    RoleAssignment,
    ServiceLevelObjective,
    SloMeasurement,
    User,
)
from governance.selectors import freezes_in_force
from governance.tokens import api_token_revoke


def admin_site_has_permission(request) -> bool:
    """The admin is for staff who are also platform admins (superusers are both): staff status
    alone, or the role alone, is not enough. A signed-out visitor gets the sign-in page; a
    signed-in person without both gets 403 saying why."""
    user = request.user
    if user.is_active and user.is_staff and user.has_role(Role.PLATFORM_ADMIN):
        return True
    if user.is_authenticated:
        raise PermissionDenied(
            "The admin is for platform admins with staff status. Ask a platform admin for the "
            "role (and staff status) if you need it."
        )
    return False


admin.site.has_permission = admin_site_has_permission


class RoleAssignmentInline(admin.TabularInline):
    model = RoleAssignment
    extra = 1


class PlatformAdminOnly(admin.ModelAdmin):
    """Staff status alone is not enough: platform settings are for platform admins."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.has_role(Role.PLATFORM_ADMIN)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.has_module_permission(request)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    inlines = [RoleAssignmentInline]
    filter_horizontal = ("business_units", "groups", "user_permissions")
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Capgov scope", {"fields": ("business_units",)}),
    )
    list_display = ("username", "email", "first_name", "last_name", "is_staff")


@admin.register(BusinessUnit)
class BusinessUnitAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "cost_centre", "owner")
    search_fields = ("code", "name", "cost_centre")
    list_select_related = ("owner",)


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(admin.ModelAdmin):
    list_display = ("user", "role", "granted_at")
    list_filter = ("role",)
    list_select_related = ("user",)


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    """Decisions are the record; nobody edits them after the fact."""

    list_display = ("title", "kind", "outcome", "decided_by", "decided_as", "decided_at")
    list_filter = ("kind", "outcome")
    list_select_related = ("decided_by",)
    search_fields = ("title", "rationale")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DeploymentFreeze)
class DeploymentFreezeAdmin(PlatformAdminOnly):
    """A platform admin may freeze a unit here; the freeze goes through the service (so it is
    a Decision with its author), and is lifted on the Freezes page."""

    list_display = ("business_unit", "started_at", "reason", "created_by", "lifted_at")
    list_select_related = ("business_unit", "created_by")
    fields = ("business_unit", "reason")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        from governance.services import freeze_start

        saved = freeze_start(business_unit=obj.business_unit, reason=obj.reason, by=request.user)
        for field in obj._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        class FreezeForm(form):
            def clean(self):
                data = super().clean()
                unit = data.get("business_unit")
                if not request.user.has_role(Role.PLATFORM_ADMIN):
                    raise ValidationError("Only a platform admin can freeze a business unit.")
                if unit is not None and freezes_in_force(business_unit_ids=[unit.pk]):
                    raise ValidationError(f"{unit.name} is already under a deployment freeze.")
                return data

        return FreezeForm


class PolicyStepInline(admin.TabularInline):
    model = PolicyStep
    extra = 1
    ordering = ("order",)


class ApprovalPolicyForm(forms.ModelForm):
    """Kinds and the escalation path are JSON lists; say what goes in them."""

    class Meta:
        model = ApprovalPolicy
        fields = [
            "name",
            "description",
            "priority",
            "is_active",
            "kinds",
            "business_units",
            "min_cost",
            "currency",
            "min_gpu_hours",
            "mode",
            "escalation_path",
        ]
        help_texts = {
            "kinds": f"A JSON list of: {', '.join(RequestKind.values)}; [] = any kind.",
            "escalation_path": 'A JSON list such as ["bu_owner", "role:platform_admin"]; [] = '
            "that default.",
            "min_cost": "Applies from this estimate up, in the policy's currency; empty = any.",
        }

    def clean_kinds(self) -> list[str]:
        kinds = self.cleaned_data["kinds"] or []
        if not isinstance(kinds, list) or any(k not in RequestKind.values for k in kinds):
            raise forms.ValidationError(f"A list of: {', '.join(RequestKind.values)}.")
        return sorted(set(kinds))

    def clean_escalation_path(self) -> list[str]:
        path = self.cleaned_data["escalation_path"] or []
        if not isinstance(path, list) or not all(
            isinstance(e, str) and rules.escalation_target_valid(e, Role.values) for e in path
        ):
            raise forms.ValidationError('Entries are "bu_owner" or "role:<role>".')
        return path

    def clean_currency(self) -> str:
        # The same check as requests: a bad code here would make every request fail closed.
        currency = rules.currency_code_parse(self.cleaned_data["currency"])
        if currency is None:
            raise ValidationError(rules.CURRENCY_HELP)
        return currency


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    """Policies are data: the active one with the lowest priority that applies is used."""

    form = ApprovalPolicyForm
    inlines = [PolicyStepInline]
    list_display = (
        "name",
        "priority",
        "is_active",
        "min_cost",
        "currency",
        "min_gpu_hours",
        "mode",
    )
    list_filter = ("is_active", "mode")
    search_fields = ("name", "description")
    filter_horizontal = ("business_units",)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ApprovalStepInline(ReadOnlyInline):
    model = ApprovalStep
    fields = ("order", "role", "required_approvals", "status", "due_at", "escalation_level")
    readonly_fields = fields


class ApprovalEventInline(ReadOnlyInline):
    model = ApprovalEvent
    fields = ("at", "actor", "kind", "text")
    readonly_fields = fields


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    """Read-only: requests change only through their services (votes, links, escalation)."""

    inlines = [ApprovalStepInline, ApprovalEventInline]
    list_display = (
        "title",
        "kind",
        "business_unit",
        "estimated_cost",
        "currency",
        "status",
        "requested_by",
        "submitted_at",
    )
    list_filter = ("status", "kind", "business_unit")
    list_select_related = ("business_unit", "requested_by")
    search_fields = ("title", "description")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BoardMembershipInline(admin.TabularInline):
    model = BoardMembership
    extra = 1
    autocomplete_fields = ("user",)


@admin.register(ReviewBoard)
class ReviewBoardAdmin(admin.ModelAdmin):
    """Who sits on the capacity review board, for which function, and its quorum rule."""

    list_display = ("name", "quorum_rule", "quorum_n", "is_active")
    inlines = [BoardMembershipInline]


@admin.register(CapacityConflict)
class CapacityConflictAdmin(admin.ModelAdmin):
    """Conflicts are raised and decided on their page; the admin shows them."""

    list_display = ("title", "status", "escalation_level", "raised_at", "raised_by")
    list_filter = ("status",)
    list_select_related = ("raised_by",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ServiceLevelObjective)
class ServiceLevelObjectiveAdmin(admin.ModelAdmin):
    list_display = ("name", "service", "indicator", "target", "window_days", "provider")
    list_filter = ("indicator",)
    list_select_related = ("provider",)
    search_fields = ("name", "service")


@admin.register(SloMeasurement)
class SloMeasurementAdmin(PlatformAdminOnly):
    """Measurements come in through uploads, the API and the usage derivation, which check
    them; here a platform admin reads them and may delete a wrong one."""

    list_display = ("slo", "day", "value", "good", "total", "source")
    list_filter = ("source", "slo__indicator")
    list_select_related = ("slo",)
    search_fields = ("slo__name", "slo__service")
    date_hierarchy = "day"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# Schedules run any task with any arguments: platform admins only, whatever Django
# permissions a staff account has.
for _model, _model_admin in list(admin.site._registry.items()):
    if _model._meta.app_label == "django_celery_beat":
        admin.site.unregister(_model)
        admin.site.register(
            _model,
            type(type(_model_admin).__name__, (PlatformAdminOnly, type(_model_admin)), {}),
        )


# The audit log: read-only (django-auditlog's admin), and only for the people who read /audit/.
class AuditEntryAdmin(LogEntryAdmin):
    list_display = ["created", "kind", "msg_short", "user_url", "remote_addr", "cid_url"]
    list_filter = ["action", ResourceTypeFilter, CIDFilter, "kind"]

    def has_module_permission(self, request):
        return audit_can_read(request.user)

    def has_view_permission(self, request, obj=None):
        return audit_can_read(request.user)


if admin.site.is_registered(AuditEntry):
    admin.site.unregister(AuditEntry)
admin.site.register(AuditEntry, AuditEntryAdmin)


@admin.register(ApiToken)
class ApiTokenAdmin(PlatformAdminOnly):
    """Tokens are made by their owners (/account/tokens/) or `manage.py token_create`, where
    the key is shown once; here a platform admin sees them and can revoke them."""

    list_display = ("name", "user", "prefix", "scope", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("scope",)
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__username")
    fields = readonly_fields = [f.name for f in ApiToken._meta.fields if f.name != "key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        revoked = 0
        for token in queryset.filter(revoked_at=None).select_related("user"):
            api_token_revoke(token=token, by=request.user)
            revoked += 1
        self.message_user(request, f"{revoked} token(s) revoked.")
