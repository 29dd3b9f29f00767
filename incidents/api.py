"""REST API for incidents: incidents, post-mortems, contributing factors, action items, runbooks.

Everyone signed in reads every incident and post-mortem (they are blameless and open); each
write validates an input serializer and calls one service, which decides who may do it and
answers 400 (bad input), 403 (not yours to change) or 409 (not in this state).
"""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.prefetch import GenericPrefetch
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpResponse
from django.urls import NoReverseMatch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from governance.api.exceptions import ErrorSerializer
from governance.exceptions import DomainError
from governance.models import BusinessUnit, User
from incidents import actions, services, suggestions
from incidents.filters import ActionItemFilterSet, ContributingFactorFilterSet, IncidentFilterSet
from incidents.models import (
    ActionItem,
    ActionKind,
    AffectedSubject,
    CapacityEvidence,
    ContributingFactor,
    FactorStatus,
    Incident,
    IncidentRole,
    IncidentStatus,
    IncidentType,
    PostMortem,
    Runbook,
    Severity,
    SignOff,
    TimelineEvent,
)
from registry.api import DetailSerializer
from registry.models import CapacityPool, Endpoint, RegisteredModel

# The records an incident or an action item names, by their short API name.
SUBJECT_MODELS = {"model": RegisteredModel, "pool": CapacityPool, "endpoint": Endpoint}
AFFECTED_TYPES = tuple(SUBJECT_MODELS)
# What an action item may name for the deployment gate.
ACTION_SUBJECTS = ("model", "pool")


def _subject_kind(content_type: ContentType) -> str:
    for kind, model in SUBJECT_MODELS.items():
        if content_type.model_class() is model:
            return kind
    return f"{content_type.app_label}.{content_type.model}"


def _url(obj) -> str | None:
    """The record's page, if it has one (and its page is wired up)."""
    if obj is None or not hasattr(obj, "get_absolute_url"):
        return None
    try:
        return obj.get_absolute_url()
    except NoReverseMatch:
        return None


def subject_ref(content_type: ContentType | None, object_id: int | None, obj) -> dict | None:
    """``{type, id, label, url}`` of a linked record (the label says so if it is gone)."""
    if content_type is None or object_id is None:
        return None
    return {
        "type": _subject_kind(content_type),
        "id": object_id,
        "label": str(obj) if obj is not None else f"{content_type.name} #{object_id} (deleted)",
        "url": _url(obj),
    }


class SubjectRefSerializer(serializers.Serializer):
    """A linked record: ``type`` is model, pool or endpoint (else ``app_label.model``)."""

    type = serializers.CharField()
    id = serializers.IntegerField()
    label = serializers.CharField()
    url = serializers.CharField(allow_null=True)


class AffectedSubjectSerializer(SubjectRefSerializer):
    def to_representation(self, instance: AffectedSubject) -> dict:
        return subject_ref(instance.subject_type, instance.subject_id, instance.subject)


def _subject_of(row) -> dict | None:
    return subject_ref(row.subject_type, row.subject_id, row.subject)


# --- Output serializers -------------------------------------------------------------------------


class RunbookSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Runbook
        fields = ["id", "incident_type", "title", "summary", "steps", "roles", "updated_at", "url"]
        read_only_fields = fields

    def get_url(self, runbook: Runbook) -> str | None:
        return _url(runbook)


class IncidentRoleSerializer(serializers.ModelSerializer):
    person = serializers.CharField(source="person.username", read_only=True)

    class Meta:
        model = IncidentRole
        fields = ["id", "person", "role"]
        read_only_fields = fields


class TimelineEventSerializer(serializers.ModelSerializer):
    added_by = serializers.CharField(
        source="added_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = TimelineEvent
        fields = ["id", "at", "kind", "text", "source", "added_by"]
        read_only_fields = fields


class CapacityEvidenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = CapacityEvidence
        fields = ["id", "at", "metric", "value", "unit", "source"]
        read_only_fields = fields


PostMortemRefSerializer = inline_serializer(
    "IncidentPostMortemRef",
    {"id": serializers.IntegerField(), "status": serializers.CharField()},
    allow_null=True,
)


class IncidentSerializer(serializers.ModelSerializer):
    """An incident as listed; the detail adds roles, timeline, evidence and runbooks."""

    commander = serializers.CharField(source="commander.username", read_only=True)
    business_units = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    affected = AffectedSubjectSerializer(many=True, read_only=True)
    postmortem = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "severity",
            "status",
            "incident_type",
            "commander",
            "business_units",
            "affected",
            "started_at",
            "detected_at",
            "mitigated_at",
            "resolved_at",
            "cost",
            "cost_currency",
            "postmortem",
            "url",
        ]
        read_only_fields = fields

    @extend_schema_field(PostMortemRefSerializer)
    def get_postmortem(self, incident: Incident) -> dict | None:
        try:
            postmortem = incident.postmortem
        except PostMortem.DoesNotExist:
            return None
        return {"id": postmortem.pk, "status": postmortem.status}

    def get_url(self, incident: Incident) -> str | None:
        return _url(incident)


class IncidentDetailSerializer(IncidentSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    roles = IncidentRoleSerializer(many=True, read_only=True)
    timeline = TimelineEventSerializer(many=True, read_only=True)
    evidence = CapacityEvidenceSerializer(many=True, read_only=True)
    runbooks = serializers.SerializerMethodField()

    class Meta(IncidentSerializer.Meta):
        fields = [
            *IncidentSerializer.Meta.fields,
            "description",
            "cost_detail",
            "roles",
            "timeline",
            "evidence",
            "runbooks",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(RunbookSerializer(many=True))
    def get_runbooks(self, incident: Incident) -> list[dict]:
        return RunbookSerializer(services.runbook_for(incident), many=True).data


class SignOffSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True)

    class Meta:
        model = SignOff
        fields = ["id", "approver", "approved", "comment", "at"]
        read_only_fields = fields


class ActionItemSerializer(serializers.ModelSerializer):
    incident = serializers.IntegerField(source="postmortem.incident_id", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    subject = serializers.SerializerMethodField()
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = ActionItem
        fields = [
            "id",
            "postmortem",
            "incident",
            "title",
            "kind",
            "owner",
            "due",
            "status",
            "overdue",
            "subject",
            "reminded_before_at",
            "reminded_overdue_at",
            "done_at",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(SubjectRefSerializer(allow_null=True))
    def get_subject(self, item: ActionItem) -> dict | None:
        return _subject_of(item)

    def get_overdue(self, item: ActionItem) -> bool:
        """Open and past its due date (UTC): ``actions.action_items`` annotates it."""
        return bool(item.is_overdue)


class PostMortemSerializer(serializers.ModelSerializer):
    incident_title = serializers.CharField(source="incident.title", read_only=True)
    incident_status = serializers.CharField(source="incident.status", read_only=True)
    authors = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    approvers = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    signoffs = SignOffSerializer(many=True, read_only=True)
    actions = ActionItemSerializer(many=True, read_only=True)
    may_edit = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = PostMortem
        fields = [
            "id",
            "incident",
            "incident_title",
            "incident_status",
            "status",
            "authors",
            "approvers",
            "may_edit",
            "summary",
            "requests_failed",
            "users_affected",
            "impact",
            "trigger",
            "root_causes",
            "root_cause_tags",
            "contributing_factors",
            "detection",
            "went_well",
            "got_lucky",
            "lessons",
            "window_days",
            "signoffs",
            "actions",
            "created_at",
            "updated_at",
            "published_at",
            "url",
        ]
        read_only_fields = fields

    def get_may_edit(self, postmortem: PostMortem) -> bool:
        """Whether the caller may edit it now (an author or approver, not yet published)."""
        request = self.context.get("request")
        return request is not None and services.may_edit_postmortem(request.user, postmortem)

    def get_url(self, postmortem: PostMortem) -> str | None:
        return _url(postmortem)


class ContributingFactorSerializer(serializers.ModelSerializer):
    subject = serializers.SerializerMethodField()
    decided_by = serializers.CharField(
        source="decided_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = ContributingFactor
        fields = [
            "id",
            "postmortem",
            "kind",
            "subject",
            "occurred_at",
            "summary",
            "detail",
            "status",
            "note",
            "decided_by",
            "decided_at",
        ]
        read_only_fields = fields

    @extend_schema_field(SubjectRefSerializer(allow_null=True))
    def get_subject(self, factor: ContributingFactor) -> dict | None:
        """The record (a deployment, decision, waiver…); none for a cost anomaly."""
        ref = _subject_of(factor)
        if ref is not None:
            url = getattr(factor, "subject_url", None)
            if url is None:
                url = suggestions.subject_url(factor.subject)
            ref["url"] = url or None
        return ref


# --- Input serializers --------------------------------------------------------------------------


class SubjectInputSerializer(serializers.Serializer):
    """A model, shared pool or endpoint, by its id."""

    type = serializers.ChoiceField(choices=AFFECTED_TYPES)
    id = serializers.IntegerField(min_value=1)

    def validate(self, attrs):
        found = SUBJECT_MODELS[attrs["type"]].objects.filter(pk=attrs["id"]).first()
        if found is None:
            raise serializers.ValidationError({"id": f"There is no {attrs['type']} {attrs['id']}."})
        return found


def _people(**kwargs) -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True), **kwargs
    )


def _units(**kwargs) -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(
        slug_field="code", queryset=BusinessUnit.objects.all(), many=True, **kwargs
    )


class IncidentInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    severity = serializers.ChoiceField(choices=Severity.choices)
    incident_type = serializers.ChoiceField(choices=IncidentType.choices, default="other")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    commander = _people(required=False, help_text="A username; the caller when left out.")
    started_at = serializers.DateTimeField()
    detected_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    business_units = _units(
        required=False, help_text="Codes; the affected records' units join on their own."
    )
    affected = SubjectInputSerializer(many=True, required=False)


class IncidentUpdateSerializer(serializers.Serializer):
    """Fields to change. The status moves forward only (active → mitigated → resolved);
    "post-mortem done" follows from publishing the post-mortem."""

    title = serializers.CharField(max_length=200, required=False)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    incident_type = serializers.ChoiceField(choices=IncidentType.choices, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    commander = _people(required=False)
    status = serializers.ChoiceField(choices=IncidentStatus.choices, required=False)
    started_at = serializers.DateTimeField(required=False)
    detected_at = serializers.DateTimeField(required=False, allow_null=True)
    mitigated_at = serializers.DateTimeField(required=False, allow_null=True)
    resolved_at = serializers.DateTimeField(required=False, allow_null=True)
    business_units = _units(required=False)
    affected = SubjectInputSerializer(many=True, required=False)
    cost = serializers.DecimalField(
        max_digits=20, decimal_places=4, required=False, allow_null=True
    )
    cost_currency = serializers.CharField(max_length=3, required=False, allow_blank=True)


class TimelineInputSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField(max_length=32, help_text="detected, page, action, mitigation…")
    text = serializers.CharField()
    source = serializers.CharField(max_length=64, default="manual")


class EvidenceInputSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    metric = serializers.CharField(max_length=64, help_text="queue_depth, latency_p95_ms, …")
    value = serializers.DecimalField(max_digits=20, decimal_places=6)
    unit = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    source = serializers.CharField(max_length=64, default="manual")


class RoleInputSerializer(serializers.Serializer):
    person = _people(help_text="A username.")
    role = serializers.CharField(max_length=64, help_text="scribe, comms, …")


class PostMortemUpdateSerializer(serializers.Serializer):
    """Fields to change; an edit while in review sends it back to draft."""

    summary = serializers.CharField(required=False, allow_blank=True)
    requests_failed = serializers.IntegerField(
        min_value=0, max_value=2**63 - 1, required=False, allow_null=True
    )
    users_affected = serializers.IntegerField(
        min_value=0, max_value=2**63 - 1, required=False, allow_null=True
    )
    impact = serializers.CharField(required=False, allow_blank=True)
    trigger = serializers.CharField(required=False, allow_blank=True)
    root_causes = serializers.CharField(required=False, allow_blank=True)
    root_cause_tags = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=50, required=False
    )
    contributing_factors = serializers.CharField(required=False, allow_blank=True)
    detection = serializers.CharField(required=False, allow_blank=True)
    went_well = serializers.CharField(required=False, allow_blank=True)
    got_lucky = serializers.CharField(required=False, allow_blank=True)
    lessons = serializers.CharField(required=False, allow_blank=True)
    window_days = serializers.IntegerField(
        min_value=1, max_value=services.MAX_WINDOW_DAYS, required=False
    )
    authors = _people(many=True, required=False)
    approvers = _people(many=True, required=False)


class _ActionSubjectMixin:
    def validate(self, attrs):
        kind = attrs.pop("subject_type", serializers.empty)
        pk = attrs.pop("subject_id", serializers.empty)
        if kind is serializers.empty and pk is serializers.empty:
            return attrs
        if kind in (None, "") or kind is serializers.empty:
            if pk not in (None, serializers.empty):
                raise serializers.ValidationError({"subject_type": "Say what the id is of."})
            attrs["subject"] = None
            return attrs
        if pk in (None, serializers.empty):
            raise serializers.ValidationError({"subject_id": "Give the id of the model or pool."})
        found = SUBJECT_MODELS[kind].objects.filter(pk=pk).first()
        if found is None:
            raise serializers.ValidationError({"subject_id": f"There is no {kind} {pk}."})
        attrs["subject"] = found
        return attrs


def _subject_type_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=ACTION_SUBJECTS,
        required=False,
        allow_null=True,
        help_text="What the item is about, for the deployment gate: a model or a pool.",
    )


def _subject_id_field() -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, required=False, allow_null=True)


class ActionItemInputSerializer(_ActionSubjectMixin, serializers.Serializer):
    postmortem = serializers.PrimaryKeyRelatedField(queryset=PostMortem.objects.all())
    title = serializers.CharField(max_length=actions.TITLE_MAX)
    kind = serializers.ChoiceField(choices=ActionKind.choices)
    owner = _people(help_text="A username.")
    due = serializers.DateField()
    subject_type = _subject_type_field()
    subject_id = _subject_id_field()


class ActionItemUpdateSerializer(_ActionSubjectMixin, serializers.Serializer):
    """Fields to change (of an open item); a new owner or due date resets the reminders."""

    title = serializers.CharField(max_length=actions.TITLE_MAX, required=False)
    kind = serializers.ChoiceField(choices=ActionKind.choices, required=False)
    owner = _people(required=False)
    due = serializers.DateField(required=False)
    subject_type = _subject_type_field()
    subject_id = _subject_id_field()


class ActionCloseInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=actions.CLOSED,
        help_text="done (its owner may say so too) or cancelled",
    )


class NoteInputSerializer(serializers.Serializer):
    note = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=suggestions.NOTE_LIMIT
    )


class SignInputSerializer(serializers.Serializer):
    approved = serializers.BooleanField(help_text="false asks for changes (say which).")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


def _valid(serializer_class, request: Request, **kwargs) -> dict:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- Filters ------------------------------------------------------------------------------------


# --- Viewsets -----------------------------------------------------------------------------------


class _ListFilters:
    """The list's filters apply to the list only: a detail action's query string (such as
    ``/postmortems/1/factors/?status=accepted``) is its own."""

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)


class MarkdownRenderer(BaseRenderer):
    """Lets a client ask for ``text/markdown``; an error comes as its message."""

    media_type = "text/markdown"
    format = "md"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "detail" in data:
            data = data["detail"]
        return str(data if data is not None else "").encode(self.charset)


FAILURES = {400: ErrorSerializer, 403: DetailSerializer, 409: DetailSerializer}


@extend_schema_view(
    list=extend_schema(
        summary="Incidents, newest first",
        description="Everyone signed in reads every incident. Filter by `status`, `severity`, "
        "`incident_type`, `business_unit` (code), `month` (YYYY-MM, when it started), the "
        "affected `model`, `pool` or `endpoint` (ids) and `q` (title).",
    ),
    retrieve=extend_schema(
        summary="One incident with its roles, affected records, timeline, evidence, runbooks "
        "and post-mortem"
    ),
)
class IncidentViewSet(
    _ListFilters,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Incidents: anyone signed in opens one; its commander, the people with a role in it and
    platform admins change it."""

    filterset_class = IncidentFilterSet
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        if self.action == "list":
            return services.incident_list(user=self.request.user)
        return Incident.objects.all()

    def get_serializer_class(self):
        if self.action == "list":
            return IncidentSerializer
        return IncidentDetailSerializer

    def _detail(self, pk: int, *, status_code: int = status.HTTP_200_OK) -> Response:
        try:
            incident = services.incident_get(user=self.request.user, pk=pk)
        except Incident.DoesNotExist as exc:
            raise Http404 from exc
        return Response(IncidentDetailSerializer(incident).data, status=status_code)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return self._detail(self.get_object().pk)

    @extend_schema(
        summary="Open an incident",
        request=IncidentInputSerializer,
        responses={201: IncidentDetailSerializer, **FAILURES},
    )
    def create(self, request: Request) -> Response:
        data = _valid(IncidentInputSerializer, request)
        data.setdefault("commander", request.user)
        incident = services.incident_create(by=request.user, **data)
        return self._detail(incident.pk, status_code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an incident (the status moves forward only)",
        request=IncidentUpdateSerializer,
        responses={200: IncidentDetailSerializer, **FAILURES},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        incident = self.get_object()
        data = _valid(IncidentUpdateSerializer, request)
        services.incident_update(incident=incident, by=request.user, **data)
        return self._detail(incident.pk)

    @extend_schema(
        summary="Add a moment to the timeline",
        request=TimelineInputSerializer,
        responses={201: TimelineEventSerializer, **FAILURES},
    )
    @action(detail=True, methods=["post"])
    def timeline(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(TimelineInputSerializer, request)
        event = services.timeline_add(incident=self.get_object(), by=request.user, **data)
        return Response(TimelineEventSerializer(event).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Record a capacity figure (queue depth, latency, error rate, utilisation)",
        request=EvidenceInputSerializer,
        responses={201: CapacityEvidenceSerializer, **FAILURES},
    )
    @action(detail=True, methods=["post"])
    def evidence(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(EvidenceInputSerializer, request)
        figure = services.evidence_add(incident=self.get_object(), by=request.user, **data)
        return Response(CapacityEvidenceSerializer(figure).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Give someone a role in the incident",
        request=RoleInputSerializer,
        responses={201: IncidentRoleSerializer, **FAILURES},
    )
    @action(detail=True, methods=["post"])
    def roles(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(RoleInputSerializer, request)
        held = services.role_add(incident=self.get_object(), by=request.user, **data)
        return Response(IncidentRoleSerializer(held).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["GET"],
        summary="The incident's post-mortem",
        responses={200: PostMortemSerializer, 404: DetailSerializer},
    )
    @extend_schema(
        methods=["POST"],
        summary="Open the incident's post-mortem (you become its author)",
        request=None,
        responses={201: PostMortemSerializer, **FAILURES},
    )
    @action(detail=True, methods=["get", "post"])
    def postmortem(self, request: Request, pk: str | None = None) -> Response:
        incident = self.get_object()
        code = status.HTTP_200_OK
        if request.method == "POST":
            services.postmortem_open(incident=incident, by=request.user)
            code = status.HTTP_201_CREATED
        pm = postmortem_queryset().filter(incident=incident).first()
        if pm is None:
            raise Http404("This incident has no post-mortem yet.")
        return Response(PostMortemSerializer(pm, context={"request": request}).data, status=code)


def postmortem_queryset() -> QuerySet[PostMortem]:
    return PostMortem.objects.select_related("incident").prefetch_related(
        "authors",
        "approvers",
        Prefetch("signoffs", queryset=SignOff.objects.select_related("approver")),
        Prefetch("actions", queryset=actions.action_items()),
    )


def factor_queryset() -> QuerySet[ContributingFactor]:
    # The records' own relations come along (a transition's version and model, …).
    subjects = GenericPrefetch("subject", suggestions._subject_querysets())
    return ContributingFactor.objects.select_related("subject_type", "decided_by").prefetch_related(
        subjects
    )


@extend_schema_view(
    list=extend_schema(summary="Post-mortems, newest first"),
    retrieve=extend_schema(summary="One post-mortem with its sign-offs and action items"),
)
class PostMortemViewSet(
    _ListFilters, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Blameless post-mortems: authors and named approvers edit a draft (or one in review);
    named approvers sign it off, and it is published once all of them approved."""

    serializer_class = PostMortemSerializer
    filterset_fields = ["status"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return postmortem_queryset().order_by("-created_at", "-pk")

    def _detail(self, pk: int) -> Response:
        pm = postmortem_queryset().get(pk=pk)
        return Response(PostMortemSerializer(pm, context={"request": self.request}).data)

    @extend_schema(
        summary="Edit a draft or a post-mortem in review (authors and named approvers)",
        request=PostMortemUpdateSerializer,
        responses={200: PostMortemSerializer, **FAILURES},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        pm = self.get_object()
        data = _valid(PostMortemUpdateSerializer, request)
        services.postmortem_update(postmortem=pm, by=request.user, **data)
        return self._detail(pm.pk)

    @extend_schema(
        summary="Send a draft to its named approvers (authors)",
        request=None,
        responses={200: PostMortemSerializer, **FAILURES},
    )
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str | None = None) -> Response:
        pm = self.get_object()
        services.postmortem_submit(postmortem=pm, by=request.user)
        return self._detail(pm.pk)

    @extend_schema(
        summary="Approve the text in review, or ask for changes (named approvers)",
        description="Once every named approver approved it, the post-mortem is published and "
        "the incident becomes “post-mortem done”.",
        request=SignInputSerializer,
        responses={200: PostMortemSerializer, **FAILURES},
    )
    @action(detail=True, methods=["post"])
    def sign(self, request: Request, pk: str | None = None) -> Response:
        pm = self.get_object()
        services.postmortem_sign(
            postmortem=pm, by=request.user, **_valid(SignInputSerializer, request)
        )
        return self._detail(pm.pk)

    @extend_schema(
        summary="The whole post-mortem as Markdown",
        responses={(200, "text/markdown"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, MarkdownRenderer])
    def markdown(self, request: Request, pk: str | None = None) -> HttpResponse:
        pm = self.get_object()
        response = HttpResponse(
            services.postmortem_markdown(pm, user=request.user),
            content_type="text/markdown; charset=utf-8",
        )
        response["Content-Disposition"] = f'inline; filename="postmortem-{pm.incident_id}.md"'
        return response

    @extend_schema(
        summary="The contributing factors: suggested, accepted and dismissed, in time order",
        parameters=[
            OpenApiParameter("status", enum=FactorStatus.values, description="Only these.")
        ],
        responses={200: ContributingFactorSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def factors(self, request: Request, pk: str | None = None) -> Response:
        factors = suggestions.factor_list(self.get_object(), user=request.user)
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in FactorStatus.values:
                raise DomainError(f"Filter status by one of {', '.join(FactorStatus.values)}.")
            factors = [f for f in factors if f.status == wanted]
        return Response(ContributingFactorSerializer(factors, many=True).data)

    @extend_schema(
        summary="Look again for records of the window before the incident (authors, approvers)",
        description="Accepted and dismissed factors stay as they are; suggestions no longer "
        "found go away.",
        request=None,
        responses={200: ContributingFactorSerializer(many=True), **FAILURES},
    )
    @action(detail=True, methods=["post"], url_path="refresh-suggestions")
    def refresh_suggestions(self, request: Request, pk: str | None = None) -> Response:
        factors = services.postmortem_suggestions_refresh(
            postmortem=self.get_object(), by=request.user
        )
        return Response(ContributingFactorSerializer(factors, many=True).data)


@extend_schema_view(
    list=extend_schema(
        summary="Contributing factors of every post-mortem",
        description="Filter by `postmortem` (id), `status` and `kind`.",
    ),
    retrieve=extend_schema(summary="One contributing factor"),
)
class ContributingFactorViewSet(
    _ListFilters, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Records suggested as having contributed to an incident; the post-mortem's authors and
    approvers accept (with a note saying how) or dismiss each one."""

    serializer_class = ContributingFactorSerializer
    filterset_class = ContributingFactorFilterSet

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            # Schema generation: no request user, and no query at import time.
            return ContributingFactor.objects.none()
        return (
            factor_queryset()
            .filter(suggestions.factors_visible_q(self.request.user))
            .order_by("postmortem_id", "occurred_at", "pk")
        )

    def _decided(self, factor: ContributingFactor) -> Response:
        return Response(ContributingFactorSerializer(factor_queryset().get(pk=factor.pk)).data)

    @extend_schema(
        summary="Accept as a contributing factor; the note says how it contributed",
        request=NoteInputSerializer,
        responses={200: ContributingFactorSerializer, **FAILURES},
    )
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(NoteInputSerializer, request)
        factor = suggestions.factor_accept(factor=self.get_object(), by=request.user, **data)
        return self._decided(factor)

    @extend_schema(
        summary="Dismiss: it did not contribute",
        request=NoteInputSerializer,
        responses={200: ContributingFactorSerializer, **FAILURES},
    )
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(NoteInputSerializer, request)
        factor = suggestions.factor_dismiss(factor=self.get_object(), by=request.user, **data)
        return self._decided(factor)


@extend_schema_view(
    list=extend_schema(
        summary="Action items, by due date",
        description="Everyone signed in reads them. Filter by `status`, `kind`, `owner` "
        "(username), `postmortem` (id) and `overdue=true` (open and past the due date).",
    ),
    retrieve=extend_schema(summary="One action item"),
)
class ActionItemViewSet(
    _ListFilters, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Follow-ups of a post-mortem. Its authors and approvers, the incident's commander and
    platform admins add, change and close them; an item's owner may mark it done."""

    serializer_class = ActionItemSerializer
    filterset_class = ActionItemFilterSet
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return actions.action_items().order_by("due", "pk")

    def _detail(self, item: ActionItem, *, status_code: int = status.HTTP_200_OK) -> Response:
        item = actions.action_items().get(pk=item.pk)
        return Response(ActionItemSerializer(item).data, status=status_code)

    @extend_schema(
        summary="Add an action item to a post-mortem",
        request=ActionItemInputSerializer,
        responses={201: ActionItemSerializer, **FAILURES},
    )
    def create(self, request: Request) -> Response:
        data = _valid(ActionItemInputSerializer, request)
        item = actions.action_create(by=request.user, **data)
        return self._detail(item, status_code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an open action item",
        request=ActionItemUpdateSerializer,
        responses={200: ActionItemSerializer, **FAILURES},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(ActionItemUpdateSerializer, request)
        item = actions.action_update(action=self.get_object(), by=request.user, **data)
        return self._detail(item)

    @extend_schema(
        summary="Close an open item as done or cancelled",
        request=ActionCloseInputSerializer,
        responses={200: ActionItemSerializer, **FAILURES},
    )
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(ActionCloseInputSerializer, request)
        item = actions.action_close(action=self.get_object(), by=request.user, **data)
        return self._detail(item)


@extend_schema_view(
    list=extend_schema(summary="Runbooks, by incident type"),
    retrieve=extend_schema(summary="One runbook with its steps and roles"),
)
class RunbookViewSet(viewsets.ReadOnlyModelViewSet):
    """What to do for each type of incident, and who does it."""

    serializer_class = RunbookSerializer
    filterset_fields = ["incident_type"]

    def get_queryset(self):
        return Runbook.objects.order_by("incident_type", "title")
