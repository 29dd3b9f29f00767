"""Role checks for pages. The API has its own in ``governance/api/permissions.py``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied

from governance.selectors import manages_costs


def cost_manager_required(view: Callable) -> Callable:
    """Finance and platform admins only (imports, allocation rules, Unallocated)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not manages_costs(request.user):
            raise PermissionDenied("This page is for finance and platform admins.")
        return view(request, *args, **kwargs)

    return wrapper
