"""Forms of the TCO pages: the calculator (which also saves a scenario) and attaching one."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from costs import tco
from costs.models import TcoScenario
from costs.tco_services import INPUT_FIELDS
from governance.policy import CURRENCY_HELP, currency_code_parse


def _decimal(label: str, *, digits: int, places: int, help_text: str = "", **kwargs):
    return forms.DecimalField(
        label=label,
        max_digits=digits,
        decimal_places=places,
        help_text=help_text,
        **kwargs,
    )


class TcoForm(forms.Form):
    """A workload's inputs; a name is needed only to save it as a scenario."""

    name = forms.CharField(
        max_length=200,
        required=False,
        help_text="Needed to save the scenario, e.g. “8 x H100 node vs p5.48xlarge”.",
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    business_unit = forms.ModelChoiceField(
        queryset=None,
        required=False,
        help_text="The unit whose workload it is; its people read the scenario.",
    )
    currency = forms.CharField(max_length=3, initial="USD", help_text=CURRENCY_HELP)
    capex = _decimal(
        "Capex (hardware purchase)", digits=24, places=2, help_text="Servers, GPUs, network."
    )
    depreciation_years = forms.IntegerField(
        label="Depreciation (years)", min_value=1, max_value=30, initial=4
    )
    power_kw = _decimal("Power draw (kW)", digits=10, places=3, help_text="At the wall, IT load.")
    pue = _decimal("PUE", digits=5, places=3, initial=Decimal("1.4"), help_text="1 or more.")
    price_per_kwh = _decimal("Price per kWh", digits=10, places=5)
    operations_per_year = _decimal(
        "Operations a year",
        digits=24,
        places=2,
        initial=0,
        help_text="Staff, support contracts, colocation space.",
    )
    utilisation_percent = _decimal(
        "Utilisation (%)",
        digits=5,
        places=2,
        initial=100,
        help_text="Share of the year's hours the workload runs; on-demand pays only those.",
    )
    hours_per_year = forms.IntegerField(
        min_value=1, max_value=tco.MAX_HOURS_PER_YEAR, initial=tco.HOURS_PER_YEAR
    )
    cloud_on_demand_hourly = _decimal(
        "Cloud on-demand per hour", digits=18, places=6, help_text="The same capacity in the cloud."
    )
    cloud_committed_hourly = _decimal(
        "Cloud committed per hour",
        digits=18,
        places=6,
        required=False,
        help_text="Optional: a 1- or 3-year commitment's effective hourly price.",
    )
    benchmark = forms.ModelChoiceField(
        queryset=None,
        required=False,
        help_text="Its throughput (one replica) gives the cost per 1M requests.",
    )
    requests_per_second = _decimal(
        "Or throughput (requests/s)",
        digits=14,
        places=4,
        required=False,
        help_text="Given here, it is used instead of the benchmark's.",
    )

    def __init__(self, *args, units, benchmarks, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["business_unit"].queryset = units
        self.fields["benchmark"].queryset = benchmarks

    @classmethod
    def for_scenario(cls, scenario: TcoScenario, *, units, benchmarks, data=None) -> TcoForm:
        initial = {
            "name": scenario.name,
            "description": scenario.description,
            "business_unit": scenario.business_unit_id,
            "currency": scenario.currency,
            "benchmark": scenario.benchmark_id,
            **{key: getattr(scenario, key) for key in INPUT_FIELDS},
        }
        return cls(data=data, initial=initial, units=units, benchmarks=benchmarks)

    def clean_currency(self) -> str:
        code = currency_code_parse(self.cleaned_data.get("currency"))
        if code is None:
            raise forms.ValidationError(CURRENCY_HELP)
        return code

    def inputs(self) -> dict:
        """The cleaned inputs as the services take them (no name, description or unit)."""
        data = dict(self.cleaned_data)
        for key in ("name", "description", "business_unit"):
            data.pop(key, None)
        return data


class TcoAttachForm(forms.Form):
    """Attach a scenario to an assessment or a decision the reader can see."""

    assessment = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    decision = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)

    def __init__(self, *args, assessments, decisions, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assessment"].choices = [
            ("", "—"),
            *((a.pk, f"#{a.pk} {a}") for a in assessments),
        ]
        self.fields["decision"].choices = [
            ("", "—"),
            *((d.pk, f"#{d.pk} {d.decided_at:%Y-%m-%d} · {d}"[:140]) for d in decisions),
        ]

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("assessment") and not data.get("decision"):
            raise forms.ValidationError("Choose an assessment or a decision to attach it to.")
        return data
