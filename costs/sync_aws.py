"""AWS syncs: daily costs from Cost Explorer, CUR / Data Exports files from S3, SageMaker
endpoints with their CloudWatch invocations, and hourly prices from the Price List API.

Every adapter reads everything it needs from AWS first and writes in one transaction at the
end, so a failure half-way (throttled past the SDK's retries, access denied, a file missing)
leaves the previous data as it was. Costs go through the Foundation import path
(``billing_import``), which replaces a billing month of an account, so a re-run replaces and
never adds. Errors are turned into a readable cause with a fix, without credentials.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import polars as pl
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from django.db import transaction
from django.utils import timezone

from costs import allocation, clients, services
from costs.models import BillingFormat, CloudAccount, ImportStatus, SyncKind, SyncRun
from costs.sources import aws_cost_explorer as ce
from costs.sources.reader import maps_as_lists
from costs.sync import (
    SyncError,
    SyncResult,
    SyncRetryableError,
    SyncWindow,
    default_window,
    scrub,
    sync_register,
)
from governance.models import BusinessUnit
from registry.models import Endpoint, HardwarePrice, Provider
from registry.services import endpoint_upsert, endpoint_usage_record, hardware_price_record

log = logging.getLogger(__name__)

# --- errors -----------------------------------------------------------------------------------

# Codes botocore's standard retry mode also backs off on; still there after its attempts, the
# run is re-queued by the task instead of failing.
_THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "RequestLimitExceeded",
        "LimitExceededException",  # Cost Explorer's rate limit
        "BandwidthLimitExceeded",
        "ProvisionedThroughputExceededException",
    }
)
_UNWELL = frozenset(
    {"InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable"}
)
_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
_BAD_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "UnrecognizedClient",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidSignatureException",
    }
)
_EXPIRED = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
)


def _who(account: CloudAccount) -> str:
    if account.aws_role_arn:
        return f"the role {account.aws_role_arn}"
    if account.aws_profile:
        return f"the profile {account.aws_profile!r}"
    return "the worker's default AWS credentials"


def _client_error(account: CloudAccount, what: str, exc: ClientError) -> SyncError:
    error = exc.response.get("Error") or {}
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "").strip()
    status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    said = f" ({code}: {message})" if message else f" ({code})"
    if code in _THROTTLED:
        return SyncRetryableError(scrub(f"{what}: AWS is throttling {account}{said}."))
    if code in _UNWELL or status >= 500:
        return SyncRetryableError(scrub(f"{what}: AWS answered with a server error{said}."))
    if code in _DENIED:
        cause = (
            f"{what}: access denied for {_who(account)}{said} — grant it the permission in "
            "IAM (see the cloud sync set-up), then run the sync again."
        )
    elif code in _BAD_CREDENTIALS:
        cause = (
            f"{what}: AWS does not recognise the credentials of {_who(account)}{said} — check "
            "the account's profile or role and the keys the worker runs with."
        )
    elif code in _EXPIRED:
        cause = (
            f"{what}: the credentials of {_who(account)} have expired{said} — refresh the "
            "profile's session or check that the role can still be assumed."
        )
    elif code == "NoSuchBucket":
        cause = (
            f"{what}: the bucket {account.cur_bucket!r} does not exist{said} — check the "
            "account's CUR bucket name (and that it belongs to this account)."
        )
    elif code in ("NoSuchKey", "404", "NotFound"):
        cause = (
            f"{what}: a file is missing from the bucket{said} — the export may be being "
            "rewritten; the next run tries again."
        )
    elif code in ("ValidationException", "ValidationError", "InvalidParameterValue"):
        cause = f"{what}: AWS rejected the request{said} — check the account's settings."
    else:
        cause = f"{what}: AWS refused the request{said}."
    return SyncError(scrub(cause))


@contextlib.contextmanager
def _aws(account: CloudAccount, what: str) -> Iterator[None]:
    """Turn what boto3 raises into SyncError (permanent) or SyncRetryableError (try later)."""
    try:
        yield
    except ClientError as exc:
        raise _client_error(account, what, exc) from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise SyncError(
            f"{what}: no usable AWS credentials for {_who(account)} — set the account's "
            "profile or role, or give the worker credentials (environment, instance role)."
        ) from exc
    except ProfileNotFound as exc:
        raise SyncError(
            f"{what}: the profile {account.aws_profile!r} is not configured on the worker — "
            "add it to the worker's AWS config, or change the account's profile."
        ) from exc
    except (
        EndpointConnectionError,
        ConnectTimeoutError,
        ReadTimeoutError,
        ConnectionClosedError,
    ) as exc:
        raise SyncRetryableError(scrub(f"{what}: cannot reach AWS ({exc}).")) from exc
    except ParamValidationError as exc:
        raise SyncError(scrub(f"{what}: the request is not valid ({exc}).")) from exc
    except BotoCoreError as exc:
        raise SyncError(scrub(f"{what}: {type(exc).__name__}: {exc}")) from exc


def _client(account: CloudAccount, service: str, *, region: str | None = None):
    with _aws(account, f"Connecting to AWS {service}"):
        return clients.aws_client(account, service, region=region)


def _now_and_window(kind: str, window: SyncWindow | None) -> tuple[dt.datetime, SyncWindow]:
    now = timezone.now()
    chosen = window or default_window(kind, now.date())
    if chosen is None:  # pragma: no cover - every kind here has a default
        raise SyncError(f"Give the {kind} sync a period.")
    return now, chosen


# An AWS account's costs come from Cost Explorer (imported as FOCUS) or from its CUR: rows of
# the other one for the same account and month would count the month twice.
_OTHER_SOURCE = {
    BillingFormat.FOCUS: BillingFormat.AWS_CUR,
    BillingFormat.AWS_CUR: BillingFormat.FOCUS,
}


def _import(path: Path, *, fmt: str, name: str) -> Any:
    """Import one file through the Foundation path; a failed import fails the run.

    The months it brings replace the same account's months from the other cost source, so
    switching an account from Cost Explorer to CUR (or back) never counts a month twice.
    """
    record = services.billing_import(
        path=path, fmt=fmt, display_name=name, also_replaces=(_OTHER_SOURCE[fmt],)
    )
    if record.status != ImportStatus.SUCCEEDED:
        raise SyncError(scrub(f"Importing {name} failed: {record.error}"))
    return record


# --- daily costs from Cost Explorer -------------------------------------------------------------


@sync_register("aws", SyncKind.COSTS)
def aws_costs_sync(*, account: CloudAccount, window: SyncWindow | None, run: SyncRun) -> SyncResult:
    """Daily unblended and amortised cost by service and the first allocation tag key.

    Whole billing months are read and imported as one FOCUS file each, replacing the month.
    """
    now, window = _now_and_window(SyncKind.COSTS, window)
    try:
        start, end = ce.query_period(window.start, window.end, today=now.date())
    except ce.CostExplorerError as exc:
        raise SyncError(f"Cost Explorer: {exc}.") from exc
    grouping, unused = ce.grouping_for(account.cost_allocation_tags or [])
    client = _client(account, "ce")
    request: dict[str, Any] = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": list(ce.METRICS),
        "GroupBy": grouping.group_by(),
    }
    pages = []
    with _aws(account, "Cost Explorer GetCostAndUsage"):
        while True:
            page = client.get_cost_and_usage(**request)
            pages.append(page)
            token = page.get("NextPageToken")
            if not token:
                break
            request["NextPageToken"] = token
    try:
        rows = ce.focus_rows(
            pages, account_id=account.account_id, account_name=account.name, grouping=grouping
        )
    except ce.CostExplorerError as exc:
        raise SyncError(scrub(f"Cost Explorer answered something unexpected: {exc}.")) from exc
    by_month = ce.rows_by_month(rows)
    detail: dict[str, Any] = {
        "period": [start.isoformat(), end.isoformat()],
        "pages": len(pages),
        "group_by": [
            "SERVICE",
            f"TAG:{grouping.tag_key}" if grouping.tag_key else "LINKED_ACCOUNT",
        ],
        "months": {},
    }
    if unused:
        detail["tag_keys_not_read"] = unused
    stored = 0
    with tempfile.TemporaryDirectory(prefix="capgov-ce-") as folder, transaction.atomic():
        for month in ce.months(start, end):
            month_rows = by_month.get(month, [])
            if not month_rows:
                # Nothing to import; an empty file cannot replace a month, so say so.
                detail["months"][f"{month:%Y-%m}"] = {"rows": 0, "note": "no costs reported"}
                continue
            name = f"cost-explorer-{account.account_id}-{month:%Y-%m}.csv"
            path = ce.write_focus(Path(folder) / name, month_rows)
            record = _import(path, fmt=BillingFormat.FOCUS, name=name)
            stored += record.rows_stored
            detail["months"][f"{month:%Y-%m}"] = {
                "rows": record.rows_stored,
                "billed": record.billed_totals,
                "import": record.pk,
            }
    log.info("aws costs sync %s: %s rows over %s pages", run.pk, stored, len(pages))
    return SyncResult(rows=stored, detail=detail)


# --- CUR / Data Exports files from S3 -----------------------------------------------------------

# Legacy CUR: <prefix>/<report>/<yyyymmdd-yyyymmdd>/<report>-Manifest.json (the copies inside
# each assembly folder are older versions of the same manifest).
_LEGACY_MANIFEST = re.compile(
    r"(?:^|/)(?P<report>[^/]+)/(?P<start>\d{8})-(?P<end>\d{8})/(?P=report)-Manifest\.json$"
)
# CUR 2.0 / Data Exports: <prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/[...]/*Manifest.json
_EXPORT_MANIFEST = re.compile(
    r"(?:^|/)(?P<report>[^/]+)/metadata/BILLING_PERIOD=(?P<period>\d{4}-\d{2})/"
    r"(?:[^/]+/)?[^/]*Manifest\.json$"
)
# Where manifests state how many rows the files hold (Data Exports); legacy ones do not.
_ROW_COUNT_KEYS = ("recordCount", "rowCount")


@dataclass
class _Manifest:
    key: str
    report: str
    period: dt.date
    modified: dt.datetime
    layout: str  # "legacy" or "data-exports"
    files: list[tuple[str, str]] = field(default_factory=list)  # (bucket, key)
    row_count: int | None = None


def _manifest_from_key(key: str, modified: dt.datetime) -> _Manifest | None:
    if match := _LEGACY_MANIFEST.search(key):
        try:
            start = match["start"]
            period = dt.date(int(start[:4]), int(start[4:6]), 1)
        except ValueError:
            return None
        return _Manifest(key, match["report"], period, modified, "legacy")
    if match := _EXPORT_MANIFEST.search(key):
        try:
            period = dt.date.fromisoformat(f"{match['period']}-01")
        except ValueError:
            return None
        return _Manifest(key, match["report"], period, modified, "data-exports")
    return None


def _s3_location(entry: Any, bucket: str, manifest: str) -> tuple[str, str]:
    text = str(entry.get("key") or entry.get("path") or "") if isinstance(entry, dict) else entry
    text = str(text or "").strip()
    if not text:
        raise SyncError(f"CUR: the manifest {manifest} lists an empty file name.")
    if text.startswith("s3://"):
        other, _, key = text[5:].partition("/")
        return other or bucket, key
    return bucket, text.lstrip("/")


def _manifest_read(s3, account: CloudAccount, manifest: _Manifest) -> None:
    with _aws(account, f"Reading the CUR manifest s3://{account.cur_bucket}/{manifest.key}"):
        body = s3.get_object(Bucket=account.cur_bucket, Key=manifest.key)["Body"].read()
    try:
        content = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SyncError(
            f"CUR: the manifest {manifest.key} is not JSON ({exc}) — is the export healthy?"
        ) from exc
    if not isinstance(content, dict):
        raise SyncError(f"CUR: the manifest {manifest.key} is not a JSON object.")
    bucket = str(content.get("bucket") or account.cur_bucket)
    entries = content.get("reportKeys") if manifest.layout == "legacy" else None
    if entries is None:
        entries = content.get("dataFiles") or content.get("reportKeys") or []
    if not isinstance(entries, list):
        raise SyncError(f"CUR: the manifest {manifest.key} lists its files in an unknown shape.")
    manifest.files = [_s3_location(entry, bucket, manifest.key) for entry in entries]
    for name in _ROW_COUNT_KEYS:
        if content.get(name) is not None:
            try:
                manifest.row_count = int(content[name])
            except (TypeError, ValueError) as exc:
                raise SyncError(
                    f"CUR: the manifest {manifest.key} has a {name} that is not a number."
                ) from exc
            break


def _manifests_list(s3, account: CloudAccount, window: SyncWindow) -> list[_Manifest]:
    """The newest manifest of each billing period the window touches."""
    prefix = account.cur_prefix.strip().strip("/")
    where = f"s3://{account.cur_bucket}/{prefix}"
    found: list[_Manifest] = []
    with _aws(account, f"Listing the CUR files in {where}"):
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(
            Bucket=account.cur_bucket, Prefix=f"{prefix}/" if prefix else ""
        ):
            for item in page.get("Contents") or []:
                manifest = _manifest_from_key(item["Key"], item["LastModified"])
                if manifest:
                    found.append(manifest)
    if not found:
        raise SyncError(
            f"CUR: no report manifest under {where} — check the account's CUR bucket and "
            "prefix (the prefix the report or data export was created with)."
        )
    first, last = window.start.replace(day=1), window.end
    newest: dict[dt.date, _Manifest] = {}
    reports: dict[dt.date, set[str]] = {}
    for manifest in found:
        if not (first <= manifest.period < last):
            continue
        reports.setdefault(manifest.period, set()).add(f"{manifest.layout}:{manifest.report}")
        current = newest.get(manifest.period)
        if current is None or manifest.modified > current.modified:
            newest[manifest.period] = manifest
    for period, names in reports.items():
        if len(names) > 1:
            raise SyncError(
                f"CUR: {where} holds more than one report for {period:%Y-%m} "
                f"({', '.join(sorted(names))}) — importing both would count the month twice; "
                "point the account's prefix at one report."
            )
    return [newest[p] for p in sorted(newest)]


def _first_line(path: Path) -> bytes:
    opener = gzip.open if _gzipped(path) else open
    with opener(path, "rb") as fh:
        return fh.readline().lstrip(b"\xef\xbb\xbf").rstrip(b"\r\n")


def _gzipped(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _parquet(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def _rows_in(path: Path, *, parquet: bool) -> int:
    if parquet:
        return int(pl.scan_parquet(path).select(pl.len()).collect().item())
    return int(
        pl.scan_csv(path, infer_schema=False, encoding="utf8-lossy")
        .select(pl.len())
        .collect()
        .item()
    )


def _combine(paths: list[Path], target: Path, label: str) -> tuple[Path, int]:
    """One file for the period: an import replaces the whole month, so its parts go in together.

    CSV parts (plain or gzip) are concatenated under the first part's header; Parquet parts
    are concatenated by column name (maps as key/value lists). Returns the file and its rows.
    """
    kinds = {_parquet(p) for p in paths}
    if len(kinds) > 1:
        raise SyncError(f"CUR {label}: the period mixes Parquet and CSV files.")
    if kinds == {True}:
        combined = target.with_suffix(".parquet")
        frames = [maps_as_lists(pl.read_parquet(p)) for p in paths]
        pl.concat(frames, how="diagonal_relaxed").write_parquet(combined)
        return combined, _rows_in(combined, parquet=True)
    combined = target.with_suffix(".csv")
    header = _first_line(paths[0])
    with combined.open("wb") as out:
        out.write(header + b"\n")
        for path in paths:
            if _first_line(path) != header:
                raise SyncError(
                    f"CUR {label}: {path.name} has other columns than the first file of the "
                    "period — the export changed mid-way; run the sync again once it settles."
                )
            opener = gzip.open if _gzipped(path) else open
            with opener(path, "rb") as fh:
                fh.readline()
                last = b"\n"
                while chunk := fh.read(1 << 20):
                    out.write(chunk)
                    last = chunk[-1:]
            if last != b"\n":
                # Without it the part's last line would run into the next part's first.
                out.write(b"\n")
    return combined, _rows_in(combined, parquet=False)


@dataclass
class _Period:
    manifest: _Manifest
    path: Path | None
    rows: int


def _cur_download(s3, account: CloudAccount, manifest: _Manifest, folder: Path) -> _Period:
    label = f"{manifest.report} {manifest.period:%Y-%m}"
    period_folder = folder / f"{manifest.period:%Y-%m}"
    period_folder.mkdir()
    parts = []
    prefix = account.cur_prefix.strip().lstrip("/")
    files = list(dict.fromkeys(manifest.files))  # a file listed twice is read once
    for bucket, key in files:
        # A manifest names files; it cannot send the worker to another bucket or prefix.
        if bucket != account.cur_bucket.strip() or not key.startswith(prefix):
            raise SyncError(
                f"CUR {label}: the manifest {manifest.key} lists s3://{bucket}/{key}, outside "
                f"s3://{account.cur_bucket}/{prefix}; only the account's own export is read."
            )
    for number, (bucket, key) in enumerate(files, start=1):
        part = period_folder / f"part-{number:05d}"
        with _aws(account, f"Downloading s3://{bucket}/{key}"), part.open("wb") as fh:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            shutil.copyfileobj(body, fh, 1 << 20)
        if part.stat().st_size:
            parts.append(part)
    if not parts:
        return _Period(manifest, None, 0)
    try:
        path, rows = _combine(
            parts, period_folder / f"{manifest.report}-{manifest.period:%Y-%m}", label
        )
    except pl.exceptions.PolarsError as exc:
        raise SyncError(scrub(f"CUR {label}: the files cannot be read ({exc}).")) from exc
    if manifest.row_count is not None and manifest.row_count != rows:
        raise SyncError(
            f"CUR {label}: the manifest {manifest.key} says {manifest.row_count} rows but its "
            f"{len(manifest.files)} file(s) hold {rows} — the export may still be being written; "
            "the next run tries again."
        )
    return _Period(manifest, path, rows)


@sync_register("aws", SyncKind.CUR)
def aws_cur_sync(*, account: CloudAccount, window: SyncWindow | None, run: SyncRun) -> SyncResult:
    """Import the CUR (legacy or 2.0) billing periods of the window from the account's bucket.

    Everything is downloaded and checked against its manifest before anything is imported;
    the imports then run in one transaction.
    """
    if not account.cur_bucket.strip():
        raise SyncError(
            f"{account.name} has no CUR bucket: set the bucket (and prefix) the Cost and Usage "
            "Report or data export is delivered to."
        )
    _, window = _now_and_window(SyncKind.CUR, window)
    s3 = _client(account, "s3")
    manifests = _manifests_list(s3, account, window)
    detail: dict[str, Any] = {"periods": {}}
    stored = 0
    with tempfile.TemporaryDirectory(prefix="capgov-cur-") as folder:
        periods = []
        for manifest in manifests:
            _manifest_read(s3, account, manifest)
            periods.append(_cur_download(s3, account, manifest, Path(folder)))
        with transaction.atomic():
            for period in periods:
                manifest = period.manifest
                key = f"{manifest.period:%Y-%m}"
                info: dict[str, Any] = {
                    "manifest": manifest.key,
                    "layout": manifest.layout,
                    "files": len(manifest.files),
                    "rows_read": period.rows,
                }
                if period.path is None or period.rows == 0:
                    info["note"] = "the manifest lists no rows; the month was left as it was"
                    detail["periods"][key] = info
                    continue
                name = f"{manifest.report}-{key}{period.path.suffix}"
                record = _import(period.path, fmt=BillingFormat.AWS_CUR, name=name)
                if record.billing_periods != [key]:
                    raise SyncError(
                        f"CUR {name}: the manifest is for {key} but the files hold "
                        f"{', '.join(record.billing_periods)}; nothing was kept."
                    )
                stored += record.rows_stored
                info.update(
                    rows=record.rows_stored, billed=record.billed_totals, import_id=record.pk
                )
                detail["periods"][key] = info
    log.info("aws cur sync %s: %s rows from %s period(s)", run.pk, stored, len(manifests))
    return SyncResult(rows=stored, detail=detail)


# --- SageMaker endpoints and their invocations ------------------------------------------------

# Statuses in which an endpoint takes requests; a day in which it did but CloudWatch has no
# Invocations datapoint had none (SageMaker publishes nothing for a quiet day).
_SERVING = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack"})
# CloudWatch may take a while to publish a day's last datapoints; a day counts as complete
# (and a missing datapoint as zero) only this long after it ended.
_SETTLE = dt.timedelta(hours=3)
_QUERIES_PER_CALL = 500


@dataclass
class _Endpoint:
    name: str
    arn: str
    status: str
    config_name: str
    created: dt.datetime | None
    variants: list[str]
    instance_type: str
    instance_count: int
    tags: dict[str, str]


def _utc(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _not_found(exc: ClientError) -> bool:
    error = exc.response.get("Error") or {}
    return error.get("Code") in ("ValidationException", "ResourceNotFound") and (
        "could not find" in str(error.get("Message", "")).lower()
    )


def _endpoint_describe(sm, name: str) -> _Endpoint | None:
    """What SageMaker says about one endpoint; None if it went away since the listing.

    Other errors propagate to the caller's ``_aws`` block.
    """
    try:
        described = sm.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise
    config_name = described.get("EndpointConfigName", "")
    variants = described.get("ProductionVariants") or []
    config_variants: list[dict[str, Any]] = []
    try:
        config = sm.describe_endpoint_config(EndpointConfigName=config_name)
        config_variants = config.get("ProductionVariants") or []
    except ClientError as exc:
        # A config can be deleted while its endpoint still serves; keep what we know.
        if not _not_found(exc):
            raise
    instance_types = [v.get("InstanceType") for v in config_variants if v.get("InstanceType")]
    counts = [v.get("CurrentInstanceCount") for v in variants]
    if counts and all(c is not None for c in counts):
        instance_count = sum(int(c) for c in counts)
    else:
        instance_count = sum(int(v.get("InitialInstanceCount") or 0) for v in config_variants)
    tags: dict[str, str] = {}
    for page in sm.get_paginator("list_tags").paginate(ResourceArn=described["EndpointArn"]):
        tags.update({t["Key"]: t.get("Value", "") for t in page.get("Tags") or []})
    names = [v.get("VariantName") for v in variants] or [
        v.get("VariantName") for v in config_variants
    ]
    return _Endpoint(
        name=name,
        arn=described["EndpointArn"],
        status=str(described.get("EndpointStatus", "")),
        config_name=config_name,
        created=_utc(described.get("CreationTime")),
        variants=[n for n in names if n],
        instance_type=instance_types[0] if instance_types else "",
        instance_count=instance_count,
        tags=tags,
    )


def _invocations(
    cw,
    account: CloudAccount,
    endpoints: list[_Endpoint],
    window: SyncWindow,
    metric: str = "Invocations",
) -> dict[str, dict[dt.date, int]]:
    """A daily SageMaker metric per endpoint (summed over its variants), for the days
    CloudWatch has: ``Invocations``, or ``Invocation5XXErrors`` (the requests the endpoint
    failed, which availability SLOs count; 4XX errors are the caller's)."""
    queries = []
    owners: dict[str, str] = {}
    for endpoint in endpoints:
        for variant in endpoint.variants:
            query_id = f"q{len(queries)}"
            owners[query_id] = endpoint.name
            queries.append(
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/SageMaker",
                            "MetricName": metric,
                            "Dimensions": [
                                {"Name": "EndpointName", "Value": endpoint.name},
                                {"Name": "VariantName", "Value": variant},
                            ],
                        },
                        "Period": 86400,
                        "Stat": "Sum",
                    },
                    "ReturnData": True,
                }
            )
    start = dt.datetime.combine(window.start, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(window.end, dt.time(), tzinfo=dt.UTC)
    totals: dict[str, dict[dt.date, float]] = {e.name: {} for e in endpoints}
    for first in range(0, len(queries), _QUERIES_PER_CALL):
        batch = queries[first : first + _QUERIES_PER_CALL]
        request: dict[str, Any] = {
            "MetricDataQueries": batch,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        with _aws(account, f"CloudWatch GetMetricData (SageMaker {metric})"):
            while True:
                answer = cw.get_metric_data(**request)
                for result in answer.get("MetricDataResults") or []:
                    if result.get("StatusCode") in ("Forbidden", "InternalError"):
                        message = "; ".join(
                            m.get("Value", "") for m in result.get("Messages") or []
                        )
                        raise SyncError(
                            scrub(
                                f"CloudWatch could not read {metric} of "
                                f"{owners.get(result.get('Id'), '?')} ({result['StatusCode']}"
                                f"{': ' + message if message else ''})."
                            )
                        )
                    days = totals[owners[result["Id"]]]
                    for stamp, value in zip(
                        result.get("Timestamps") or [], result.get("Values") or [], strict=False
                    ):
                        day = _utc(stamp).date()
                        if window.start <= day < window.end:
                            days[day] = days.get(day, 0.0) + float(value)
                token = answer.get("NextToken")
                if not token:
                    break
                request["NextToken"] = token
    return {name: {d: round(v) for d, v in days.items()} for name, days in totals.items()}


def _quiet_days(endpoint: _Endpoint, window: SyncWindow, now: dt.datetime) -> list[dt.date]:
    """Days CloudWatch would have reported had the endpoint been called: it served all day."""
    if endpoint.status not in _SERVING or endpoint.created is None:
        return []
    days, day = [], window.start
    while day < window.end:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        if endpoint.created <= start and start + dt.timedelta(days=1) + _SETTLE <= now:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


@sync_register("aws", SyncKind.ENDPOINTS)
def aws_endpoints_sync(
    *, account: CloudAccount, window: SyncWindow | None, run: SyncRun
) -> SyncResult:
    """SageMaker endpoints (instance type and count, status, tags -> business unit) and their
    daily invocations.

    A day CloudWatch reports is written as reported. A day it does not report is written as
    zero only if the endpoint was serving for the whole of it (created before it began, in
    service now) and the day ended a while ago: SageMaker publishes no Invocations datapoint
    for a day without requests, so that silence is zero traffic. Any other missing day stays
    unknown — never zero.
    """
    now, window = _now_and_window(SyncKind.ENDPOINTS, window)
    sm = _client(account, "sagemaker")
    region = sm.meta.region_name or account.aws_region
    endpoints: list[_Endpoint] = []
    with _aws(account, "SageMaker ListEndpoints"):
        names = [
            summary["EndpointName"]
            for page in sm.get_paginator("list_endpoints").paginate()
            for summary in page.get("Endpoints") or []
        ]
    for name in names:
        with _aws(account, f"SageMaker DescribeEndpoint / ListTags {name}"):
            endpoint = _endpoint_describe(sm, name)
        if endpoint is not None:
            endpoints.append(endpoint)
    usage: dict[str, dict[dt.date, int]] = {}
    failed: dict[str, dict[dt.date, int]] = {}
    if endpoints:
        cw = _client(account, "cloudwatch")
        usage = _invocations(cw, account, endpoints, window)
        failed = _invocations(cw, account, endpoints, window, metric="Invocation5XXErrors")

    rules = services._compiled_rules()
    known = {
        e.name: e
        for e in Endpoint.objects.filter(
            provider=Provider.AWS, account_id=account.account_id, region=region
        )
    }
    chosen = {e.name: allocation.allocate(e.tags, rules) for e in endpoints}
    units = BusinessUnit.objects.in_bulk({r.business_unit_id for r in chosen.values() if r})
    days_written = 0
    zero_days = 0
    with transaction.atomic():
        for endpoint in endpoints:
            rule = chosen[endpoint.name]
            previous = known.get(endpoint.name)
            record, _ = endpoint_upsert(
                provider=Provider.AWS,
                account_id=account.account_id,
                region=region,
                name=endpoint.name,
                resource_id=endpoint.arn,
                status=endpoint.status,
                instance_type=endpoint.instance_type
                or (previous.instance_type if previous else ""),
                instance_count=endpoint.instance_count,
                config_name=endpoint.config_name,
                tags=endpoint.tags,
                business_unit=units.get(rule.business_unit_id) if rule else None,
                created_in_cloud_at=endpoint.created,
                seen_at=now,
            )
            days = dict(usage.get(endpoint.name, {}))
            for day in _quiet_days(endpoint, window, now):
                if day not in days:
                    days[day] = 0
                    zero_days += 1
            errors = {
                day: min(count, days[day])
                for day, count in failed.get(endpoint.name, {}).items()
                if day in days
            }
            days_written += endpoint_usage_record(endpoint=record, invocations=days, errors=errors)
    gone = sorted(set(known) - {e.name for e in endpoints})
    detail: dict[str, Any] = {
        "endpoints": len(endpoints),
        "usage_days": days_written,
        "quiet_days_as_zero": zero_days,
        "window": [window.start.isoformat(), window.end.isoformat()],
    }
    if gone:
        detail["not_seen"] = gone[:100]
    log.info(
        "aws endpoints sync %s: %s endpoints, %s usage days", run.pk, len(endpoints), days_written
    )
    return SyncResult(rows=len(endpoints) + days_written, detail=detail)


# --- hourly prices from the Price List API ------------------------------------------------------

_PRICING_REGION = "us-east-1"  # the Price List API answers from us-east-1 (and ap-south-1)
_HOURLY_UNITS = frozenset({"hrs", "hours", "hour", "hr"})


@dataclass(frozen=True)
class _Price:
    hourly: Decimal
    currency: str
    effective_from: dt.datetime


def _product_filters(instance_type: str, region: str) -> tuple[str, list[dict[str, str]]]:
    if instance_type.startswith("ml."):
        # SageMaker names the instance "instanceName"; "Hosting" is real-time inference.
        fields = {"regionCode": region, "instanceName": instance_type, "component": "Hosting"}
        service = "AmazonSageMaker"
    else:
        fields = {
            "regionCode": region,
            "instanceType": instance_type,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
        }
        service = "AmazonEC2"
    return service, [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


def _on_demand(price_list: list[str], label: str) -> tuple[_Price | None, str]:
    """The one hourly on-demand price in the products, or (None, why not)."""
    found: set[tuple[Decimal, str, dt.datetime]] = set()
    for item in price_list:
        try:
            product = json.loads(item) if isinstance(item, str) else item
            terms = (product.get("terms") or {}).get("OnDemand") or {}
        except (json.JSONDecodeError, AttributeError):
            return None, f"{label}: the price list holds an item that is not JSON"
        for term in terms.values():
            effective = _effective_date(term.get("effectiveDate"))
            for dimension in (term.get("priceDimensions") or {}).values():
                if str(dimension.get("unit", "")).lower() not in _HOURLY_UNITS:
                    continue
                prices = dimension.get("pricePerUnit") or {}
                currency = "USD" if "USD" in prices else next(iter(prices), "")
                try:
                    value = Decimal(str(prices.get(currency)))
                except InvalidOperation:
                    continue
                if currency and value.is_finite() and value > 0 and effective:
                    found.add((value, currency, effective))
    if not found:
        return None, f"{label}: no hourly on-demand price in the price list"
    if len({(v, c) for v, c, _ in found}) > 1:
        shown = ", ".join(sorted({f"{v} {c}" for v, c, _ in found}))
        return None, f"{label}: more than one hourly price ({shown}); not guessing"
    value, currency, _ = next(iter(found))
    effective = max(e for _, _, e in found)
    return _Price(value, currency, effective), ""


def _effective_date(text: Any) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


@sync_register("aws", SyncKind.PRICES)
def aws_prices_sync(
    *, account: CloudAccount, window: SyncWindow | None, run: SyncRun
) -> SyncResult:
    """On-demand hourly prices for the instance types in use, for the hardware profiles whose
    current AWS price names that instance type.

    The regions priced are the price row's own (else the account's) and those where this
    account runs endpoints of that instance type. An instance type whose price is missing or
    ambiguous is skipped and reported, never guessed.
    """
    account_region = account.aws_region or "us-east-1"
    current: dict[tuple[int, str], HardwarePrice] = {}
    for price in (
        HardwarePrice.objects.filter(provider=Provider.AWS)
        .exclude(instance_type="")
        .select_related("hardware_profile")
        .order_by("hardware_profile_id", "region", "-effective_from", "-pk")
    ):
        current.setdefault((price.hardware_profile_id, price.region), price)
    profiles = {p.hardware_profile_id: p.hardware_profile for p in current.values()}
    endpoint_regions: dict[str, set[str]] = {}
    for instance_type, region in (
        Endpoint.objects.filter(provider=Provider.AWS, account_id=account.account_id)
        .exclude(instance_type="")
        .values_list("instance_type", "region")
        .distinct()
    ):
        endpoint_regions.setdefault(instance_type, set()).add(region or account_region)
    targets: set[tuple[int, str, str]] = set()  # (profile, instance type, region)
    for (profile_id, region), price in current.items():
        regions = {region or account_region} | endpoint_regions.get(price.instance_type, set())
        targets.update((profile_id, price.instance_type, r) for r in regions)
    named = {t for _, t, _ in targets}
    detail: dict[str, Any] = {"priced": {}, "skipped": []}
    unmapped = sorted(set(endpoint_regions) - named)
    if unmapped:
        detail["instance_types_without_profile"] = unmapped
    if not targets:
        detail["note"] = "no hardware profile has an AWS price naming an instance type"
        return SyncResult(rows=0, detail=detail)

    pricing = _client(account, "pricing", region=_PRICING_REGION)
    prices: dict[tuple[str, str], _Price] = {}
    for instance_type, region in sorted({(t, r) for _, t, r in targets}):
        service, filters = _product_filters(instance_type, region)
        price_list: list[str] = []
        with _aws(account, f"Price List GetProducts ({service} {instance_type} {region})"):
            pages = pricing.get_paginator("get_products").paginate(
                ServiceCode=service, Filters=filters, FormatVersion="aws_v1"
            )
            for page in pages:
                price_list.extend(page.get("PriceList") or [])
        found, problem = _on_demand(price_list, f"{instance_type} in {region}")
        if found is None:
            detail["skipped"].append(problem)
            continue
        prices[(instance_type, region)] = found
    written = 0
    with transaction.atomic():
        for profile_id, instance_type, region in sorted(targets):
            found = prices.get((instance_type, region))
            if found is None:
                continue
            hardware_price_record(
                hardware_profile=profiles[profile_id],
                provider=Provider.AWS,
                hourly_price=found.hourly,
                currency=found.currency,
                effective_from=found.effective_from,
                instance_type=instance_type,
                region=region,
                source="sync",
            )
            written += 1
            detail["priced"][f"{instance_type} {region}"] = f"{found.hourly} {found.currency}/h"
    if not detail["skipped"]:
        del detail["skipped"]
    log.info("aws prices sync %s: %s prices recorded", run.pk, written)
    return SyncResult(rows=written, detail=detail)
