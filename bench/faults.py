"""Benchmark: what survives when the broker stops, the database restarts and a worker dies.

Run from the repository root (as root or as a user that can run PostgreSQL's initdb)::

    .venv/bin/python bench/faults.py [--only redis_stop,pg_restart,worker_kill] [--rows 300000]

Everything runs on private servers started here, never the machine's shared ones: a
PostgreSQL cluster (``initdb`` in a temporary folder, its own port, database
``capgov_faults``), a Redis on its own port (append-only file, so a stop keeps the queue), moto
in server mode for AWS, and an SMTP server that counts the mails. On them, the app runs the
production way: gunicorn with ``DJANGO_ENV=production``, a Celery worker per queue (default and
bulk, as ``make run-prod`` runs them) and beat, whose ``work-recover`` entry runs every
minute. The demo organisation is seeded first.

``redis_stop``
    With the worker stopped, an upload and a statement publication queue their tasks (an
    import, e-mails); Redis stops. Pages are asked for while it is down, and a second file is
    uploaded. Redis and the worker come back: both imports must finish and the mails arrive.
``pg_restart``
    A large upload; when the worker's COPY is in flight, PostgreSQL restarts (fast mode). The
    import must end ``failed`` with a message, with none of its rows kept, and the same file
    uploaded again must import once.
``worker_kill``
    A CUR sync against moto with a large data export; mid-import the bulk worker's process
    group gets SIGKILL. The sweep must mark the run failed (the worker runs with a 60 s task time
    limit so it does so within two minutes), and the next run must succeed.

Each prints ``fault=… …=…`` lines; the last line is the summary::

    faults=3 survived=3 redis_stop=ok pg_restart=ok worker_kill=ok
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

PASSWORD = "capgov-demo"  # noqa: S105 - the demo's printed password
FAULTS = ("redis_stop", "pg_restart", "worker_kill")
PG_BIN = (
    sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    if Path("/usr/lib/postgresql").is_dir()
    else None
)
TASK_TIME_LIMIT = 60
ABANDONED_AFTER = 75
ACCOUNT_ID = "123456789012"
# moto accepts any credentials; these are made up and only ever sent to it.
AWS_KEY_ID = "AKIACAPGOVFAULTS0001"
AWS_SECRET = "capgov-faults-dummy-secret"  # noqa: S105 - not a secret: moto's stand-in
BUCKET = "capgov-faults-cur"


def wait_for(what: str, check: Callable[[], object], *, timeout: float, every: float = 0.5):
    """Poll ``check`` until it returns something truthy; None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    print(f"  (gave up waiting for {what} after {timeout:.0f} s)")
    return None


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Postgres:
    """A private cluster in ``root`` on ``port``; trust authentication, no fsync."""

    def __init__(self, root: Path, port: int) -> None:
        if PG_BIN is None:
            raise SystemExit("PostgreSQL's server binaries are not installed (postgresql).")
        self.data, self.port, self.log = root / "pgdata", port, root / "postgres.log"
        self.sockets = root / "pgsock"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        for folder in (self.data, self.sockets):
            folder.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
            self.log.touch()
            shutil.chown(self.log, "postgres", "postgres")
        subprocess.run(
            as_postgres(
                [
                    *(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres"),
                    *("-A", "trust", "-E", "UTF8", "--no-sync"),
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            as_postgres(
                [
                    *(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w"),
                    *("-o", options, *args),
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("-m", "fast", "restart")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("-m", "fast", "stop")

    def execute(self, sql: str, params: tuple = (), *, database: str = "capgov_faults"):
        """One statement on a fresh connection (it must survive restarts); all rows, or None
        when the server does not answer."""
        import psycopg

        try:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True
            ) as conn:
                cursor = conn.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        except psycopg.OperationalError:
            return None


class Redis:
    """A private Redis on ``port`` with an append-only file: stopping it keeps the queue."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port, self.process = root / "redis", port, None
        self.root.mkdir()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("redis-server is not installed.")
        self.process = subprocess.Popen(
            [
                *(server, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)),
                *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
            ],
            stdout=(self.root / "redis.log").open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        import redis

        client = redis.Redis(port=self.port)
        wait_for("redis", lambda: _pings(client), timeout=20, every=0.1)

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits, like a service stop."""
        _common.stop(self.process)

    def queued(self) -> int:
        import redis

        client = redis.Redis(port=self.port)
        return sum(client.llen(queue) for queue in ("celery", "bulk"))


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # redis.ConnectionError (or a bare OSError) while it starts
        return False


class Mailbox:
    """An SMTP server counting what it receives, by subject."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                box.subjects.append(_subject(envelope.content))
                return "250 OK"

        self.subjects: list[str] = []
        self.port = _common.free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def _subject(content: bytes) -> str:
    for line in content.decode(errors="replace").splitlines():
        if line.lower().startswith("subject:"):
            return line.split(":", 1)[1].strip()
    return ""


class Stack:
    """The private servers and the app's processes on them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pg = Postgres(root, _common.free_port())
        self.redis = Redis(root, _common.free_port())
        self.mail = Mailbox()
        from moto.server import ThreadedMotoServer

        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        self.web_port = _common.free_port()
        self.web = self.beat = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.env = _common.production_env(
            database_url=self.pg.url("capgov_faults"),
            broker_url=self.redis.url,
            static_root=root / "static",
            extra={
                "CELERY_TASK_TIME_LIMIT": str(TASK_TIME_LIMIT),
                "CAPGOV_ABANDONED_AFTER_SECONDS": str(ABANDONED_AFTER),
                "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(self.mail.port),
                "CAPGOV_BASE_URL": f"https://127.0.0.1:{self.web_port}",
                "CAPGOV_VAR_DIR": str(root / "var"),
                "DJANGO_MEDIA_ROOT": str(root / "media"),
                "CAPGOV_AWS_ENDPOINT_URL": self.moto_url,
                "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(root / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
            },
        )

    def log(self, name: str):
        return (self.root / f"{name}.log").open("a")

    def manage(self, *args: str, env: dict[str, str] | None = None) -> None:
        subprocess.run(
            [_common.PYTHON, "manage.py", *args],
            cwd=_common.REPO,
            env=env or self.env,
            check=True,
            stdout=self.log("manage"),
            stderr=subprocess.STDOUT,
        )

    def up(self) -> None:
        started = time.perf_counter()
        self.pg.init()
        self.pg.start()
        self.pg.execute("create database capgov_faults", database="postgres")
        self.redis.start()
        self.manage("migrate", "--no-input")
        self.manage("install_schedules")
        # The demo is seeded as `make demo` does (tasks inline), so no mail of it is queued.
        self.manage(
            "seed_demo",
            "--rows",
            "4000",
            env={**self.env, "DJANGO_ENV": "development", "CELERY_BROKER_URL": ""},
        )
        _common.collectstatic(self.env, work=self.root)
        self.web = _common.gunicorn_start(
            self.env, port=self.web_port, workers=2, log=self.log("web")
        )
        _common.wait_http(self.web_port, process=self.web)
        self.workers_start()
        self.beat = subprocess.Popen(
            [
                *(str(_common.VENV_BIN / "celery"), "-A", "governance", "beat", "-l", "INFO"),
                *("-s", str(self.root / "beat-schedule")),
            ],
            cwd=_common.REPO,
            env=self.env,
            stdout=self.log("beat"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        print(
            f"stack        PostgreSQL :{self.pg.port}, Redis :{self.redis.port}, moto, SMTP, "
            f"gunicorn :{self.web_port} (production), worker and beat, demo seeded, in "
            f"{time.perf_counter() - started:.0f} s"
        )

    def workers_start(self) -> None:
        """A worker per queue, as `make run-prod` runs them: e-mails and escalations on the
        default queue, imports and syncs on the bulk queue."""
        for queue in ("celery", "bulk"):
            self.worker_start(queue)

    def worker_start(self, queue: str) -> None:
        log = self.root / f"worker-{queue}.log"
        seen = log.read_text().count("ready.") if log.exists() else 0
        self.workers[queue] = subprocess.Popen(
            [
                *(str(_common.VENV_BIN / "celery"), "-A", "governance", "worker", "-l", "INFO"),
                *("-Q", queue, "-c", "2" if queue == "celery" else "1"),
                *("-n", f"{queue}.{os.getpid()}@%h"),
            ],
            cwd=_common.REPO,
            env=self.env,
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(f"the {queue} worker", lambda: log.read_text().count("ready.") > seen, timeout=90)

    def workers_stop(self) -> None:
        """A warm stop (SIGTERM): what is queued stays in Redis."""
        for process in self.workers.values():
            _common.stop(process)

    def worker_kill(self, queue: str) -> None:
        """SIGKILL to the worker and its pool: the machine running it died."""
        process = self.workers[queue]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def down(self) -> None:
        for process in (self.beat, *self.workers.values(), self.web):
            _common.stop(process)
        self.redis.stop()
        self.pg.stop()
        self.moto.stop()
        self.mail.stop()

    def browser(self, username: str) -> _common.Session:
        return _common.Session(self.web_port, timeout=60).sign_in(username, PASSWORD)

    def imports(self) -> dict[int, tuple[str, str, int, str]]:
        rows = self.pg.execute(
            "select id, status, stage, rows_stored, error from costs_billingimport"
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows or []}


def focus_file(folder: Path, *, rows: int, month: str, name: str) -> Path:
    """A FOCUS export of ``rows`` hourly lines in ``month`` (the benchmarks' generator)."""
    _common.ensure_repo_on_path()
    from costs.sampledata import write_focus_csv

    path = folder / name
    write_focus_csv(path, rows=rows, seed=11, months=(month,), profile="bench")
    return path


def upload(browser: _common.Session, path: Path) -> tuple[int, int | None]:
    """Upload through the page; (HTTP status, the import's id from the redirect)."""
    status, headers, _ = browser.post("/costs/imports/", {"format": "auto"}, {"file": path})
    location = headers.get("Location", "")
    pk = location.rstrip("/").rsplit("/", 1)[-1]
    return status, int(pk) if pk.isdigit() else None


def finished(stack: Stack, pk: int | None):
    if pk is None:
        return None
    state = stack.imports().get(pk)
    return state if state and state[0] in {"succeeded", "failed"} else None


# --- the faults ---------------------------------------------------------------------------

PAGES = (
    "/",
    "/costs/chargeback/",
    "/costs/statements/",
    "/costs/imports/",
    "/api/v1/costs/?month={month}",
    "/api/v1/approval-requests/",
    "/api/v1/models/",
)


def redis_stop(stack: Stack, folder: Path) -> dict[str, str]:
    fiona = stack.browser("fiona")
    month = (
        stack.pg.execute(
            "select to_char(max(month), 'YYYY-MM') from costs_chargebackperiod "
            "where status = 'draft'"
        )[0][0]
        or "2026-11"
    )
    before = focus_file(folder, rows=2000, month="2026-06", name="before-the-stop.csv")
    during = focus_file(folder, rows=2000, month="2026-05", name="during-the-stop.csv")

    stack.workers_stop()  # what is queued now waits in Redis
    status_a, import_a = upload(fiona, before)
    mails_before = len(stack.mail.subjects)
    publish, _, _ = fiona.post(f"/costs/statements/{month}/publish/", {})
    waiting = stack.redis.queued()
    print(
        f"  queued before the stop: upload HTTP {status_a} (import #{import_a}), publish "
        f"{month} HTTP {publish}, {waiting} message(s) in Redis"
    )

    stack.redis.stop()
    ok = total = 0
    slowest = 0.0
    failures: dict[str, int] = {}
    stopped = time.monotonic()
    while time.monotonic() - stopped < 15:
        for path in PAGES:
            status, _, ms = fiona.get(path.format(month=month))
            total += 1
            slowest = max(slowest, ms)
            if status == 200:
                ok += 1
            else:
                failures[f"{path} {status}"] = failures.get(f"{path} {status}", 0) + 1
    status_b, import_b = upload(fiona, during)
    state_b = stack.imports().get(import_b or -1)
    healthz, _, _ = fiona.get("/healthz")
    readyz, _, _ = fiona.get("/readyz")
    _, page, _ = fiona.get(f"/costs/imports/{import_b}/") if import_b else (0, b"", 0)
    says_waiting = b"waiting for the task queue" in page
    print(
        f"  Redis down: {ok}/{total} page views 200 (slowest {slowest:.0f} ms), upload HTTP "
        f"{status_b} (import #{import_b} {state_b[0] if state_b else '?'}, page says waiting: "
        f"{'yes' if says_waiting else 'no'}), /healthz HTTP {healthz}, /readyz HTTP {readyz}"
    )
    for what, count in sorted(failures.items()):
        print(f"    not 200: {what} x{count}")

    stack.redis.start()
    back = time.monotonic()
    stack.workers_start()
    done_a = wait_for(
        "the import queued before the stop", lambda: finished(stack, import_a), timeout=180
    )
    done_b = wait_for(
        "the import uploaded during the stop", lambda: finished(stack, import_b), timeout=180
    )
    mailed = wait_for(
        "the statement mails",
        lambda: len(stack.mail.subjects) > mails_before,
        timeout=120,
    )
    resumed_s = time.monotonic() - back
    queued_resumed = bool(done_a and done_a[0] == "succeeded")
    sent_again = bool(done_b and done_b[0] == "succeeded")
    mails = len(stack.mail.subjects) - mails_before
    survived = (
        ok == total and status_b in (302, 303) and queued_resumed and sent_again and bool(mailed)
    )
    return {
        "pages_ok": f"{ok}/{total}",
        "slowest_page_ms": f"{slowest:.0f}",
        "upload_during_outage": str(status_b),
        "queued_resumed": "yes" if queued_resumed else "no",
        "resent_after_outage": "yes" if sent_again else "no",
        "mails_resumed": f"yes ({mails})" if mailed else "no",
        "resumed_in_s": f"{resumed_s:.0f}",
        "healthz_during_outage": str(healthz),
        "readyz_during_outage": str(readyz),
        "ok": "ok" if survived else "FAILED",
    }


def pg_restart(stack: Stack, folder: Path, rows: int) -> dict[str, str]:
    fiona = stack.browser("fiona")
    path = focus_file(folder, rows=rows, month="2026-04", name="restart-under-me.csv")
    status, pk = upload(fiona, path)
    copying = wait_for(
        "the worker's COPY",
        lambda: stack.pg.execute(
            "select pid from pg_stat_activity where query ilike 'copy costs_costrow%%' "
            "and state = 'active'"
        ),
        timeout=300,
        every=0.05,
    )
    restarted_at = time.monotonic()
    stack.pg.restart()
    restart_s = time.monotonic() - restarted_at
    ended = wait_for("the import to end", lambda: finished(stack, pk), timeout=180)
    partial = stack.pg.execute(
        "select count(*) from costs_costrow where billing_import_id = %s", (pk,)
    )[0][0]
    print(
        f"  upload HTTP {status} (import #{pk}); PostgreSQL restarted "
        f"{'during the COPY' if copying else 'without seeing the COPY'} in {restart_s:.1f} s; "
        f"the import ended {ended[0] if ended else 'never'}: {(ended or ('', '', 0, ''))[3][:160]}"
    )

    _, again = upload(stack.browser("fiona"), path)
    rerun = wait_for("the re-run", lambda: finished(stack, again), timeout=300)
    kept, stored = stack.pg.execute(
        "select count(*), (select rows_stored from costs_billingimport where id = %s) "
        "from costs_costrow where billing_period = '2026-04-01'",
        (again,),
    )[0]
    survived = bool(
        copying
        and ended
        and ended[0] == "failed"
        and ended[3]
        and not partial
        and rerun
        and rerun[0] == "succeeded"
        and kept == stored
    )
    return {
        "restarted_during_copy": "yes" if copying else "no",
        "import_status": ended[0] if ended else "stuck",
        "partial_rows": str(partial),
        "error_said": "yes" if ended and ended[3] else "no",
        "rerun": rerun[0] if rerun else "stuck",
        "rerun_rows": str(stored),
        "rows_in_month": str(kept),
        "ok": "ok" if survived else "FAILED",
    }


CUR2_COLUMNS = (
    "identity_line_item_id", "identity_time_interval", "bill_payer_account_id",
    "bill_billing_period_start_date", "bill_billing_period_end_date",
    "line_item_usage_account_id", "line_item_line_item_type", "line_item_usage_start_date",
    "line_item_usage_end_date", "line_item_product_code", "line_item_resource_id",
    "line_item_usage_amount", "line_item_currency_code", "line_item_unblended_cost",
    "pricing_public_on_demand_cost", "product_region_code", "resource_tags",
)  # fmt: skip


def put_cur_export(url: str, *, lines: int) -> None:
    """A CUR 2.0 data export of March 2026 in moto's S3: ``lines`` hourly lines, gzip CSV."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
    )
    s3.create_bucket(Bucket=BUCKET)
    root, period = "billing/capgov-cur2", "2026-03"
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CUR2_COLUMNS)
    teams = ("research", "ads", "search", "platform")
    for n in range(lines):
        day = 1 + n % 31
        hour = (n // 31) % 24
        start = f"2026-03-{day:02d}T{hour:02d}:00:00Z"
        end = f"2026-03-{day:02d}T{hour:02d}:59:59Z"
        writer.writerow(
            [
                f"line-{n}", f"{start}/{end}", ACCOUNT_ID, "2026-03-01T00:00:00Z",
                "2026-04-01T00:00:00Z", "444455556666", "Usage", start, end, "AmazonSageMaker",
                f"arn:aws:sagemaker:us-east-1:{ACCOUNT_ID}:endpoint/ep-{n % 5000}", "1", "USD",
                f"{1 + n % 97}.{n % 100:02d}", f"{2 + n % 97}.{n % 100:02d}", "us-east-1",
                json.dumps({"user_team": teams[n % 4]}),
            ]
        )  # fmt: skip
    key = f"{root}/data/BILLING_PERIOD={period}/capgov-cur2-00001.csv.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(text.getvalue().encode()))
    manifest = {
        "executionId": f"exec-{period}",
        "billingPeriod": {"start": f"{period}-01T00:00:00.000Z"},
        "bucket": BUCKET,
        "dataFiles": [f"s3://{BUCKET}/{key}"],
        "recordCount": lines,
    }
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{root}/metadata/BILLING_PERIOD={period}/capgov-cur2-Manifest.json",
        Body=json.dumps(manifest).encode(),
    )


MARCH_CUR_ROWS = (
    "select count(*) from costs_costrow where source = 'aws-cur' and billing_period = '2026-03-01'"
)


def worker_kill(stack: Stack, folder: Path, lines: int) -> dict[str, str]:
    put_cur_export(stack.moto_url, lines=lines)
    # The account as a platform admin would register it (through the model, its defaults).
    stack.manage(
        "shell",
        "-c",
        "from costs.models import CloudAccount; CloudAccount.objects.create(name='Faults payer',"
        f" provider='aws', account_id='{ACCOUNT_ID}', aws_region='us-east-1',"
        f" cur_bucket='{BUCKET}', cur_prefix='billing/', cost_source='cur',"
        " cost_allocation_tags=['user:team'])",
    )
    account = stack.pg.execute(
        "select id from costs_cloudaccount where account_id = %s", (ACCOUNT_ID,)
    )[0][0]
    pat = stack.browser("pat")

    def start_run() -> int | None:
        pat.post(
            "/costs/syncs/",
            {"account": str(account), "kind": "cur", "start": "2026-03-01", "end": "2026-04-01"},
        )
        found = stack.pg.execute(
            "select max(id) from costs_syncrun where account_id = %s", (account,)
        )
        return found[0][0] if found else None

    def run_state(pk: int):
        found = stack.pg.execute("select status, error from costs_syncrun where id = %s", (pk,))
        return found[0] if found else None

    first = start_run()
    wait_for("the sync to start", lambda: (run_state(first) or ("",))[0] == "running", timeout=300)
    # Its import runs inside the sync's transaction: seen from outside, as the worker's queries.
    importing = wait_for(
        "the sync to import",
        lambda: stack.pg.execute(
            "select pid from pg_stat_activity where state = 'active' and "
            "(query ilike 'copy costs_costrow%%' or query ilike '%%costs_tagset%%')"
        ),
        timeout=30,
        every=0.05,
    )
    killed_at = time.monotonic()
    state_then = run_state(first)
    stack.worker_kill("bulk")
    print(
        f"  sync run #{first} {state_then[0] if state_then else '?'} when the worker's process "
        f"group got SIGKILL{'' if importing else ' (the import was not seen)'}"
    )
    marked = wait_for(
        "the sweep to mark the run",
        lambda: (run_state(first) or ("running",))[0] != "running" and run_state(first),
        timeout=ABANDONED_AFTER + 150,
        every=2,
    )
    marked_s = time.monotonic() - killed_at
    partial = stack.pg.execute(MARCH_CUR_ROWS)[0][0]
    print(
        f"  after {marked_s:.0f} s the run is {marked[0] if marked else 'still running'}: "
        f"{(marked or ('', ''))[1][:120]}; CUR rows of 2026-03 kept: {partial}"
    )

    stack.worker_start("bulk")
    second = start_run()
    next_run = wait_for(
        "the next run",
        lambda: (
            (run_state(second) or ("queued",))[0] in {"succeeded", "failed"} and run_state(second)
        ),
        timeout=300,
        every=1,
    )
    rows = stack.pg.execute(MARCH_CUR_ROWS)[0][0]
    stored = stack.pg.execute("select rows from costs_syncrun where id = %s", (second,))[0][0]
    survived = bool(
        marked
        and marked[0] == "failed"
        and not partial
        and next_run
        and next_run[0] == "succeeded"
        and rows == stored > 0
    )
    return {
        "run_marked": marked[0] if marked else "running",
        "marked_after_s": f"{marked_s:.0f}",
        "partial_rows": str(partial),
        "next_run": next_run[0] if next_run else "stuck",
        "next_run_rows": str(stored),
        "rows_in_month": str(rows),
        "ok": "ok" if survived else "FAILED",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(FAULTS), help="comma-separated faults")
    parser.add_argument("--rows", type=int, default=300_000, help="lines of the restarted import")
    parser.add_argument("--cur-lines", type=int, default=150_000, help="lines of the killed sync")
    parser.add_argument("--keep", action="store_true", help="keep the folder with the logs")
    args = parser.parse_args(argv)
    chosen = [f for f in args.only.split(",") if f]
    unknown = set(chosen) - set(FAULTS)
    if unknown:
        raise SystemExit(f"unknown fault(s) {', '.join(sorted(unknown))}; choose from {FAULTS}")

    root = Path(tempfile.mkdtemp(prefix="capgov-faults-"))
    root.chmod(0o755)  # the postgres user reaches its cluster inside
    stack = Stack(root)
    results: dict[str, dict[str, str]] = {}
    try:
        stack.up()
        for fault in chosen:
            print(f"{fault}:")
            started = time.perf_counter()
            if fault == "redis_stop":
                results[fault] = redis_stop(stack, root)
            elif fault == "pg_restart":
                results[fault] = pg_restart(stack, root, args.rows)
            else:
                results[fault] = worker_kill(stack, root, args.cur_lines)
            line = " ".join(f"{k}={v}" for k, v in results[fault].items() if k != "ok")
            print(
                f"fault={fault} {line} survived={results[fault]['ok']} "
                f"({time.perf_counter() - started:.0f} s)"
            )
    finally:
        stack.down()
        if args.keep:
            print(f"logs         {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    survived = sum(r["ok"] == "ok" for r in results.values())
    print(
        f"faults={len(results)} survived={survived} "
        + " ".join(f"{name}={r['ok']}" for name, r in results.items())
    )
    if survived != len(results):
        sys.exit(1)


if __name__ == "__main__":
    main()
