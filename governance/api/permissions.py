from __future__ import annotations

from rest_framework.permissions import BasePermission


class IsCostManager(BasePermission):
    """Finance and platform admins: imports and allocation rules."""

    message = "This endpoint is for finance and platform admins."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.manages_costs)
