from __future__ import annotations

from rest_framework.permissions import BasePermission

from governance.selectors import manages_costs


class IsCostManager(BasePermission):
    """Finance and platform admins: imports and allocation rules."""

    message = "This endpoint is for finance and platform admins."

    def has_permission(self, request, view) -> bool:
        return manages_costs(request.user)
