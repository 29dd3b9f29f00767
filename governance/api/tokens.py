"""``/api/v1/tokens/``: the caller's own API tokens, listed and revoked (never their keys)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from governance.models import ApiToken
from governance.tokens import api_token_list, api_token_revoke


class ApiTokenSerializer(serializers.ModelSerializer):
    revoked_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scope",
            "created_at",
            "expires_at",
            "last_used_at",
            "last_used_ip",
            "revoked_at",
            "revoked_by",
        ]
        read_only_fields = fields


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's tokens, newest first (new ones are made at /account/tokens/)."""

    serializer_class = ApiTokenSerializer
    queryset = ApiToken.objects.none()  # the schema's model; requests read get_queryset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return api_token_list(user=self.request.user)

    @extend_schema(
        summary="Revoke one of your tokens (it stops working at once)",
        request=None,
        responses=ApiTokenSerializer,
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token = api_token_revoke(token=self.get_object(), by=request.user)
        return Response(ApiTokenSerializer(token).data)
