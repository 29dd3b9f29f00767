"""Security headers on pages, the API and the login page; no inline script anywhere, so the
Content-Security-Policy needs no 'unsafe-inline' for scripts; production passes check --deploy.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from costs import services as cost_services
from costs.models import BillingImport, ImportStatus

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]


def csp(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part.strip())
    }


def assert_security_headers(response) -> None:
    policy = csp(response)
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    # plotly.js and Swagger UI insert <style> elements: styles alone allow inline.
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert not any("unsafe" in value for value in policy["default-src"] + policy["script-src"])
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


class ScriptAudit(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.blocked.append(f"<{tag} {name}=…>")
            if name in {"href", "src", "action"} and (value or "").startswith("javascript:"):
                self.blocked.append(f"<{tag} {name}=javascript:…>")
        if tag == "script":
            if attributes.get("src"):
                self.scripts.append(attributes["src"])
            elif attributes.get("type") != "application/json":  # data, never executed
                self.blocked.append("<script> with inline code")


def audit(html: str) -> ScriptAudit:
    parser = ScriptAudit()
    parser.feed(html)
    return parser


@pytest.fixture
def finance_client(client, abc):
    client.force_login(abc["finance"])
    return client


def test_login_page_has_the_security_headers(client, db):
    response = client.get("/login/")
    assert response.status_code == 200
    assert_security_headers(response)
    assert audit(response.content.decode()).blocked == []


def test_an_api_response_has_the_security_headers(finance_client):
    response = finance_client.get("/api/v1/business-units/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert_security_headers(response)


def test_a_refused_api_call_has_the_security_headers(client, db):
    response = client.get("/api/v1/business-units/")
    assert response.status_code in {401, 403}
    assert_security_headers(response)


def test_a_signed_in_page_has_the_security_headers(finance_client):
    response = finance_client.get("/")
    assert response.status_code == 200
    assert_security_headers(response)


def test_pages_run_no_inline_script(finance_client, abc):
    unit = abc["A"]
    budget = cost_services.budget_save(
        name="GPU", business_unit=unit, amount=Decimal("1000"), currency="USD"
    )
    running = BillingImport.objects.create(
        file_name="nov.csv", status=ImportStatus.RUNNING, billing_periods=[]
    )
    pages = {
        "/": ["js/capgov.js", "vendor/plotly/plotly.min.js", "js/charts.js"],
        "/costs/chargeback/?month=2026-10": ["js/chargeback.js", "js/charts.js"],
        f"/costs/imports/{running.pk}/": ["js/import_progress.js"],
        f"/costs/budgets/{budget.pk}/edit/": ["js/capgov.js"],
        f"/costs/budgets/{budget.pk}/?month={date(2026, 10, 1):%Y-%m}": ["js/capgov.js"],
        "/api/docs/": ["swagger-ui-bundle.js", "/api/docs/?script="],
    }
    for url, expected in pages.items():
        response = finance_client.get(url)
        assert response.status_code == 200, url
        found = audit(response.content.decode())
        assert found.blocked == [], url
        for script in expected:
            assert any(script in src for src in found.scripts), (url, script, found.scripts)


def test_the_month_pickers_and_the_delete_question_are_declared_in_markup(finance_client, abc):
    budget = cost_services.budget_save(
        name="GPU <spend>", business_unit=abc["A"], amount=Decimal("1000"), currency="USD"
    )
    page_html = finance_client.get(f"/costs/budgets/{budget.pk}/edit/").content.decode()
    assert 'data-confirm="Delete budget GPU &lt;spend&gt; and its alert history?"' in page_html
    chargeback = finance_client.get("/costs/chargeback/?month=2026-10").content.decode()
    assert '<select id="month" name="month" data-autosubmit>' in chargeback


def test_the_api_docs_script_is_served_as_a_file(finance_client):
    response = finance_client.get("/api/docs/?script=")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in response.content.decode()


def test_no_template_has_an_inline_script_or_event_handler():
    pattern = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)|\son[a-z]+=\"")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for directory in TEMPLATE_DIRS
        for path in directory.rglob("*.html")
        if "email" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert offenders == []


# --- Production settings, in a child process (settings are read once, at start) ----------


def production_env(tmp_path: Path, database_url: str | None = None) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CAPGOV_"))},
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "capgov.example.com",
        "DJANGO_SETTINGS_MODULE": "governance.settings",
        "DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        "CAPGOV_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def migrated_database(db, tmp_path) -> str:
    """A migrated database a child process can read, as a DATABASE_URL: the test database
    on PostgreSQL; on SQLite (in memory for the tests) a file migrated for the purpose."""
    from django.db import connection

    if connection.vendor == "postgresql":
        db_settings = connection.settings_dict
        return (
            f"postgres://{db_settings['USER']}@{db_settings['HOST']}:{db_settings['PORT']}"
            f"/{db_settings['NAME']}"
        )
    url = f"sqlite:///{tmp_path / 'deploy-check.sqlite3'}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"],
        cwd=ROOT,
        env=production_env(tmp_path, url),
        check=True,
        capture_output=True,
    )
    return url


def test_check_deploy_reports_nothing(tmp_path, migrated_database):
    # The schema check (drf-spectacular's, part of --deploy) reads the database.
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(tmp_path, migrated_database),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "System check identified no issues (0 silenced)."
    assert "WARNINGS" not in done.stderr
    assert "security.W" not in done.stderr


PRODUCTION_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings
# The headers, not the static files: no collected manifest is needed for {% static %}.
override_settings(STORAGES={**settings.STORAGES, "staticfiles": {
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}).enable()
client = Client(HTTP_HOST="capgov.example.com")
out = {}
for name, path, secure in [("login", "/login/", True), ("api", "/api/v1/business-units/", True),
                           ("plain_http", "/login/", False), ("probe", "/readyz", False)]:
    response = client.get(path, secure=secure)
    out[name] = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "cookies": {k: {"secure": bool(v["secure"]), "httponly": bool(v["httponly"]),
                        "samesite": v["samesite"]} for k, v in response.cookies.items()},
    }
out["settings"] = {name: getattr(settings, name) for name in (
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "DEBUG")}
print(json.dumps(out))
"""


def test_production_sends_hsts_and_secure_cookies(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.splitlines()[-1])
    login, api, plain = probe["login"], probe["api"], probe["plain_http"]
    assert login["status"] == 200
    for response in (login, api):
        headers = response["headers"]
        assert headers["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains; preload"
        )
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "script-src 'self';" in headers["Content-Security-Policy"] + ";"
    assert api["status"] in {401, 403}
    assert login["cookies"]["csrftoken"] == {"secure": True, "httponly": False, "samesite": "Lax"}
    # Plain HTTP is sent to HTTPS before anything is served.
    assert plain["status"] == 301
    assert plain["headers"]["Location"] == "https://capgov.example.com/login/"
    # ... except the load balancer's probes (503 here: this database is not migrated).
    assert probe["probe"]["status"] == 503
    assert probe["settings"] == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "DEBUG": False,
    }
