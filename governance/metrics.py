"""``/metrics`` for Prometheus: django-prometheus's request and database metrics, plus the
domain's own, read from the database (and the broker) at scrape time.

Web and Celery workers are separate processes, so nothing here is counted in memory: an
import finished by a worker, a mail sent by another, a step escalated by beat are all rows
that any web process reads the same way. The rows of ``costs`` are read through the app
registry rather than imported, so ``governance`` still imports no app above it.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import models
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from governance import observability
from governance.choices import RequestStatus, Role, StepStatus
from governance.models import (
    ApprovalRequest,
    ApprovalStep,
    CapacityConflict,
    DeploymentFreeze,
    MailCount,
    MailOutcome,
)

logger = logging.getLogger(__name__)

# Seconds: an import of a small file takes a second, a month of CUR a few minutes.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
# kombu's Redis transport keeps priorities 3, 6 and 9 of a queue in lists of their own.
REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _status_counts(model: type[models.Model], *group: str) -> dict[tuple[str, ...], int]:
    """Rows per value of ``group`` (a value no row has is absent: callers add it at 0)."""
    counts: dict[tuple[str, ...], int] = {}
    rows = model.objects.order_by().values(*group).annotate(n=Count("pk"))
    for row in rows:
        counts[tuple(str(row[g]) for g in group)] = row["n"]
    return counts


def _statuses(model: type[models.Model]) -> list[str]:
    return [value for value, _ in model._meta.get_field("status").choices]


def _duration_histogram(
    name: str, documentation: str, model: type[models.Model], *labels: str
) -> HistogramMetricFamily:
    """started_at → finished_at of finished rows, bucketed in the database (one query)."""
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    buckets = {
        f"le_{le}": Count("pk", filter=Q(took__lte=timedelta(seconds=le)))
        for le in DURATION_BUCKETS
    }
    rows = (
        model.objects.order_by()
        .filter(started_at__isnull=False, finished_at__isnull=False)
        .annotate(took=took)
        .values(*labels)
        .annotate(n=Count("pk"), total=Sum("took"), **buckets)
    )
    for row in rows:
        total: timedelta | None = row["total"]
        family.add_metric(
            [str(row[label]) for label in labels],
            buckets=[(str(float(le)), row[f"le_{le}"]) for le in DURATION_BUCKETS]
            + [("+Inf", row["n"])],
            sum_value=total.total_seconds() if total else 0.0,
        )
    return family


def _queue_lengths() -> dict[str, int] | None:
    """LLEN of the default and bulk queues; None when tasks run eagerly or not on Redis."""
    if not observability.broker_on_redis():
        return None
    queues = sorted({settings.CELERY_TASK_DEFAULT_QUEUE, settings.CAPGOV_BULK_QUEUE})
    with observability.broker_redis() as client, client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for suffix in REDIS_PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        lengths = pipe.execute()
    per_queue = len(REDIS_PRIORITY_SUFFIXES)
    return {
        queue: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, queue in enumerate(queues)
    }


class DomainCollector(Collector):
    """Capgov's own metrics, computed when Prometheus scrapes (a dozen small queries)."""

    def __init__(self, *, now: datetime | None = None) -> None:
        self.now = now or timezone.now()

    def collect(self) -> Iterator[Metric]:
        yield from self._imports_and_syncs()
        yield from self._approvals()
        yield from self._freezes_and_conflicts()
        yield from self._mail()
        yield from self._queues()

    def _imports_and_syncs(self) -> Iterator[Metric]:
        if not apps.is_installed("costs"):
            return
        imports = apps.get_model("costs", "BillingImport")
        runs = apps.get_model("costs", "SyncRun")

        family = GaugeMetricFamily(
            "capgov_billing_imports", "Billing imports by status.", labels=["status"]
        )
        counts = _status_counts(imports, "status")
        for status in _statuses(imports):
            family.add_metric([status], counts.get((status,), 0))
        yield family
        yield _duration_histogram(
            "capgov_billing_import_duration_seconds",
            "Time from start to end of finished billing imports.",
            imports,
            "status",
        )
        ingested = CounterMetricFamily(
            "capgov_billing_rows_ingested",
            "Daily cost rows stored by succeeded billing imports, per source format.",
            labels=["source"],
        )
        read = CounterMetricFamily(
            "capgov_billing_rows_read",
            "Billing file rows read by succeeded billing imports, per source format.",
            labels=["source"],
        )
        rows = (
            imports.objects.order_by()
            .filter(status="succeeded")
            .values("detected_format")
            .annotate(stored=Sum("rows_stored"), read=Sum("rows_read"))
        )
        for row in rows:
            source = row["detected_format"] or "unknown"
            ingested.add_metric([source], row["stored"] or 0)
            read.add_metric([source], row["read"] or 0)
        yield ingested
        yield read

        family = GaugeMetricFamily(
            "capgov_sync_runs", "Cloud sync runs by kind and status.", labels=["kind", "status"]
        )
        counts = _status_counts(runs, "kind", "status")
        kinds = [value for value, _ in runs._meta.get_field("kind").choices]
        statuses = _statuses(runs)
        for kind in kinds:
            for status in statuses:
                family.add_metric([kind, status], counts.get((kind, status), 0))
        yield family
        yield _duration_histogram(
            "capgov_sync_run_duration_seconds",
            "Time from start to end of finished cloud sync runs.",
            runs,
            "kind",
            "status",
        )
        synced = CounterMetricFamily(
            "capgov_sync_rows", "Rows read by succeeded cloud sync runs, per kind.", labels=["kind"]
        )
        rows = (
            runs.objects.order_by()
            .filter(status="succeeded")
            .values("kind")
            .annotate(rows_total=Sum("rows"))
        )
        totals = {row["kind"]: row["rows_total"] or 0 for row in rows}
        for kind in kinds:
            synced.add_metric([kind], totals.get(kind, 0))
        yield synced

    def _approvals(self) -> Iterator[Metric]:
        pending = ApprovalRequest.objects.order_by().filter(status=RequestStatus.PENDING)
        summary = pending.aggregate(n=Count("pk"), oldest=Min("submitted_at"))
        yield GaugeMetricFamily(
            "capgov_approval_requests_pending",
            "Approval requests waiting for a decision.",
            value=summary["n"],
        )
        yield GaugeMetricFamily(
            "capgov_approval_request_oldest_pending_seconds",
            "Age of the oldest pending approval request (since it was submitted); 0 if none.",
            value=self._age(summary["oldest"]),
        )
        steps = ApprovalStep.objects.order_by().aggregate(
            active=Count("pk", filter=Q(status=StepStatus.ACTIVE)),
            oldest=Min("activated_at", filter=Q(status=StepStatus.ACTIVE)),
            escalated=Count("pk", filter=Q(escalation_level__gt=0)),
            escalations=Sum("escalation_level"),
        )
        yield GaugeMetricFamily(
            "capgov_approval_steps_pending",
            "Approval steps waiting for approvers (active).",
            value=steps["active"],
        )
        yield GaugeMetricFamily(
            "capgov_approval_step_oldest_pending_seconds",
            "Age of the oldest active approval step (since it became active); 0 if none.",
            value=self._age(steps["oldest"]),
        )
        yield GaugeMetricFamily(
            "capgov_approval_steps_escalated",
            "Approval steps escalated at least once.",
            value=steps["escalated"],
        )
        yield CounterMetricFamily(
            "capgov_approval_escalations",
            "Escalations of approval steps (each level reached counts once).",
            value=steps["escalations"] or 0,
        )

    def _freezes_and_conflicts(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "capgov_deployment_freezes_open",
            "Deployment freezes in force, by who put them in place.",
            labels=["origin"],
        )
        open_counts = dict(
            DeploymentFreeze.objects.order_by()
            .filter(lifted_at=None)
            .values_list("origin")
            .annotate(n=Count("pk"))
        )
        for origin, _ in DeploymentFreeze._meta.get_field("origin").choices:
            family.add_metric([origin], open_counts.get(origin, 0))
        yield family

        family = GaugeMetricFamily(
            "capgov_capacity_conflicts",
            "Capacity conflicts by status and escalation level.",
            labels=["status", "escalation_level"],
        )
        rows = (
            CapacityConflict.objects.order_by()
            .values("status", "escalation_level")
            .annotate(n=Count("pk"))
        )
        for row in rows:
            family.add_metric([row["status"], str(row["escalation_level"])], row["n"])
        yield family

    def _mail(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "capgov_emails", "E-mails handed to the mail server, or refused.", labels=["outcome"]
        )
        totals = dict(MailCount.objects.order_by().values_list("outcome").annotate(n=Sum("count")))
        for outcome in MailOutcome.values:
            family.add_metric([outcome], totals.get(outcome, 0))
        yield family

    def _queues(self) -> Iterator[Metric]:
        try:
            lengths = _queue_lengths()
        except Exception:  # the broker is down or refuses: say so, keep the other metrics
            logger.warning("could not read the Celery queue lengths", exc_info=True)
            yield GaugeMetricFamily(
                "capgov_celery_broker_up", "1 if the Redis broker answered.", value=0
            )
            return
        if lengths is None:
            return
        yield GaugeMetricFamily(
            "capgov_celery_broker_up", "1 if the Redis broker answered.", value=1
        )
        family = GaugeMetricFamily(
            "capgov_celery_queue_length", "Tasks waiting in a Celery queue.", labels=["queue"]
        )
        for queue, length in lengths.items():
            family.add_metric([queue], length)
        yield family

    def _age(self, since: datetime | None) -> float:
        return max((self.now - since).total_seconds(), 0.0) if since else 0.0


def metrics_text() -> bytes:
    """The whole exposition: the process (or multiprocess) registry, then the domain's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    domain = CollectorRegistry(auto_describe=False)
    domain.register(DomainCollector())
    return generate_latest(registry) + generate_latest(domain)


def metrics_allowed(request: HttpRequest) -> bool:
    """A scraper with ``Authorization: Bearer $CAPGOV_METRICS_TOKEN``, or a platform admin."""
    expected = settings.CAPGOV_METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if expected and scheme.lower() == "bearer" and given:
        return hmac.compare_digest(given.strip().encode(), expected.encode())
    user = request.user
    return bool(user.is_authenticated and user.has_role(Role.PLATFORM_ADMIN))


@login_not_required  # a scraper has no session: the token is checked here instead
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponse(
            "Metrics need `Authorization: Bearer <CAPGOV_METRICS_TOKEN>` or a signed-in "
            "platform admin.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
