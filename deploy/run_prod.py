"""Run Capgov's production stack on this machine: ``make run-prod``.

Production settings (DJANGO_ENV=production, whatever the environment says) against the
local PostgreSQL and Redis: first the database is migrated, the default schedules installed
and the static files collected (served by WhiteNoise); then four processes start and this
script watches them:

    web      gunicorn -c deploy/gunicorn.conf.py
    worker   celery worker on the default queue (e-mails, escalations, expiries)
    bulk     celery worker on the bulk queue (billing imports, cloud syncs, derivations)
    beat     celery beat (the schedules in django-celery-beat's tables)

Ctrl-C (or SIGTERM) stops them all, waiting for running tasks to finish; a second Ctrl-C
kills what is left. If one of them dies, the rest are stopped too and the script exits 1.

Unset variables get local defaults: DATABASE_URL postgres://postgres@127.0.0.1:5432/capgov,
CELERY_BROKER_URL redis://127.0.0.1:6379/0, DJANGO_ALLOWED_HOSTS the host served, and a
secret key generated once into ``$CAPGOV_VAR_DIR/secret_key``. This machine serves plain
HTTP, so DJANGO_SECURE_SSL_REDIRECT defaults to false here; behind a TLS proxy set it true.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOCAL_DEFAULTS = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/capgov",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
}
POLL_SECONDS = 0.5


@dataclass
class Process:
    name: str
    argv: list[str]
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        # Its own session: a Ctrl-C in the terminal reaches only this script, which then
        # stops each process once, in order, instead of all of them racing.
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=env, start_new_session=True)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int, *, group: bool = False) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            if group:
                os.killpg(self.popen.pid, signum)
            else:
                self.popen.send_signal(signum)
        except ProcessLookupError:
            pass


def secret_key(var_dir: Path) -> str:
    """The key kept in ``var_dir/secret_key``, made on first use: sessions and e-mailed
    approval links stay valid across restarts."""
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(64)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    print(
        f"run-prod: generated a secret key in {path} (set DJANGO_SECRET_KEY to choose one)",
        flush=True,
    )
    return key


def environment(host: str, port: int) -> dict[str, str]:
    # Whatever a copied .env says: this is the production set-up.
    env = {**os.environ, "DJANGO_ENV": "production"}
    for name, value in LOCAL_DEFAULTS.items():
        if not env.get(name):
            env[name] = value
    if not env.get("DJANGO_ALLOWED_HOSTS"):
        env["DJANGO_ALLOWED_HOSTS"] = ",".join(dict.fromkeys([host, "localhost"]))
    if not env.get("CAPGOV_BASE_URL"):
        env["CAPGOV_BASE_URL"] = f"http://{host}:{port}"
    if not env.get("DJANGO_SECRET_KEY"):
        var_dir = Path(env.get("CAPGOV_VAR_DIR") or ROOT / "var")
        env["DJANGO_SECRET_KEY"] = secret_key(var_dir)
    env.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    env["GUNICORN_BIND"] = f"{host}:{port}"
    return env


def queue_names(env: dict[str, str]) -> tuple[str, str]:
    return env.get("CAPGOV_DEFAULT_QUEUE") or "celery", env.get("CAPGOV_BULK_QUEUE") or "bulk"


def processes(env: dict[str, str]) -> list[Process]:
    default_queue, bulk_queue = queue_names(env)
    level = (env.get("DJANGO_LOG_LEVEL") or "INFO").upper()
    # Distinct node names, so two stacks on one host (or a test's) never clash.
    node = f"{os.getpid()}@%h"
    celery = [PYTHON, "-m", "celery", "-A", "governance"]
    return [
        Process("web", [PYTHON, "-m", "gunicorn", "-c", str(ROOT / "deploy/gunicorn.conf.py")]),
        Process(
            "worker",
            [
                *celery,
                "worker",
                "-Q",
                default_queue,
                "-n",
                f"default.{node}",
                f"--concurrency={env.get('CAPGOV_WORKER_CONCURRENCY') or os.cpu_count() or 2}",
                f"--loglevel={level}",
            ],
        ),
        Process(
            "bulk",
            [
                *celery,
                "worker",
                "-Q",
                bulk_queue,
                "-n",
                f"bulk.{node}",
                f"--concurrency={env.get('CAPGOV_BULK_CONCURRENCY') or 1}",
                f"--loglevel={level}",
            ],
        ),
        Process("beat", [*celery, "beat", f"--loglevel={level}"]),
    ]


STATIC_STAMP = ".capgov-collected"


def prepare(env: dict[str, str]) -> None:
    """Migrate, install the default schedules and collect the static files, in that order,
    in one child process (`run_prod.py --prepare`): Django starts once, not three times."""
    done = subprocess.run([PYTHON, __file__, "--prepare"], cwd=ROOT, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"run-prod: preparing failed (exit {done.returncode}); see above.")


def prepare_here() -> None:
    """The --prepare child: Django is set up in this process."""
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.core.management import call_command
    from django.db import OperationalError, connection

    try:
        connection.ensure_connection()
    except OperationalError as exc:
        url = os.environ.get("DATABASE_URL", "")
        raise SystemExit(
            f"run-prod: cannot reach the database at {_redacted(url)}: {exc}\n"
            "Start PostgreSQL, create the database (createdb -h 127.0.0.1 -U postgres capgov) "
            "or point DATABASE_URL at another one."
        ) from exc

    for command, options in (
        ("migrate", {"interactive": False}),
        ("install_schedules", {}),
    ):
        print(f"run-prod: manage.py {command}", flush=True)
        call_command(command, **options)
    static_collect()


def static_fingerprint() -> str:
    """A digest of every file the static finders see (name, size, mtime) and of the storage."""
    import hashlib

    from django.conf import settings
    from django.contrib.staticfiles.finders import get_finders

    digest = hashlib.sha256(repr(settings.STORAGES["staticfiles"]).encode())
    for finder in get_finders():
        for path, storage in sorted(finder.list(["CVS", ".*", "*~"]), key=lambda item: item[0]):
            stat = os.stat(storage.path(path))
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def static_collect() -> None:
    """collectstatic, unless the files it would collect are those it collected last time:
    compressing every file again (gzip and brotli) takes minutes on a small machine."""
    from django.conf import settings
    from django.core.management import call_command

    static_root = Path(settings.STATIC_ROOT)
    stamp = static_root / STATIC_STAMP
    digest = static_fingerprint()
    collected = (static_root / "staticfiles.json").exists() and stamp.exists()
    if collected and stamp.read_text().strip() == digest:
        print(f"run-prod: static files in {static_root} are up to date", flush=True)
        return
    print(f"run-prod: manage.py collectstatic (into {static_root})", flush=True)
    call_command("collectstatic", interactive=False, verbosity=0)
    stamp.write_text(digest + "\n")


class Supervisor:
    def __init__(self, children: list[Process], stop_timeout: float) -> None:
        self.children = children
        self.stop_timeout = stop_timeout
        self.stopping = False
        self.forced = False

    def on_signal(self, signum: int, _frame: object) -> None:
        if self.stopping:
            self.forced = True
        self.stopping = True

    def run(self, env: dict[str, str]) -> int:
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        for child in self.children:
            child.start(env)
        failed: Process | None = None
        while not self.stopping:
            time.sleep(POLL_SECONDS)
            failed = next((c for c in self.children if not c.running()), None)
            if failed is not None:
                code = failed.popen.returncode if failed.popen else None
                print(
                    f"run-prod: {failed.name} exited with {code}; stopping the others",
                    file=sys.stderr,
                    flush=True,
                )
                break
        self.stop()
        return 1 if failed is not None else 0

    def stop(self) -> None:
        print("run-prod: stopping (Ctrl-C again to kill)", flush=True)
        for child in self.children:
            # Warm shutdown: gunicorn finishes its requests, workers their tasks.
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while any(c.running() for c in self.children):
            if self.forced or time.monotonic() > deadline:
                for child in self.children:
                    child.signal(signal.SIGKILL, group=True)
                break
            time.sleep(0.1)
        for child in self.children:
            if child.popen is not None:
                child.popen.wait()
        print("run-prod: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for running requests and tasks before killing (default 60)",
    )
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare:
        prepare_here()
        return 0
    env = environment(args.host, args.port)
    prepare(env)
    children = processes(env)
    default_queue, bulk_queue = queue_names(env)
    print(
        f"\n  Capgov serves at http://{args.host}:{args.port}/  (DJANGO_ENV={env['DJANGO_ENV']})\n"
        f"  web: gunicorn; workers: queue '{default_queue}' and bulk queue '{bulk_queue}'; "
        "beat\n"
        f"  database {_redacted(env['DATABASE_URL'])}, "
        f"broker {_redacted(env['CELERY_BROKER_URL'])}\n"
        "  Ctrl-C stops them all.\n",
        flush=True,
    )
    return Supervisor(children, args.stop_timeout).run(env)


def _redacted(url: str) -> str:
    """The URL without its password, for the start-up banner."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if ':' in credentials else user}@{location}"


if __name__ == "__main__":
    sys.exit(main())
