from decimal import Decimal

from rest_framework import serializers

from governance import policy as rules
from governance.choices import RequestKind
from governance.models import (
    ApprovalEvent,
    ApprovalRequest,
    ApprovalStep,
    ApprovalVote,
    BusinessUnit,
    Decision,
    DeploymentFreeze,
    ServiceLevelObjective,
    SloMeasurement,
)
from governance.services.approvals import (
    COMMENT_MAX,
    MAX_ACCELERATOR_COUNT,
    MAX_DURATION_HOURS,
    MAX_ESTIMATED_COST,
)


class BusinessUnitSerializer(serializers.ModelSerializer):
    owner = serializers.StringRelatedField(allow_null=True)

    class Meta:
        model = BusinessUnit
        fields = ["id", "code", "name", "cost_centre", "owner"]


# --- approval requests --------------------------------------------------------------------


class ApprovalVoteSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True)

    class Meta:
        model = ApprovalVote
        fields = ["approver", "approve", "comment", "at", "via"]
        read_only_fields = fields


class ApprovalStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApprovalStep
        fields = [
            "id",
            "order",
            "role",
            "required_approvals",
            "wait_hours",
            "status",
            "activated_at",
            "due_at",
            "escalation_level",
            "escalated_at",
            "decided_at",
        ]
        read_only_fields = fields


class ApprovalStepDetailSerializer(ApprovalStepSerializer):
    votes = ApprovalVoteSerializer(many=True, read_only=True)

    class Meta(ApprovalStepSerializer.Meta):
        fields = [*ApprovalStepSerializer.Meta.fields, "votes"]
        read_only_fields = fields


class ApprovalEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True)

    class Meta:
        model = ApprovalEvent
        fields = ["at", "actor", "kind", "text", "data"]
        read_only_fields = fields


class ApprovalRequestSerializer(serializers.ModelSerializer):
    """A request with its steps; the detail adds each step's votes and the history."""

    business_unit = serializers.CharField(source="business_unit.code", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    policy = serializers.CharField(source="policy.name", read_only=True, allow_null=True)
    gpu_hours = serializers.DecimalField(max_digits=24, decimal_places=2, read_only=True)
    decision = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    steps = ApprovalStepSerializer(many=True, read_only=True)
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "kind",
            "title",
            "description",
            "business_unit",
            "requested_by",
            "estimated_cost",
            "currency",
            "accelerator",
            "accelerator_count",
            "duration_hours",
            "gpu_hours",
            "needed_by",
            "status",
            "revision",
            "policy",
            "mode",
            "escalation_path",
            "created_at",
            "submitted_at",
            "decided_at",
            "decision",
            "steps",
            "url",
        ]
        read_only_fields = fields


class ApprovalRequestDetailSerializer(ApprovalRequestSerializer):
    steps = ApprovalStepDetailSerializer(many=True, read_only=True)
    events = ApprovalEventSerializer(many=True, read_only=True)

    class Meta(ApprovalRequestSerializer.Meta):
        fields = [*ApprovalRequestSerializer.Meta.fields, "events"]
        read_only_fields = fields


def _currency_validate(value: str) -> str:
    currency = rules.currency_code_parse(value)
    if currency is None:
        raise serializers.ValidationError(rules.CURRENCY_HELP)
    return currency


def _cost_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=22,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=MAX_ESTIMATED_COST,
        **kwargs,
    )


def _count_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=MAX_ACCELERATOR_COUNT, **kwargs)


def _hours_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=Decimal(MAX_DURATION_HOURS),
        **kwargs,
    )


class ApprovalRequestInputSerializer(serializers.Serializer):
    """What a requester files; ``submit: true`` sends it for approval at once."""

    kind = serializers.ChoiceField(choices=RequestKind.choices)
    title = serializers.CharField(max_length=300)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    business_unit = serializers.SlugRelatedField(
        slug_field="code", queryset=BusinessUnit.objects.all()
    )
    estimated_cost = _cost_field()
    currency = serializers.CharField(min_length=3, max_length=3, default="USD")
    accelerator = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    accelerator_count = _count_field(default=0)
    duration_hours = _hours_field(default=Decimal(0))
    needed_by = serializers.DateTimeField(required=False, allow_null=True, default=None)
    submit = serializers.BooleanField(default=False, help_text="Submit for approval at once.")

    def validate_currency(self, value: str) -> str:
        return _currency_validate(value)


class ApprovalRequestUpdateSerializer(serializers.Serializer):
    """Fields to change; each edit is a new revision and supersedes the links sent.

    Changing the estimate (cost, currency, accelerator, count or duration) of a pending
    request after anyone voted discards the votes: approval starts again from the first step.
    """

    kind = serializers.ChoiceField(choices=RequestKind.choices, required=False)
    title = serializers.CharField(max_length=300, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    business_unit = serializers.SlugRelatedField(
        slug_field="code", queryset=BusinessUnit.objects.all(), required=False
    )
    estimated_cost = _cost_field(required=False)
    currency = serializers.CharField(min_length=3, max_length=3, required=False)
    accelerator = serializers.CharField(max_length=100, required=False, allow_blank=True)
    accelerator_count = _count_field(required=False)
    duration_hours = _hours_field(required=False)
    needed_by = serializers.DateTimeField(required=False, allow_null=True)

    def validate_currency(self, value: str) -> str:
        return _currency_validate(value)


class ApprovalVoteInputSerializer(serializers.Serializer):
    step = serializers.IntegerField(
        required=False,
        help_text="The step's id; leave out to vote on the open step you may vote on.",
    )
    comment = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=COMMENT_MAX
    )


class ReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=COMMENT_MAX
    )


# --- decisions and freezes ----------------------------------------------------------------


class DecisionSerializer(serializers.ModelSerializer):
    decided_by = serializers.CharField(
        source="decided_by.username", read_only=True, allow_null=True, default=None
    )
    business_unit = serializers.CharField(
        source="business_unit.code", read_only=True, allow_null=True
    )
    subject_type = serializers.SerializerMethodField()

    class Meta:
        model = Decision
        fields = [
            "id",
            "kind",
            "outcome",
            "title",
            "rationale",
            "alternatives",
            "evidence",
            "decided_by",
            "decided_as",
            "decided_at",
            "business_unit",
            "subject_type",
            "subject_id",
        ]
        read_only_fields = fields

    def get_subject_type(self, decision: Decision) -> str:
        """``app_label.model``, e.g. ``registry.modelversion``."""
        return f"{decision.subject_type.app_label}.{decision.subject_type.model}"


class DeploymentFreezeSerializer(serializers.ModelSerializer):
    business_unit = serializers.CharField(source="business_unit.code", read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )
    lifted_by = serializers.CharField(source="lifted_by.username", read_only=True, allow_null=True)
    in_force = serializers.BooleanField(read_only=True)

    class Meta:
        model = DeploymentFreeze
        fields = [
            "id",
            "business_unit",
            "reason",
            "started_at",
            "created_by",
            "in_force",
            "lifted_at",
            "lifted_by",
            "lift_reason",
        ]
        read_only_fields = fields


class FreezeLiftInputSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="Why the freeze is lifted; kept with the record.")


class ServiceLevelObjectiveSerializer(serializers.ModelSerializer):
    provider = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = ServiceLevelObjective
        fields = [
            "id",
            "name",
            "display_name",
            "description",
            "service",
            "indicator",
            "target",
            "window_days",
            "provider",
        ]


class OpenSloImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="An OpenSLO v1 YAML file (one or more kind: SLO).")


class SloMeasurementSerializer(serializers.ModelSerializer):
    slo = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = SloMeasurement
        fields = ["slo", "day", "value", "good", "total", "source"]
        read_only_fields = fields


class SloMeasurementInputSerializer(serializers.Serializer):
    """One measurement as posted; ``governance.slo_csv`` checks it (the same rules as a CSV)."""

    slo = serializers.SlugField(help_text="The SLO's name.")
    day = serializers.DateField(help_text="The UTC day, YYYY-MM-DD.")
    value = serializers.DecimalField(
        max_digits=12, decimal_places=4, help_text="Availability in percent (0-100), or p95 ms."
    )
    good = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, help_text="Successful requests."
    )
    total = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, help_text="All requests (with good)."
    )
