"""SLO definitions in and out as OpenSLO YAML, and their daily measurements in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from django.db import transaction

from governance import openslo, slo_csv
from governance.choices import Role
from governance.exceptions import DomainError, PermissionDeniedError
from governance.models import BusinessUnit, ServiceLevelObjective, SloMeasurement, User
from governance.selectors import manages_costs


@transaction.atomic
def slos_import(*, text: str, by: User | None = None) -> tuple[int, int]:
    """Create or update the SLOs of an OpenSLO file, all or none; returns (created, updated)."""
    if by is not None and not by.has_role(Role.PLATFORM_ADMIN):
        raise PermissionDeniedError("Only platform admins import SLO definitions.")
    try:
        specs = openslo.parse(text)
    except openslo.OpenSloError as exc:
        raise DomainError(str(exc)) from exc
    if not specs:
        raise DomainError("The file holds no OpenSLO document of kind SLO.")
    units = {u.code: u for u in BusinessUnit.objects.all()}
    created = updated = 0
    for spec in specs:
        if spec.provider and spec.provider not in units:
            raise DomainError(
                f"SLO {spec.name}: provider {spec.provider!r} is not a business unit code."
            )
        _, was_created = ServiceLevelObjective.objects.update_or_create(
            name=spec.name,
            defaults={
                "display_name": spec.display_name,
                "description": spec.description,
                "service": spec.service,
                "indicator": spec.indicator,
                "target": spec.target,
                "window_days": spec.window_days,
                "provider": units.get(spec.provider),
            },
        )
        created += was_created
        updated += not was_created
    return created, updated


def slos_export(slos: Iterable[ServiceLevelObjective]) -> str:
    return openslo.render(
        [
            openslo.SloSpec(
                name=s.name,
                display_name=s.display_name,
                description=s.description,
                service=s.service,
                indicator=s.indicator,
                target=s.target,
                window_days=s.window_days,
                provider=s.provider.code if s.provider else "",
            )
            for s in slos
        ]
    )


# --- measurements ---------------------------------------------------------------------------

MEASUREMENT_FIELDS = ("value", "good", "total", "source")
BATCH = 1000


def _measurements_may_record(by: User | None) -> None:
    if not manages_costs(by):
        raise PermissionDeniedError("Only finance and platform admins record SLO measurements.")


def _source_check(source: str) -> str:
    source = source.strip()
    if not source or len(source) > SloMeasurement._meta.get_field("source").max_length:
        raise DomainError("Name the measurements' source in 1 to 32 characters, e.g. upload.")
    return source


def _measurements_store(
    *, rows: list[slo_csv.SloRow], source: str, keep_other_sources: bool
) -> int:
    slo_ids = dict(
        ServiceLevelObjective.objects.filter(name__in={r.slo for r in rows}).values_list(
            "name", "pk"
        )
    )
    wanted = [
        SloMeasurement(
            slo_id=slo_ids[r.slo],
            day=r.day,
            value=r.value,
            good=r.good,
            total=r.total,
            source=source,
        )
        for r in rows
    ]
    if not keep_other_sources:
        SloMeasurement.objects.bulk_create(
            wanted,
            batch_size=BATCH,
            update_conflicts=True,
            unique_fields=["slo", "day"],
            update_fields=MEASUREMENT_FIELDS,
        )
        return len(wanted)
    # Lock what is there, so an upload committing meanwhile waits and then wins; insert the
    # new days without touching a row that appeared since, and refresh our own rows only.
    sources = _sources_locked(wanted)
    fresh = [m for m in wanted if (m.slo_id, m.day) not in sources]
    ours = [m for m in wanted if sources.get((m.slo_id, m.day)) == source]
    SloMeasurement.objects.bulk_create(fresh, batch_size=BATCH, ignore_conflicts=True)
    SloMeasurement.objects.bulk_create(
        ours,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=["slo", "day"],
        update_fields=MEASUREMENT_FIELDS,
    )
    return len(fresh) + len(ours)


def _sources_locked(wanted: list[SloMeasurement]) -> dict[tuple[int, date], str]:
    """The source of each (slo, day) of ``wanted`` already stored, its row locked."""
    keys = {(m.slo_id, m.day) for m in wanted}
    days = [day for _, day in keys]
    found = (
        SloMeasurement.objects.select_for_update()
        .filter(slo_id__in={slo_id for slo_id, _ in keys}, day__range=(min(days), max(days)))
        .values_list("slo_id", "day", "source")
    )
    return {(slo_id, day): source for slo_id, day, source in found if (slo_id, day) in keys}


def _indicators() -> dict[str, str]:
    return dict(ServiceLevelObjective.objects.values_list("name", "indicator"))


@transaction.atomic
def slo_measurements_record(
    *,
    rows: Iterable[Mapping[str, object]],
    source: str,
    by: User | None = None,
    keep_other_sources: bool = False,
) -> int:
    """Store SLO measurements, all or none; returns how many rows were stored.

    ``rows`` are mappings with ``slo`` (the SLO's name), ``day``, ``value`` and optionally
    ``good`` and ``total``, as text (JSON posted to the API) or as values (``date``,
    ``Decimal``, ``int``: rows derived by the system). A measurement for an SLO and day that
    is already stored is replaced. Any bad row refuses them all with a ``DomainError`` that
    names the row and the field.

    ``keep_other_sources`` leaves alone a day that another source measured: derivations pass
    it, so a measurement somebody uploaded is never overwritten by one the system worked out.

    Finance and platform admins record measurements; ``by=None`` is the system.
    """
    _measurements_may_record(by)
    source = _source_check(source)
    if isinstance(rows, str | bytes | Mapping):
        raise DomainError("Send a list of rows, each with slo, day, value[, good, total].")
    rows = list(rows)
    if not rows:
        return 0
    try:
        checked = slo_csv.slo_json_read(rows, indicators=_indicators())
    except slo_csv.UsageFileError as exc:
        raise DomainError(str(exc)) from exc
    return _measurements_store(rows=checked, source=source, keep_other_sources=keep_other_sources)


@transaction.atomic
def slo_measurements_import(
    *, data: str | bytes, source: str = "upload", by: User | None = None
) -> int:
    """Store the measurements of a CSV file ``slo,day,value[,good,total]``, all or none.

    The file is read by ``governance.slo_csv`` (optional header, whitespace and a UTF-8 BOM
    tolerated); a bad row refuses the file with a ``DomainError`` naming line and column.
    The same SLO and day replaces what is stored, whatever its source. Returns the rows
    stored. Finance and platform admins only; ``by=None`` is the system.
    """
    _measurements_may_record(by)
    source = _source_check(source)
    try:
        checked = slo_csv.slo_csv_read(data, indicators=_indicators())
    except slo_csv.UsageFileError as exc:
        raise DomainError(str(exc)) from exc
    return _measurements_store(rows=checked, source=source, keep_other_sources=False)
