"""Google Cloud syncs: daily costs from the BigQuery billing export, hourly hardware prices
from the Cloud Billing catalog, and what the billing account says about itself and its
projects.

Every call goes through the clients of ``costs.clients`` and the retry of ``_retry``:
throttling (429, BigQuery's ``rateLimitExceeded``) and 5xx answers are retried inside the
call with exponential backoff and full jitter (google-api-core); what still fails after
``RETRY_SECONDS`` raises ``SyncRetryableError`` and the task re-queues the run. Refusals
(400, 401, 403, 404) fail the run with what to fix. Nothing is written before every read
of a run has succeeded, and each write is atomic, so a failure keeps the earlier data.

The Google libraries load only when a sync runs: they take a second to import.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from costs import clients
from costs.models import CloudAccount, ImportStatus, SyncKind, SyncRun
from costs.services import billing_import
from costs.sources import gcp_bigquery
from costs.sync import (
    SyncError,
    SyncResult,
    SyncRetryableError,
    SyncWindow,
    default_window,
    scrub,
    sync_register,
)
from registry.choices import Provider
from registry.models import HardwarePrice
from registry.services import hardware_price_record

log = logging.getLogger(__name__)

# In-call retries of throttling and 5xx: delays drawn from [0, initial * 2^n], capped at
# RETRY_MAXIMUM, for at most RETRY_SECONDS per call (tests shorten them).
RETRY_INITIAL = 1.0
RETRY_MAXIMUM = 30.0
RETRY_SECONDS = 120.0
CALL_TIMEOUT = 60.0

# Google OAuth access tokens, and bearer tokens in echoed headers; sync.scrub does the rest.
_BILLING_ACCOUNT_ID = re.compile(r"^[0-9A-Z]{6}-[0-9A-Z]{6}-[0-9A-Z]{6}$")
# BigQuery's error reasons worth retrying; rateLimitExceeded comes as a 403.
_RETRYABLE_REASONS = {"rateLimitExceeded", "backendError", "internalError", "badGateway"}


# --- errors and clients ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Hints:
    """What to tell the admin when Google refuses a call: for access, for a missing thing."""

    access: str
    missing: str


def _transient() -> tuple[type[Exception], ...]:
    """Throttling and the 5xx answers that pass."""
    from google.api_core import exceptions as api

    return (
        api.TooManyRequests,
        api.InternalServerError,
        api.BadGateway,
        api.ServiceUnavailable,
        api.GatewayTimeout,
    )


def _retry():
    from google.api_core import retry

    return retry.Retry(
        predicate=retry.if_exception_type(*_transient()),
        initial=RETRY_INITIAL,
        maximum=RETRY_MAXIMUM,
        multiplier=2.0,
        timeout=RETRY_SECONDS,
    )


def _bigquery_retries():
    """BigQuery's own predicates (they also know its 403 ``rateLimitExceeded``), our delays."""
    from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY

    call = DEFAULT_RETRY.with_delay(
        initial=RETRY_INITIAL, maximum=RETRY_MAXIMUM, multiplier=2.0
    ).with_timeout(RETRY_SECONDS)
    job = DEFAULT_JOB_RETRY.with_delay(
        initial=RETRY_INITIAL, maximum=RETRY_MAXIMUM, multiplier=2.0
    ).with_timeout(RETRY_SECONDS)
    return call, job


def _api_error(exc: Any, doing: str, hints: _Hints) -> SyncError:
    from google.api_core import exceptions as api

    message = _said(exc)
    errors = getattr(exc, "errors", None) or []
    reason = getattr(exc, "reason", None) or (
        errors[0].get("reason") if errors and isinstance(errors[0], dict) else None
    )
    said = f"{exc.code} {message}" if exc.code else message
    if isinstance(exc, _transient()) or reason in _RETRYABLE_REASONS:
        return SyncRetryableError(
            scrub(f"Google Cloud is throttling or unwell while {doing} ({said}); will try again.")
        )
    if isinstance(exc, api.Unauthorized):
        text = (
            f"Google Cloud did not accept the credentials while {doing} ({said}). Check the "
            "service-account key the account names, or the application default credentials."
        )
    elif isinstance(exc, api.Forbidden):
        text = f"Permission denied while {doing} ({said}). {hints.access}"
    elif isinstance(exc, api.NotFound):
        text = f"Not found while {doing} ({said}). {hints.missing}"
    elif isinstance(exc, api.BadRequest):
        text = f"Google Cloud rejected the request while {doing} ({said}). {hints.missing}"
    else:
        text = f"Google Cloud answered while {doing}: {said}."
    return SyncError(scrub(text))


@contextmanager
def _google_errors(doing: str, hints: _Hints) -> Iterator[None]:
    """Turn what the Google libraries raise into a readable, scrubbed ``SyncError``."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    try:
        yield
    except api.RetryError as exc:
        cause: BaseException | None = exc
        while isinstance(cause, api.RetryError):  # BigQuery nests its call and job retries
            cause = cause.cause
        said = (
            f"{cause.code} {_said(cause)}"
            if isinstance(cause, api.GoogleAPICallError)
            else _first_line(exc)
        )
        raise SyncRetryableError(
            scrub(
                f"Google Cloud still refused after retries while {doing} ({said}); will try again."
            )
        ) from None
    except api.GoogleAPICallError as exc:
        raise _api_error(exc, doing, hints) from None
    except (
        auth.TransportError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
    ) as exc:
        raise SyncRetryableError(
            f"Could not reach Google Cloud while {doing} ({type(exc).__name__}); will try again."
        ) from None
    except auth.GoogleAuthError as exc:
        # A 401 makes the client refresh its token; a refused refresh lands here.
        raise SyncError(
            scrub(
                f"Google did not accept the credentials while {doing} ({_first_line(exc)}). "
                "Check that the service-account key is current and its account not disabled."
            )
        ) from None


# The REST clients start messages with the request ("GET https://…?pageToken=…: "); the
# admin needs Google's words, not our URL.
_REQUEST_PREFIX = re.compile(r"^(?:GET|POST|PUT|PATCH|DELETE) \S+: ")


def _said(exc: Any) -> str:
    """Google's message of an API error, on one line, without the request in front."""
    message = " ".join(str(exc.message or type(exc).__name__).split())
    return _REQUEST_PREFIX.sub("", message)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return scrub(text[0][:300]) if text else type(exc).__name__


def _credentials_source(account: CloudAccount) -> str:
    reference = account.gcp_credentials.strip()
    if not reference:
        return "application default credentials"
    if reference.startswith("env:"):
        return f"the key file named by ${reference[4:]}"
    return f"key file {reference}"


def _client(factory: Callable[[CloudAccount], Any], account: CloudAccount) -> Any:
    """Build a client; a key file that is missing or unreadable fails the run readably.

    Only the exception's type and first line are kept, scrubbed: a key file's contents must
    never reach the run, the logs or the page.
    """
    from google.auth import exceptions as auth

    reference = account.gcp_credentials.strip()
    if reference.startswith("env:") and not os.environ.get(reference[4:]):
        raise SyncError(
            f"The environment variable {reference[4:]} named by {account.name}'s GCP "
            "credentials is not set; set it to the path of the service-account key file."
        )
    try:
        return factory(account)
    except (OSError, ValueError, auth.GoogleAuthError) as exc:
        raise SyncError(
            f"Cannot load the GCP credentials of {account.name} from "
            f"{_credentials_source(account)} ({type(exc).__name__}: {_first_line(exc)}). Point "
            "the account at a readable service-account key file (a path, or env:NAME of a "
            "variable holding it), or leave it empty for application default credentials."
        ) from None


def _billing_account_id(account: CloudAccount) -> str:
    billing_id = account.account_id.strip().upper()
    if not _BILLING_ACCOUNT_ID.fullmatch(billing_id):
        raise SyncError(
            f"{account.account_id!r} is not a GCP billing account id; set the account id to "
            "the billing account's XXXXXX-XXXXXX-XXXXXX (Billing > Account management)."
        )
    return billing_id


# --- costs: the BigQuery billing export --------------------------------------------------


@sync_register("gcp", SyncKind.COSTS)
def gcp_costs_sync(*, account: CloudAccount, window: SyncWindow | None, run: SyncRun) -> SyncResult:
    """Re-read each invoice month the window touches from the billing export table, one
    aggregated daily query per month, and import it as a gcp-export file.

    A month is read whole, whatever part of it the window covers: the import replaces the
    (gcp-export, billing account, invoice month) slice, so importing part of a month would
    drop the rest. All months are queried before any is imported, so a refused or throttled
    query leaves every month as it was; each month's import is atomic on its own.
    """
    try:
        gcp_bigquery.table_reference(account.bq_table)
    except ValueError as exc:
        raise SyncError(f"{account.name}: {exc}.") from None
    billing_id = _billing_account_id(account)
    table = account.bq_table.strip()
    if not account.gcp_project:
        raise SyncError(
            f"{account.name} names no GCP project to run the BigQuery queries in; set it "
            f"(often the project of the export table, {table.split('.')[0]})."
        )
    span = window or default_window(SyncKind.COSTS, timezone.now().date())
    months = gcp_bigquery.invoice_months(span.start, span.end) if span else []
    hints = _Hints(
        access=(
            f"Give the service account BigQuery Data Viewer on the dataset of {table} and "
            f"BigQuery Job User on project {account.gcp_project}."
        ),
        missing=(
            f"Check the account's BigQuery table ({table}: project.dataset."
            "gcp_billing_export_v1_…) and project, and that the table is a standard "
            "billing export."
        ),
    )
    client = _client(clients.gcp_bigquery_client, account)
    detail: dict[str, Any] = {"table": table, "months": {}, "warnings": []}
    stored = 0
    with tempfile.TemporaryDirectory(prefix="capgov-gcp-") as folder:
        exports = []
        for month in months:
            path = Path(folder) / f"bigquery-{billing_id}-{month}.jsonl"
            with _google_errors(f"querying {table} for invoice month {month}", hints):
                exports.append(
                    (month, _export_month(client, account, billing_id, table, month, path))
                )
        imported: list[str] = []
        # One transaction for every month: a failure on one keeps all the earlier data.
        with transaction.atomic():
            for month, export in exports:
                label = f"{month[:4]}-{month[4:]}"
                if export.rows == 0:
                    detail["months"][label] = {"query_rows": 0}
                    detail["warnings"].append(
                        f"The export has no rows for invoice month {label}; "
                        "rows stored for it before were kept."
                    )
                    continue
                record = billing_import(
                    path=export.path,
                    fmt="gcp-export",
                    display_name=f"BigQuery {label} {table}"[:255],
                )
                if record.status != ImportStatus.SUCCEEDED:
                    done = ", ".join(imported) or "none"
                    raise SyncError(
                        f"Invoice month {label} from {table} could not be imported: "
                        f"{record.error} (months imported before it in this run: {done}; "
                        "the others keep their earlier rows)."
                    )
                imported.append(label)
                stored += record.rows_stored
                detail["months"][label] = {
                    "query_rows": export.rows,
                    "export_lines": export.export_lines,
                    "rows_stored": record.rows_stored,
                    "billed_totals": record.billed_totals,
                    "billing_import": record.pk,
                }
                log.info("gcp costs %s %s: %s rows stored", account.pk, label, record.rows_stored)
                # The importer and the query must agree on the month's net cost to the digit.
                if {c: Decimal(v) for c, v in record.billed_totals.items()} != export.net:
                    returned = {c: f"{v:f}" for c, v in export.net.items()}
                    detail["warnings"].append(
                        f"{label}: the import stored {record.billed_totals}, "
                        f"BigQuery returned {returned}."
                    )
    return SyncResult(rows=stored, detail=detail)


def _export_month(
    client: Any, account: CloudAccount, billing_id: str, table: str, month: str, path: Path
) -> gcp_bigquery.ExportFile:
    from google.cloud import bigquery

    values = gcp_bigquery.query_parameters(
        invoice_month=month,
        billing_account_id=billing_id,
        label_keys=account.cost_allocation_tags or [],
    )
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("invoice_month", "STRING", values["invoice_month"]),
            bigquery.ScalarQueryParameter(
                "billing_account_id", "STRING", values["billing_account_id"]
            ),
            bigquery.ArrayQueryParameter("label_keys", "STRING", values["label_keys"]),
        ]
    )
    call_retry, job_retry = _bigquery_retries()
    rows = client.query_and_wait(
        gcp_bigquery.daily_query(table),
        job_config=config,
        project=account.gcp_project,
        retry=call_retry,
        job_retry=job_retry,
        api_timeout=CALL_TIMEOUT,
    )
    # Rows stream from the result pages (more pages are fetched as they are read).
    return gcp_bigquery.write_export(
        (dict(row.items()) for row in rows),
        path=path,
        invoice_month=month,
        billing_account_id=billing_id,
    )


# --- prices: the Cloud Billing catalog ---------------------------------------------------

COMPUTE_ENGINE = "Compute Engine"
NANOS = 9


@dataclass(frozen=True)
class MachineShape:
    """What an accelerator-optimised machine type is billed as: cores, memory, GPUs."""

    family: str
    vcpus: int
    memory_gib: int
    gpus: int
    gpu: str


# Machine types billed as the sum of their family's core and RAM SKUs and their GPUs
# (vCPU / GiB / GPU counts from the Compute Engine machine type tables). Local SSD that a
# machine type may bundle is not included.
MACHINE_SHAPES: dict[str, MachineShape] = {
    **{
        f"g2-standard-{vcpus}": MachineShape("G2", vcpus, vcpus * 4, gpus, "Nvidia L4 GPU")
        for vcpus, gpus in ((4, 1), (8, 1), (12, 1), (16, 1), (24, 2), (32, 1), (48, 4), (96, 8))
    },
    **{
        f"a2-highgpu-{gpus}g": MachineShape(
            "A2", 12 * gpus, 85 * gpus, gpus, "Nvidia Tesla A100 GPU"
        )
        for gpus in (1, 2, 4, 8)
    },
    "a2-megagpu-16g": MachineShape("A2", 96, 1360, 16, "Nvidia Tesla A100 GPU"),
    "a3-highgpu-8g": MachineShape("A3", 208, 1872, 8, "Nvidia H100 80GB GPU"),
}
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*-[a-z]+-\d+[a-z]*$")
_SKU_DESCRIPTION = re.compile(r"^(?P<name>.+?) running in (?P<place>.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class PriceComponent:
    """One SKU (by name, without " running in <place>") and how much of it a replica uses."""

    sku_name: str
    usage_unit: str
    quantity: Decimal


def price_components(instance_type: str, accelerator_count: int) -> list[PriceComponent] | None:
    """What a registry price's instance type is billed as; None if this sync cannot tell.

    - A machine type of ``MACHINE_SHAPES`` (``g2-standard-8``): its family's
      "<F> Instance Core" per vCPU-hour, "<F> Instance Ram" per GiB-hour, and its GPU SKU
      per GPU-hour (g2-standard-8 = 8 cores + 32 GiB + 1 "Nvidia L4 GPU").
    - Any other text that is not a machine type is a SKU name, as the catalog describes it
      (``Nvidia L4 GPU``; a trailing " running in Americas" is ignored, as the region picks
      the SKU), priced per accelerator: times the profile's accelerator count (at least 1).
    """
    key = instance_type.strip().lower()
    shape = MACHINE_SHAPES.get(key)
    if shape is not None:
        return [
            PriceComponent(f"{shape.family} Instance Core", "h", Decimal(shape.vcpus)),
            PriceComponent(f"{shape.family} Instance Ram", "GiBy.h", Decimal(shape.memory_gib)),
            PriceComponent(shape.gpu, "h", Decimal(shape.gpus)),
        ]
    if not key or _MACHINE_TYPE.fullmatch(key):
        return None
    match = _SKU_DESCRIPTION.match(instance_type.strip())
    name = match["name"] if match else instance_type.strip()
    return [PriceComponent(name, "h", Decimal(max(accelerator_count, 1)))]


def sku_name(description: str) -> str | None:
    """The SKU's name part, lower-cased: "Nvidia L4 GPU running in Americas" -> "nvidia l4 gpu".

    Spot, commitment and DWS SKUs put their words before the name ("Spot Preemptible Nvidia
    L4 GPU …", "Commitment v1: …"), so they never equal a wanted name.
    """
    match = _SKU_DESCRIPTION.match(description.strip())
    return " ".join(match["name"].lower().split()) if match else None


@dataclass(frozen=True)
class SkuOffer:
    """The on-demand price of one SKU, as read from ``pricing_info[0]``."""

    sku_id: str
    description: str
    regions: int
    unit_price: Decimal
    currency: str
    usage_unit: str
    effective_from: dt.datetime | None


def money_decimal(units: int, nanos: int) -> Decimal:
    """google.type.Money as an exact Decimal (units and nanos carry the same sign)."""
    return (Decimal(units) + Decimal(nanos).scaleb(-NANOS)).normalize()


def sku_offer(sku: Any) -> SkuOffer | None:
    """The last tier's unit price of the SKU's current pricing, or None when it has none."""
    if not sku.pricing_info:
        return None
    info = sku.pricing_info[0]
    expression = info.pricing_expression
    if not expression.tiered_rates:
        return None
    money = expression.tiered_rates[-1].unit_price
    effective = info.effective_time
    stamp = effective.timestamp() if effective else 0
    return SkuOffer(
        sku_id=sku.sku_id,
        description=sku.description,
        regions=len(sku.service_regions),
        unit_price=money_decimal(money.units, money.nanos),
        currency=money.currency_code,
        usage_unit=expression.usage_unit,
        effective_from=dt.datetime.fromtimestamp(stamp, tz=dt.UTC) if stamp > 0 else None,
    )


@dataclass
class _Plan:
    """A registry price to refresh and the SKUs it is made of."""

    price: HardwarePrice
    components: list[PriceComponent]


@dataclass
class SkuMatcher:
    """Keeps, while the SKU list streams past, the on-demand SKUs that some plan needs.

    A SKU serves a (name, region) when its usage type is ``OnDemand``, its description is
    "<name> running in <place>" (case and spacing aside) and ``service_regions`` holds the
    region. When several do, the most specific wins: fewest service regions, then SKU id.
    """

    wanted: dict[str, set[str]] = field(default_factory=dict)
    found: dict[tuple[str, str], list[SkuOffer]] = field(default_factory=lambda: defaultdict(list))

    def want(self, name: str, region: str) -> None:
        self.wanted.setdefault(" ".join(name.lower().split()), set()).add(region)

    def offer(self, sku: Any) -> None:
        if sku.category.usage_type != "OnDemand":
            return
        name = sku_name(sku.description)
        regions = self.wanted.get(name or "")
        if not regions:
            return
        served = regions.intersection(sku.service_regions)
        if not served:
            return
        offer = sku_offer(sku)
        if offer is None:
            return
        for region in served:
            self.found[(name or "", region)].append(offer)

    def best(self, name: str, region: str) -> SkuOffer | None:
        offers = self.found.get((" ".join(name.lower().split()), region), [])
        return min(offers, key=lambda o: (o.regions, o.sku_id), default=None)


def _price_targets() -> list[HardwarePrice]:
    """The newest GCP price per (hardware profile, region): what the registry prices today."""
    latest: dict[tuple[int, str], HardwarePrice] = {}
    prices = (
        HardwarePrice.objects.filter(provider=Provider.GCP)
        .select_related("hardware_profile")
        .order_by("hardware_profile_id", "region", "-effective_from", "-pk")
    )
    for price in prices:
        latest.setdefault((price.hardware_profile_id, price.region), price)
    return list(latest.values())


def _plans(targets: list[HardwarePrice], warnings: list[str]) -> list[_Plan]:
    plans = []
    for price in targets:
        what = f"{price.hardware_profile} ({price.instance_type or 'no instance type'})"
        components = price_components(price.instance_type, price.hardware_profile.accelerator_count)
        if components is None:
            known = ", ".join(sorted(MACHINE_SHAPES))
            warnings.append(
                f"{what}: not a machine type this sync prices ({known}) nor a SKU name such "
                "as 'Nvidia L4 GPU'; set the price's instance type to one of them."
            )
        elif not price.region:
            warnings.append(f"{what}: the price names no region (e.g. us-central1); set one.")
        else:
            plans.append(_Plan(price=price, components=components))
    return plans


@sync_register("gcp", SyncKind.PRICES)
def gcp_prices_sync(
    *, account: CloudAccount, window: SyncWindow | None, run: SyncRun
) -> SyncResult:
    """Refresh the hourly price of every GCP hardware price in the registry from the
    Cloud Billing catalog (Compute Engine's on-demand SKUs; see ``price_components`` and
    ``SkuMatcher`` for which SKUs make a price).

    The catalog dates its current prices within the last hours, so a price is recorded
    (``hardware_price_record``, from ``pricing_info[0].effective_time``) only when it
    differs from the one in force; an unchanged price is left alone.
    """
    warnings: list[str] = []
    plans = _plans(_price_targets(), warnings)
    detail: dict[str, Any] = {"prices": [], "warnings": warnings}
    if not plans:
        warnings.append(
            "No Google Cloud hardware price to refresh: give a hardware profile a GCP price "
            "with an instance type (g2-standard-8, or a GPU SKU name) and a region."
        )
        return SyncResult(rows=0, detail=detail)
    hints = _Hints(
        access=(
            "Enable the Cloud Billing API on the project of the service account's key; "
            "reading the public catalog needs no role."
        ),
        missing="The catalog has no such service or SKUs; is the Cloud Billing API enabled?",
    )
    client = _client(clients.gcp_catalog_client, account)
    retry = _retry()
    by_currency: dict[str, SkuMatcher] = {}
    for plan in plans:
        matcher = by_currency.setdefault(plan.price.currency or "USD", SkuMatcher())
        for component in plan.components:
            matcher.want(component.sku_name, plan.price.region)
    skus_read = 0
    with _google_errors("reading the Cloud Billing catalog", hints):
        service = _compute_engine(client, retry)
        for currency, matcher in by_currency.items():
            pages = client.list_skus(
                request={"parent": service, "currency_code": currency},
                retry=retry,
                timeout=CALL_TIMEOUT,
            )
            for sku in pages:
                skus_read += 1
                matcher.offer(sku)
    detail.update(service=service, skus_read=skus_read)
    recorded = 0
    with transaction.atomic():
        for plan in plans:
            outcome = _price_refresh(plan, by_currency[plan.price.currency or "USD"], warnings)
            if outcome is not None:
                detail["prices"].append(outcome)
                recorded += outcome["status"] == "recorded"
    return SyncResult(rows=recorded, detail=detail)


def _compute_engine(client: Any, retry: Any) -> str:
    for service in client.list_services(retry=retry, timeout=CALL_TIMEOUT):
        if service.display_name == COMPUTE_ENGINE:
            return service.name
    raise SyncError(
        f"The Cloud Billing catalog lists no {COMPUTE_ENGINE!r} service; check that the "
        "Cloud Billing API answers for the account's credentials."
    )


def _price_refresh(plan: _Plan, matcher: SkuMatcher, warnings: list[str]) -> dict | None:
    price = plan.price
    what = f"{price.hardware_profile} ({price.instance_type}, {price.region})"
    total = Decimal(0)
    used = []
    for component in plan.components:
        offer = matcher.best(component.sku_name, price.region)
        if offer is None:
            warnings.append(
                f"{what}: no on-demand SKU '{component.sku_name} running in …' serves "
                f"{price.region}; price not refreshed."
            )
            return None
        if offer.usage_unit != component.usage_unit:
            warnings.append(
                f"{what}: SKU {offer.sku_id} is priced per {offer.usage_unit!r}, not per "
                f"{component.usage_unit!r}; price not refreshed."
            )
            return None
        total += offer.unit_price * component.quantity
        used.append(offer)
    currencies = {o.currency for o in used}
    if len(currencies) != 1:
        warnings.append(f"{what}: its SKUs are priced in {sorted(currencies)}; not refreshed.")
        return None
    currency = currencies.pop()
    # A price the catalog does not date counts from now.
    effective = max((o.effective_from for o in used if o.effective_from), default=timezone.now())
    outcome = {
        "hardware_profile": str(price.hardware_profile),
        "instance_type": price.instance_type,
        "region": price.region,
        "hourly_price": f"{total:f}",
        "currency": currency,
        "effective_from": effective.isoformat(),
        "skus": [
            {
                "sku_id": o.sku_id,
                "description": o.description,
                "unit_price": f"{o.unit_price:f}",
                "quantity": f"{c.quantity:f}",
            }
            for o, c in zip(used, plan.components, strict=True)
        ],
    }
    if price.hourly_price == total and price.currency == currency:
        return outcome | {"status": "unchanged"}
    hardware_price_record(
        hardware_profile=price.hardware_profile,
        provider=Provider.GCP,
        hourly_price=total,
        currency=currency,
        effective_from=effective,
        instance_type=price.instance_type,
        region=price.region,
        source="gcp-catalog",
    )
    return outcome | {"status": "recorded", "previous": f"{price.hourly_price:f}"}


# --- billing accounts and project billing ------------------------------------------------


@sync_register("gcp", SyncKind.BILLING_ACCOUNTS)
def gcp_billing_accounts_sync(
    *, account: CloudAccount, window: SyncWindow | None, run: SyncRun
) -> SyncResult:
    """Read the billing account (name, open, currency) and the projects linked to it.

    What it learns is kept in the run's detail, newest run first; projects whose billing is
    disabled and a closed account are called out as warnings.
    """
    billing_id = _billing_account_id(account)
    name = f"billingAccounts/{billing_id}"
    hints = _Hints(
        access=(
            f"Give the service account Billing Account Viewer on billing account {billing_id}."
        ),
        missing=f"Check the account id: Google has no billing account {billing_id}.",
    )
    client = _client(clients.gcp_billing_client, account)
    retry = _retry()
    with _google_errors(f"reading billing account {billing_id}", hints):
        info = client.get_billing_account(name=name, retry=retry, timeout=CALL_TIMEOUT)
        projects = [
            {"project_id": p.project_id, "billing_enabled": p.billing_enabled}
            for p in client.list_project_billing_info(name=name, retry=retry, timeout=CALL_TIMEOUT)
        ]
    warnings = []
    if not info.open_:
        warnings.append(
            f"Billing account {billing_id} is closed: its projects cannot use paid services."
        )
    disabled = sorted(p["project_id"] for p in projects if not p["billing_enabled"])
    for project_id in disabled:
        warnings.append(
            f"Project {project_id} has billing disabled: its paid services are stopped; link "
            "it to an open billing account or shut it down."
        )
    detail = {
        "billing_account": {
            "name": info.name,
            "display_name": info.display_name,
            "open": info.open_,
            "currency": info.currency_code or None,
            "master_billing_account": info.master_billing_account or None,
            "parent": info.parent or None,
        },
        "projects": sorted(projects, key=lambda p: p["project_id"]),
        "projects_billing_disabled": disabled,
        "warnings": warnings,
    }
    return SyncResult(rows=len(projects), detail=detail)
