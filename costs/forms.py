from __future__ import annotations

from django import forms

from costs.budgets import thresholds_parse
from costs.ingest import FORMATS
from costs.models import AllocationRule, Budget, BudgetBasis
from costs.selectors import month_parse
from governance.models import BusinessUnit
from governance.money import money_round


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


def _comma_list(text: str) -> list[str]:
    return [v.strip() for v in text.replace(";", ",").split(",") if v.strip()]


class BudgetForm(forms.Form):
    """A budget's fields; the service checks the rules (scope, overlaps, currency decimals)."""

    name = forms.CharField(max_length=120, help_text="e.g. Research GPUs")
    business_unit = forms.ModelChoiceField(queryset=BusinessUnit.objects.none())
    amount = forms.DecimalField(
        max_digits=18, decimal_places=4, min_value=0, label="Amount per month"
    )
    currency = forms.CharField(
        max_length=3,
        initial="USD",
        help_text="ISO code. Only costs billed in this currency count; others are never converted.",
    )
    basis = forms.ChoiceField(
        choices=BudgetBasis.choices,
        initial=BudgetBasis.BILLED,
        help_text="Billed: what the invoice says. Effective: after discounts and commitments.",
    )
    tag_key = forms.CharField(
        max_length=255,
        required=False,
        label="Project tag key",
        help_text="Optional, e.g. project. Case and the AWS user: prefix do not matter.",
    )
    tag_value = forms.CharField(
        max_length=255, required=False, label="Project tag value", help_text="e.g. llm-pretrain"
    )
    thresholds = forms.CharField(
        required=False,
        initial="50, 80, 100",
        label="Alert at spend to date (%)",
        help_text="Comma-separated percentages of the amount.",
    )
    forecast_thresholds = forms.CharField(
        required=False,
        initial="50, 80, 100",
        label="Alert at projected month-end spend (%)",
        help_text="The projection is a simple trend: spend to date ÷ days with data, "
        "times the days in the month.",
    )
    freeze_at_percent = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1000,
        initial=100,
        label="Freeze deployments at spend to date (%)",
        help_text="Leave empty to alert only, never freeze.",
    )
    first_month = forms.CharField(
        required=False,
        label="First month",
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
        help_text="Empty: from the start.",
    )
    last_month = forms.CharField(
        required=False,
        label="Last month",
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
        help_text="Empty: no end.",
    )
    notify = forms.CharField(
        required=False,
        label="Also e-mail",
        help_text="Comma-separated addresses; the unit's owner is always e-mailed.",
    )

    def __init__(self, *args, units, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["business_unit"].queryset = units

    @classmethod
    def for_budget(cls, budget: Budget, *, units, data=None) -> BudgetForm:
        initial = {
            "name": budget.name,
            "business_unit": budget.business_unit_id,
            "amount": money_round(budget.amount, budget.currency),
            "currency": budget.currency,
            "basis": budget.basis,
            "tag_key": budget.tag_key,
            "tag_value": budget.tag_value,
            "thresholds": ", ".join(str(t) for t in budget.thresholds),
            "forecast_thresholds": ", ".join(str(t) for t in budget.forecast_thresholds),
            "freeze_at_percent": budget.freeze_at_percent,
            "first_month": f"{budget.first_month:%Y-%m}" if budget.first_month else "",
            "last_month": f"{budget.last_month:%Y-%m}" if budget.last_month else "",
            "notify": ", ".join(budget.notify),
        }
        return cls(data=data, initial=initial, units=units)

    def _thresholds(self, name: str) -> list[int]:
        try:
            return thresholds_parse(_comma_list(self.cleaned_data[name]))
        except ValueError as exc:
            raise forms.ValidationError(f"{exc}.") from exc

    def clean_thresholds(self) -> list[int]:
        return self._thresholds("thresholds")

    def clean_forecast_thresholds(self) -> list[int]:
        return self._thresholds("forecast_thresholds")

    def _month(self, name: str):
        raw = self.cleaned_data[name].strip()
        if not raw:
            return None
        try:
            return month_parse(raw)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_first_month(self):
        return self._month("first_month")

    def clean_last_month(self):
        return self._month("last_month")

    def clean_notify(self) -> list[str]:
        return _comma_list(self.cleaned_data["notify"])


class FreezeLiftForm(forms.Form):
    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why deployments may go ahead again; kept with the freeze.",
    )


class SyncRunForm(forms.Form):
    """Run a sync now: the account, what to read, and optionally the days."""

    account = forms.ModelChoiceField(queryset=None, label="Cloud account")
    kind = forms.ChoiceField(label="What to read")
    start = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From (UTC day)"
    )
    end = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        label="Until (exclusive)",
        help_text="Leave both empty for the usual window: costs this month and last, usage "
        "the last 14 days.",
    )

    def __init__(self, *args, accounts, kinds, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts
        self.fields["kind"].choices = kinds
