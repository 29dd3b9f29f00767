from rest_framework import viewsets

from governance.api.serializers import BusinessUnitSerializer
from governance.selectors import business_unit_list


class BusinessUnitViewSet(viewsets.ReadOnlyModelViewSet):
    """Business units the caller may see (all of them for finance and admins)."""

    serializer_class = BusinessUnitSerializer
    lookup_field = "code"

    def get_queryset(self):
        return business_unit_list(user=self.request.user)
