from __future__ import annotations

from django import forms

from costs.ingest import FORMATS
from costs.models import AllocationRule
from governance.models import BusinessUnit


class BillingUploadForm(forms.Form):
    file = forms.FileField(
        label="Billing export",
        help_text="FOCUS, AWS CUR (1.0 or 2.0), GCP BigQuery export or Azure cost export; "
        "CSV, .csv.gz, Parquet or JSONL.",
    )
    format = forms.ChoiceField(
        choices=[(f, "Detect automatically" if f == "auto" else f) for f in FORMATS],
        initial="auto",
        required=False,
    )

    def clean_format(self) -> str:
        return self.cleaned_data["format"] or "auto"


class AllocationRuleForm(forms.Form):
    business_unit = forms.ModelChoiceField(queryset=BusinessUnit.objects.order_by("code"))
    tag_key = forms.CharField(
        max_length=255, label="Tag or label key", help_text="e.g. team, cost-center, user:team"
    )
    tag_values = forms.CharField(
        required=False,
        label="Values",
        help_text="Comma-separated; case does not matter. Leave empty to match any value.",
    )
    priority = forms.IntegerField(
        min_value=0,
        max_value=2_147_483_647,
        initial=100,
        help_text="Lower runs first; the first match wins.",
    )
    description = forms.CharField(max_length=255, required=False)
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    @classmethod
    def for_rule(cls, rule: AllocationRule, data=None) -> AllocationRuleForm:
        initial = {
            "business_unit": rule.business_unit_id,
            "tag_key": rule.tag_key,
            "tag_values": ", ".join(rule.tag_values),
            "priority": rule.priority,
            "description": rule.description,
            "is_active": rule.is_active,
        }
        return cls(data=data, initial=initial)

    def clean_tag_values(self) -> list[str]:
        return [v.strip() for v in self.cleaned_data["tag_values"].split(",") if v.strip()]
