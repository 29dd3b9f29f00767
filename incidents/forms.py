"""Forms for the incident and post-mortem pages. They parse input; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms

from governance.models import BusinessUnit, User
from incidents.models import (
    MONEY,
    Incident,
    IncidentStatus,
    IncidentType,
    PostMortem,
    Severity,
)
from incidents.services import MAX_WINDOW_DAYS
from registry.models import CapacityPool, Endpoint, RegisteredModel

TIME_HELP = "UTC."


def _any(label: str) -> list[tuple[str, str]]:
    return [("", label)]


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


def _when(label: str, *, required: bool = True) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label, required=required, widget=DateTimeInput(), help_text=TIME_HELP
    )


def _people() -> forms.ModelChoiceField:
    return forms.ModelChoiceField(queryset=User.objects.filter(is_active=True).order_by("username"))


def _many(queryset, label: str, help_text: str = "") -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=queryset,
        required=False,
        label=label,
        help_text=help_text,
        widget=forms.SelectMultiple(attrs={"size": 6}),
    )


class PageForm(forms.Form):
    """A form whose element ids carry a prefix, so several forms share one page."""

    id_prefix = "id"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)


class IncidentFilterForm(forms.Form):
    """The filters of the incident list (GET); an empty field filters nothing."""

    q = forms.CharField(required=False, label="Title contains", max_length=200)
    status = forms.ChoiceField(choices=_any("Any status") + IncidentStatus.choices, required=False)
    severity = forms.ChoiceField(choices=_any("Any severity") + Severity.choices, required=False)
    incident_type = forms.ChoiceField(
        label="Type", choices=_any("Any type") + IncidentType.choices, required=False
    )
    business_unit = forms.ModelChoiceField(
        queryset=BusinessUnit.objects.order_by("code"), required=False, empty_label="Any unit"
    )
    model = forms.ModelChoiceField(
        queryset=RegisteredModel.objects.order_by("name"), required=False, empty_label="Any model"
    )
    pool = forms.ModelChoiceField(
        queryset=CapacityPool.objects.order_by("name"), required=False, empty_label="Any pool"
    )
    endpoint = forms.ModelChoiceField(
        queryset=Endpoint.objects.order_by("name"), required=False, empty_label="Any endpoint"
    )
    month = forms.DateField(
        required=False,
        label="Started in",
        input_formats=["%Y-%m"],
        widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m"),
        help_text="Month (UTC), e.g. 2026-10.",
    )


class IncidentForm(forms.Form):
    """Open an incident; the edit form adds status, the later times and the cost."""

    title = forms.CharField(max_length=200, help_text="What users saw, e.g. “H100 pool exhausted”.")
    severity = forms.ChoiceField(choices=Severity.choices)
    incident_type = forms.ChoiceField(
        label="Type", choices=IncidentType.choices, help_text="Decides which runbook applies."
    )
    commander = _people()
    started_at = _when("Started")
    detected_at = _when("Detected", required=False)
    mitigated_at = _when("Mitigated", required=False)
    resolved_at = _when("Resolved", required=False)
    endpoints = _many(Endpoint.objects.order_by("name"), "Affected endpoints")
    models = _many(RegisteredModel.objects.order_by("name"), "Affected models")
    pools = _many(CapacityPool.objects.order_by("name"), "Affected shared pools")
    business_units = _many(
        BusinessUnit.objects.order_by("code"),
        "Business units",
        "Units of the affected endpoints, models and pools are added on their own.",
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)

    def incident_fields(self) -> dict[str, Any]:
        """The cleaned data in the shape the services take."""
        data = dict(self.cleaned_data)
        affected = [*data.pop("endpoints"), *data.pop("models"), *data.pop("pools")]
        data["affected"] = affected
        data["business_units"] = list(data["business_units"])
        return data


class IncidentEditForm(IncidentForm):
    status = forms.ChoiceField(
        choices=[c for c in IncidentStatus.choices if c[0] != IncidentStatus.POSTMORTEM_DONE],
        help_text="Forward only: active → mitigated → resolved. "
        "Publishing the post-mortem marks it done.",
    )
    cost = forms.DecimalField(
        required=False,
        max_digits=MONEY["max_digits"],
        decimal_places=2,
        help_text="Extra spend over the baseline of the days before.",
    )
    cost_currency = forms.CharField(required=False, max_length=3, label="Cost currency")

    field_order = [
        "title",
        "severity",
        "incident_type",
        "status",
        "commander",
        "started_at",
        "detected_at",
        "mitigated_at",
        "resolved_at",
    ]

    def __init__(self, *args: Any, incident: Incident | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if incident is not None and incident.status == IncidentStatus.POSTMORTEM_DONE:
            self.fields["status"].choices = IncidentStatus.choices

    @staticmethod
    def initial_for(incident: Incident) -> dict[str, Any]:
        by_type: dict[type, list] = {Endpoint: [], RegisteredModel: [], CapacityPool: []}
        for affected in incident.affected.all():
            subject = affected.subject
            if type(subject) in by_type:
                by_type[type(subject)].append(subject.pk)
        return {
            "title": incident.title,
            "severity": incident.severity,
            "incident_type": incident.incident_type,
            "status": incident.status,
            "commander": incident.commander_id,
            "started_at": incident.started_at,
            "detected_at": incident.detected_at,
            "mitigated_at": incident.mitigated_at,
            "resolved_at": incident.resolved_at,
            "cost": incident.cost,
            "cost_currency": incident.cost_currency,
            "description": incident.description,
            "business_units": [unit.pk for unit in incident.business_units.all()],
            "endpoints": by_type[Endpoint],
            "models": by_type[RegisteredModel],
            "pools": by_type[CapacityPool],
        }


class TimelineForm(PageForm):
    id_prefix = "timeline"
    at = _when("When")
    kind = forms.CharField(max_length=32, help_text="detected, page, action, mitigation, ...")
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="What happened")


class EvidenceForm(PageForm):
    id_prefix = "evidence"
    at = _when("When")
    metric = forms.CharField(
        max_length=64, help_text="queue_depth, latency_p95_ms, error_rate, utilisation_pct, ..."
    )
    value = forms.DecimalField(max_digits=20, decimal_places=6)
    unit = forms.CharField(max_length=32, required=False, help_text="req, ms, %, GPUs, ...")
    source = forms.CharField(
        max_length=64, required=False, initial="manual", help_text="manual, or where it came from"
    )


class RoleForm(PageForm):
    id_prefix = "role"
    person = _people()
    role = forms.CharField(max_length=64, help_text="scribe, comms, subject-matter expert, ...")


class PostMortemForm(PageForm):
    """The blameless record, with who writes it and who signs it off."""

    id_prefix = "pm"
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    requests_failed = forms.IntegerField(min_value=0, required=False)
    users_affected = forms.IntegerField(min_value=0, required=False, label="Users affected")
    impact = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Impact in words, beyond the numbers.",
    )
    trigger = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    root_causes = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    root_cause_tags = forms.CharField(
        required=False,
        label="Root-cause tags",
        help_text="Short labels separated by commas, to find repeats, e.g. no-autoscaling, quota.",
    )
    contributing_factors = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="In words; link the records that contributed in the suggestions below.",
    )
    detection = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    went_well = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, label="What went well"
    )
    got_lucky = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, label="Where we got lucky"
    )
    lessons = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    window_days = forms.IntegerField(
        min_value=1,
        max_value=MAX_WINDOW_DAYS,
        label="Look-back window (days)",
        help_text="How far before the incident to look for contributing records.",
    )
    authors = forms.ModelMultipleChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        widget=forms.SelectMultiple(attrs={"size": 5}),
    )
    approvers = forms.ModelMultipleChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 5}),
        help_text="Named approvers sign it off before it is published; not its authors.",
    )

    @staticmethod
    def initial_for(pm: PostMortem) -> dict[str, Any]:
        initial = {name: getattr(pm, name) for name in PostMortemForm.base_fields}
        initial["root_cause_tags"] = ", ".join(pm.root_cause_tags or ())
        initial["authors"] = [p.pk for p in pm.authors.all()]
        initial["approvers"] = [p.pk for p in pm.approvers.all()]
        return initial

    def postmortem_fields(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["authors"] = list(data["authors"])
        data["approvers"] = list(data["approvers"])
        return data


class SignOffForm(PageForm):
    id_prefix = "sign"
    decision = forms.ChoiceField(
        choices=[("approve", "Approve this text"), ("changes", "Ask for changes")],
        widget=forms.RadioSelect,
        initial="approve",
    )
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Needed when you ask for changes: say what should change.",
    )


class MetricsForm(forms.Form):
    since = forms.DateField(
        required=False,
        label="Incidents started since",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
