"""Forms for the approval pages; the rules live in ``governance.services``."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.db.models import QuerySet

from governance import policy as rules
from governance.choices import RequestKind
from governance.models import ApprovalRequest, BusinessUnit
from governance.services.approvals import (
    COMMENT_MAX,
    MAX_ACCELERATOR_COUNT,
    MAX_DURATION_HOURS,
    MAX_ESTIMATED_COST,
)


class ApprovalRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=RequestKind.choices)
    title = forms.CharField(max_length=300, help_text="e.g. Fine-tune ranker on October clicks")
    business_unit = forms.ModelChoiceField(queryset=BusinessUnit.objects.none())
    estimated_cost = forms.DecimalField(
        max_digits=22,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=MAX_ESTIMATED_COST,
        label="Estimated cost",
        help_text="What the operation will cost in total.",
    )
    currency = forms.CharField(max_length=3, min_length=3, initial="USD")
    accelerator = forms.CharField(max_length=100, required=False, help_text="e.g. H100")
    accelerator_count = forms.IntegerField(
        min_value=0, max_value=MAX_ACCELERATOR_COUNT, initial=0, label="Accelerators"
    )
    duration_hours = forms.DecimalField(
        max_digits=10,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=Decimal(MAX_DURATION_HOURS),
        initial=0,
        label="Duration (hours)",
    )
    needed_by = forms.DateTimeField(
        required=False,
        label="Needed by (UTC)",
        help_text="Undecided by then, the request expires. Leave empty for no deadline.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 5}), help_text="What and why."
    )

    def __init__(self, *args, units: QuerySet[BusinessUnit], fixed: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["business_unit"].queryset = units
        if fixed:
            for name in ("kind", "business_unit"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "Fixed once submitted."

    @classmethod
    def for_request(cls, request: ApprovalRequest, *, units, data=None) -> ApprovalRequestForm:
        initial = {
            "kind": request.kind,
            "title": request.title,
            "business_unit": request.business_unit_id,
            "estimated_cost": request.estimated_cost,
            "currency": request.currency,
            "accelerator": request.accelerator,
            "accelerator_count": request.accelerator_count,
            "duration_hours": request.duration_hours,
            "needed_by": request.needed_by,
            "description": request.description,
        }
        return cls(data=data, initial=initial, units=units, fixed=request.status != "draft")

    def clean_currency(self) -> str:
        currency = rules.currency_code_parse(self.cleaned_data["currency"])
        if currency is None:
            raise forms.ValidationError(rules.CURRENCY_HELP)
        return currency


class VoteForm(forms.Form):
    step = forms.IntegerField(widget=forms.HiddenInput)
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(
        required=False,
        max_length=COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Needed when you reject, so the requester knows what to change.",
    )


class LinkConfirmForm(forms.Form):
    comment = forms.CharField(
        required=False,
        max_length=COMMENT_MAX,
        label="Comment (optional)",
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    def __init__(self, *args, reject: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if reject:
            self.fields["comment"].required = True
            self.fields["comment"].label = "Why do you reject it?"
            self.fields["comment"].help_text = "The requester reads this."


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=COMMENT_MAX, widget=forms.Textarea(attrs={"rows": 2}), label="Reason"
    )


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Reason (optional)",
    )
