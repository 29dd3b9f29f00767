from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from governance.models import BusinessUnit, RoleAssignment, User


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
