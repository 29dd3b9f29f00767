"""Helpers shared by bench/load.py and bench/faults.py: databases, Django, the production web
process, free ports and percentiles. Nothing here imports Django at module level: the scripts
choose their environment (database, broker, settings) before Django is set up.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
# What a TLS-terminating proxy adds: production settings trust it (SECURE_PROXY_SSL_HEADER).
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


def ensure_repo_on_path() -> None:
    # Run as `python bench/x.py`, sys.path[0] is bench/; the apps live one level up.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def server_params(url: str) -> dict[str, object]:
    """psycopg connection keywords (without dbname) for a postgres:// URL."""
    import dj_database_url

    config = dj_database_url.parse(url)
    if "postgresql" not in config["ENGINE"]:
        raise SystemExit(f"{url}: the benchmarks need PostgreSQL.")
    return {
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }


def database_name(url: str) -> str:
    import dj_database_url

    return str(dj_database_url.parse(url)["NAME"])


def database_comment(url: str) -> str | None:
    """The database's COMMENT (the benchmarks' build marker), or None if it does not exist."""
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **server_params(url)) as conn:
        row = conn.execute(
            "select coalesce(shobj_description(oid, 'pg_database'), '') "
            "from pg_database where datname = %s",
            [database_name(url)],
        ).fetchone()
    return None if row is None else row[0]


def database_create(url: str, *, drop: bool = False) -> None:
    """Create the database (dropping it first when ``drop``); a no-op if it exists."""
    import psycopg
    from psycopg import sql

    name = database_name(url)
    with psycopg.connect(dbname="postgres", autocommit=True, **server_params(url)) as conn:
        if drop:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
        exists = conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


def database_mark(url: str, marker: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dbname="postgres", autocommit=True, **server_params(url)) as conn:
        conn.execute(
            sql.SQL("comment on database {} is {}").format(
                sql.Identifier(database_name(url)), sql.Literal(marker)
            )
        )


def setup_django(env: Mapping[str, str] | None = None) -> None:
    """Set up Django in this process with ``env`` applied, and bring the schema up to date."""
    ensure_repo_on_path()
    os.environ.update(env or {})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(
    *, database_url: str, broker_url: str, static_root: Path, extra: Mapping[str, str] = ()
) -> dict[str, str]:
    """The environment of a production process: throwaway secret, local hosts, no demo
    defaults. TLS is assumed to end at a proxy, which the load generator plays (it sends
    ``X-Forwarded-Proto: https``), so HSTS, secure cookies and the SSL redirect stay on."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "CAPGOV_", "GUNICORN_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "governance.settings",
            "DJANGO_ENV": "production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_STATIC_ROOT": str(static_root),
            "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def collectstatic(env: Mapping[str, str], *, work: Path) -> None:
    """Production serves hashed, gzipped static files through WhiteNoise: build them.

    The dev virtualenv has brotli (locust needs it) and WhiteNoise then also writes Brotli
    copies at its slowest setting, which takes minutes for plotly.js on two busy cores. The
    production dependencies have no brotli, so it is hidden here to build what production
    builds.
    """
    shim = work / "no-brotli"
    shim.mkdir(exist_ok=True)
    (shim / "brotli.py").write_text('raise ImportError("hidden: production has no brotli")\n')
    path = os.pathsep.join(p for p in (str(shim), env.get("PYTHONPATH", "")) if p)
    subprocess.run(
        [PYTHON, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=REPO,
        env={**env, "PYTHONPATH": path},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def gunicorn_start(
    env: Mapping[str, str], *, port: int, workers: int, log: IO[str]
) -> subprocess.Popen:
    """Start the web process the production way: the ops set-up's deploy/gunicorn.conf.py when
    it exists, else gunicorn with the same essentials."""
    env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
    }
    config = REPO / "deploy" / "gunicorn.conf.py"
    command = [str(VENV_BIN / "gunicorn")]
    if config.exists():
        command += ["-c", str(config)]
    else:
        command += [
            "governance.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            "4",
            "--worker-class",
            "gthread",
        ]
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_http(port: int, path: str = "/healthz", *, timeout: float = 90.0, process=None) -> None:
    """Wait until the server on ``port`` answers ``path`` at all (any status): it is up.

    Asked as the TLS proxy would (``X-Forwarded-Proto: https``), without following redirects.
    """
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before answering")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path, headers=PROXY_HEADERS)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.3)
        finally:
            conn.close()
    raise SystemExit(f"127.0.0.1:{port}{path} did not answer within {timeout:.0f} s")


def stop(process: subprocess.Popen | None, *, timeout: float = 20.0) -> None:
    """Stop a child we started (its whole process group), politely first."""
    if process is None or process.poll() is not None:
        return
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


class Session:
    """A signed-in browser, as the TLS proxy forwards it: cookies kept by hand (they are
    ``Secure``), CSRF token and same-origin ``Referer`` on every POST."""

    def __init__(self, port: int, *, timeout: float = 120.0) -> None:
        self.port, self.timeout = port, timeout
        self.cookies: dict[str, str] = {}

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes, float]:
        """(status, headers, body, milliseconds); a refused connection is status 0."""
        import http.client
        from http.cookies import SimpleCookie

        sent = {**PROXY_HEADERS, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        started = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            content = response.read()
        except OSError:
            return 0, {}, b"", (time.monotonic() - started) * 1000
        finally:
            conn.close()
        elapsed = (time.monotonic() - started) * 1000
        jar = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar.load(header)
        self.cookies.update({name: morsel.value for name, morsel in jar.items()})
        return response.status, dict(response.headers.items()), content, elapsed

    def get(self, path: str) -> tuple[int, bytes, float]:
        status, _, content, elapsed = self.request("GET", path)
        return status, content, elapsed

    def post(
        self, path: str, fields: Mapping[str, str], files: Mapping[str, Path] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """A form post (multipart when there are files); returns (status, headers, body)."""
        import uuid
        from urllib.parse import urlencode

        headers = {
            "Referer": f"{self.origin}{path}",
            "X-CSRFToken": self.cookies.get("csrftoken", ""),
        }
        if files:
            boundary = uuid.uuid4().hex
            parts = []
            for name, value in fields.items():
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                    f"{value}\r\n".encode()
                )
            for name, file in files.items():
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                    f'filename="{file.name}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                )
                parts.append(file.read_bytes() + b"\r\n")
            parts.append(f"--{boundary}--\r\n".encode())
            body = b"".join(parts)
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        else:
            body = urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, answer_headers, content, _ = self.request("POST", path, body=body, headers=headers)
        return status, answer_headers, content

    def sign_in(self, username: str, password: str) -> Session:
        import re

        status, page, _ = self.get("/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or token is None:
            raise SystemExit(f"the login page answered {status} without a CSRF token")
        status, _, _ = self.post(
            "/login/",
            {
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": token.group(1).decode(),
            },
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise SystemExit(f"signing in as {username} failed (HTTP {status})")
        return self
