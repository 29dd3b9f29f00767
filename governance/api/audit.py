"""``/api/v1/audit/``: the audit log, read-only, for the people who read its page."""

from __future__ import annotations

from rest_framework import serializers, viewsets
from rest_framework.permissions import BasePermission

from governance.audit import AuditEntryFilterSet, audit_can_read, audit_entry_list
from governance.models import AuditEntry


class IsAuditReader(BasePermission):
    message = "The audit log is for platform admins, finance and board members."

    def has_permission(self, request, view) -> bool:
        return audit_can_read(request.user)


class AuditEntrySerializer(serializers.ModelSerializer):
    # Empty for work Capgov did itself (a task, a rule), outside a request, or in no unit.
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    ip = serializers.IPAddressField(source="remote_addr", read_only=True, allow_null=True)
    model = serializers.SerializerMethodField()
    action = serializers.CharField(source="get_action_display", read_only=True)
    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    request_id = serializers.CharField(source="cid", read_only=True, allow_null=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "timestamp",
            "actor",
            "actor_email",
            "ip",
            "kind",
            "action",
            "model",
            "object_pk",
            "object_repr",
            "business_unit",
            "summary",
            "changes",
            "request_id",
        ]
        read_only_fields = fields

    def get_model(self, entry: AuditEntry) -> str:
        return f"{entry.content_type.app_label}.{entry.content_type.model}"


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """Who did what, when, from where; newest first. Filters: actor (username), model
    (``costs.chargebackperiod``), kind (a prefix), business_unit (code), since / until (dates).
    """

    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    permission_classes = [IsAuditReader]

    def get_queryset(self):
        return audit_entry_list(user=self.request.user)
