"""REST API for forecasts: the forecasts with their points, the anomalies, the business-event
calendar and the days left out of forecasts.

Reads are scoped as the pages are (``costs.forecasts``: a unit's people read their units',
their endpoints' and their pools' forecasts; finance and platform admins all). Writes validate
their input and call one service; a refused one answers 400, 403 or 409 with ``detail``.
"""

from __future__ import annotations

from django.db.models import Count, Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from costs import forecasts
from costs.filters import (
    BusinessEventFilterSet,
    CostAnomalyFilterSet,
    ForecastExclusionFilterSet,
    ForecastFilterSet,
)
from costs.models import (
    BusinessEvent,
    CostAnomaly,
    EventKind,
    Forecast,
    ForecastExclusion,
    ForecastPoint,
    Measure,
    SubjectKind,
)
from governance.api.exceptions import ErrorSerializer
from governance.models import BusinessUnit
from registry.models import CapacityPool, Endpoint

VALUE = {"max_digits": 24, "decimal_places": 4, "read_only": True}
REFUSED = {400: ErrorSerializer, 403: ErrorSerializer}


# --- Output -----------------------------------------------------------------------------------


class _SubjectFields(serializers.Serializer):
    """The subject a row names: one of unit (its code), pool (its code) or endpoint (its id);
    all three null for the whole organisation (events and exclusions only)."""

    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    pool = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    endpoint = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    subject = serializers.SerializerMethodField()

    def get_subject(self, row) -> str:
        """The subject's name, e.g. "RES — Research"; "Whole organisation" when none."""
        subject = row.business_unit or row.pool or row.endpoint
        return str(subject) if subject is not None else "Whole organisation"


class ForecastPointSerializer(serializers.ModelSerializer):
    """One day: expected value, prediction interval, low quantile and the events' uplift.
    ``ahead`` is false for the days of the history (the fit, or what was predicted then)."""

    expected = serializers.DecimalField(**VALUE)
    lower = serializers.DecimalField(**VALUE)
    upper = serializers.DecimalField(**VALUE)
    low_quantile = serializers.DecimalField(**VALUE, allow_null=True)
    ahead = serializers.SerializerMethodField()

    class Meta:
        model = ForecastPoint
        fields = ["day", "expected", "lower", "upper", "low_quantile", "uplift_percent", "ahead"]
        read_only_fields = fields

    def get_ahead(self, point: ForecastPoint) -> bool:
        end = self.context.get("history_end")
        return end is None or point.day > end


class ForecastSerializer(_SubjectFields, serializers.ModelSerializer):
    """A forecast of one subject's daily cost (in ``currency``) or GPU-hours (``currency``
    empty). ``mape`` is the back-test's mean absolute percentage error, in percent."""

    anomalies = serializers.IntegerField(source="anomaly_count", read_only=True)
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Forecast
        fields = [
            "id",
            "kind",
            "business_unit",
            "pool",
            "endpoint",
            "subject",
            "measure",
            "currency",
            "method",
            "interval_percent",
            "history_start",
            "history_end",
            "horizon_days",
            "mape",
            "warnings",
            "generated_at",
            "anomalies",
        ]
        read_only_fields = fields


class ForecastDetailSerializer(ForecastSerializer):
    """A forecast with every stored day, oldest first."""

    points = serializers.SerializerMethodField()

    class Meta(ForecastSerializer.Meta):
        fields = [*ForecastSerializer.Meta.fields, "points"]
        read_only_fields = fields

    @extend_schema_field(ForecastPointSerializer(many=True))
    def get_points(self, forecast: Forecast) -> list[dict]:
        context = {**self.context, "history_end": forecast.history_end}
        return ForecastPointSerializer(forecast.points.all(), many=True, context=context).data


class CostAnomalySerializer(serializers.ModelSerializer):
    """A day outside its forecast's interval; ``size`` is the actual minus the nearer bound
    (negative below the interval)."""

    kind = serializers.ChoiceField(
        source="forecast.kind", choices=SubjectKind.choices, read_only=True
    )
    measure = serializers.ChoiceField(
        source="forecast.measure", choices=Measure.choices, read_only=True
    )
    currency = serializers.CharField(source="forecast.currency", read_only=True)
    subject = serializers.SerializerMethodField()
    actual = serializers.DecimalField(**VALUE)
    expected = serializers.DecimalField(**VALUE)
    lower = serializers.DecimalField(**VALUE)
    upper = serializers.DecimalField(**VALUE)
    size = serializers.DecimalField(**VALUE)

    class Meta:
        model = CostAnomaly
        fields = [
            "id",
            "forecast",
            "kind",
            "subject",
            "measure",
            "currency",
            "day",
            "actual",
            "expected",
            "lower",
            "upper",
            "size",
            "direction",
            "detected_at",
        ]
        read_only_fields = fields

    def get_subject(self, anomaly: CostAnomaly) -> str:
        return str(anomaly.forecast.subject)


class BusinessEventSerializer(_SubjectFields, serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = BusinessEvent
        fields = [
            "id",
            "name",
            "kind",
            "starts_on",
            "ends_on",
            "uplift_percent",
            "business_unit",
            "pool",
            "endpoint",
            "subject",
            "notes",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class ForecastExclusionSerializer(_SubjectFields, serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = ForecastExclusion
        fields = [
            "id",
            "starts_on",
            "ends_on",
            "reason",
            "business_unit",
            "pool",
            "endpoint",
            "subject",
            "source",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


# --- Input ------------------------------------------------------------------------------------


class _SubjectInput(serializers.Serializer):
    business_unit = serializers.SlugRelatedField(
        slug_field="code",
        queryset=BusinessUnit.objects.all(),
        required=False,
        allow_null=True,
        help_text="A unit's code; give at most one of business_unit, pool and endpoint.",
    )
    pool = serializers.SlugRelatedField(
        slug_field="code",
        queryset=CapacityPool.objects.all(),
        required=False,
        allow_null=True,
        help_text="A shared pool's code.",
    )
    endpoint = serializers.PrimaryKeyRelatedField(
        queryset=Endpoint.objects.select_related("model_version__model"),
        required=False,
        allow_null=True,
        help_text="An endpoint's id.",
    )


class BusinessEventInputSerializer(_SubjectInput):
    """A business event; none of unit, pool and endpoint: the whole organisation."""

    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=EventKind.choices, default=EventKind.OTHER)
    starts_on = serializers.DateField()
    ends_on = serializers.DateField()
    uplift_percent = serializers.DecimalField(
        max_digits=7,
        decimal_places=2,
        help_text="Percent higher on the event's days, e.g. 25; negative for a drop (above -100).",
    )
    notes = serializers.CharField(required=False, allow_blank=True, default="")


class ForecastExclusionInputSerializer(_SubjectInput):
    """Days to leave out of a subject's forecasts; none of unit, pool and endpoint: of every
    forecast (finance and platform admins)."""

    starts_on = serializers.DateField()
    ends_on = serializers.DateField()
    reason = serializers.CharField(max_length=300)
    source = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


# --- Views ------------------------------------------------------------------------------------


class ForecastViewSet(viewsets.ReadOnlyModelViewSet):
    """Forecasts the caller may read; one forecast with every stored day (``points``)."""

    filterset_class = ForecastFilterSet

    def get_queryset(self):
        forecasts_ = (
            forecasts.forecast_list(user=self.request.user)
            .annotate(anomaly_count=Count("anomalies"))
            .order_by("kind", "measure", "currency", "pk")
        )
        if self.action == "retrieve":
            forecasts_ = forecasts_.prefetch_related(
                Prefetch("points", queryset=ForecastPoint.objects.order_by("day"))
            )
        return forecasts_

    def get_serializer_class(self):
        return ForecastDetailSerializer if self.action == "retrieve" else ForecastSerializer


class CostAnomalyViewSet(viewsets.ReadOnlyModelViewSet):
    """Days outside their forecast's interval, newest first (of forecasts the caller reads)."""

    serializer_class = CostAnomalySerializer
    filterset_class = CostAnomalyFilterSet

    def get_queryset(self):
        return forecasts.anomaly_list(user=self.request.user)


_EVENT_FIELDS = tuple(BusinessEventInputSerializer._declared_fields)  # no instance at import


@extend_schema_view(
    create=extend_schema(
        request=BusinessEventInputSerializer,
        responses={201: BusinessEventSerializer, **REFUSED},
    ),
    update=extend_schema(
        request=BusinessEventInputSerializer, responses={200: BusinessEventSerializer, **REFUSED}
    ),
    partial_update=extend_schema(
        request=BusinessEventInputSerializer, responses={200: BusinessEventSerializer, **REFUSED}
    ),
    destroy=extend_schema(responses={204: None, 403: ErrorSerializer}),
)
class BusinessEventViewSet(viewsets.ModelViewSet):
    """The business-event calendar. Finance and platform admins set any event; a unit's owner
    the events of the unit, its endpoints and the pools it runs."""

    serializer_class = BusinessEventSerializer
    filterset_class = BusinessEventFilterSet

    def get_queryset(self):
        return forecasts.event_list(user=self.request.user).order_by("-starts_on", "name", "pk")

    def _save(self, request: Request, event: BusinessEvent | None, *, partial: bool):
        data = BusinessEventInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        current = {name: getattr(event, name) for name in _EVENT_FIELDS} if event else {}
        values = {**current, **data.validated_data}
        return forecasts.event_save(
            by=request.user, event=event, **{name: values.get(name) for name in _EVENT_FIELDS}
        )

    def create(self, request: Request) -> Response:
        event = self._save(request, None, partial=False)
        return Response(BusinessEventSerializer(event).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, pk=None, partial: bool = False) -> Response:
        event = self._save(request, self.get_object(), partial=partial)
        return Response(BusinessEventSerializer(event).data)

    def partial_update(self, request: Request, pk=None) -> Response:
        return self.update(request, pk, partial=True)

    def perform_destroy(self, instance: BusinessEvent) -> None:
        forecasts.event_delete(event=instance, by=self.request.user)


@extend_schema_view(
    create=extend_schema(
        request=ForecastExclusionInputSerializer,
        responses={201: ForecastExclusionSerializer, **REFUSED},
    ),
    destroy=extend_schema(responses={204: None, 403: ErrorSerializer}),
)
class ForecastExclusionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Days left out of what forecasts learn, from their next refresh on."""

    serializer_class = ForecastExclusionSerializer
    filterset_class = ForecastExclusionFilterSet

    def get_queryset(self):
        return forecasts.exclusion_list(user=self.request.user).order_by("-starts_on", "pk")

    def create(self, request: Request) -> Response:
        data = ForecastExclusionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        exclusion = forecasts.exclusion_add(by=request.user, **data.validated_data)
        return Response(ForecastExclusionSerializer(exclusion).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ForecastExclusion) -> None:
        forecasts.exclusion_delete(exclusion=instance, by=self.request.user)
