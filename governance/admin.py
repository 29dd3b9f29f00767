from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from governance.models import BusinessUnit, Decision, DeploymentFreeze, RoleAssignment, User


class RoleAssignmentInline(admin.TabularInline):
    model = RoleAssignment
    extra = 1


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
class DeploymentFreezeAdmin(admin.ModelAdmin):
    list_display = ("business_unit", "started_at", "reason", "lifted_at")
    list_select_related = ("business_unit",)
    readonly_fields = ("lifted_at", "lifted_by", "lift_reason", "created_by")
