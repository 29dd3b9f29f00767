"""schemathesis over /api/schema/: every operation, signed in as a platform admin who holds
every role, answers without a server error and within the schema it publishes."""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from django.db import transaction
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.media_types import YAML_MEDIA_TYPES
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.proof.conftest import SESSION_HEADER, SUMMARY, derandomized, session_key

# A few derandomized examples per operation keep `make test` fast and repeatable: valid
# requests, then invalid ones (which must be refused with a 4xx, never a 500).
# CAPGOV_PROOF_EXAMPLES=50 digs deeper by hand.
EXAMPLES = int(os.environ.get("CAPGOV_PROOF_EXAMPLES", "5"))
MODES = {GenerationMode.POSITIVE: EXAMPLES, GenerationMode.NEGATIVE: max(1, EXAMPLES // 2)}
CHECKS = [not_a_server_error, response_schema_conformance]


@schemathesis.deserializer(*YAML_MEDIA_TYPES)
def _yaml_as_text(ctx, response):
    """YAML here is a file to download (the OpenSLO export, several documents in one file),
    documented as text the way a client saves it: compare it as text, not parsed."""
    return response.content.decode(response.encoding or "utf-8")


def success_status_documented(ctx, response, case) -> bool | None:
    """A success or redirect must be one the operation documents (errors are DRF's own and
    are not listed per operation, so they are not held to this)."""
    if response.status_code >= 400:
        return None
    documented = set(case.operation.definition.raw.get("responses", {}))
    if str(response.status_code) in documented or "default" in documented:
        return None
    if f"{str(response.status_code)[0]}XX" in documented:
        return None
    raise Failure(
        operation=case.operation.label,
        title="Undocumented success status code",
        message=f"Answered {response.status_code}; the schema documents {sorted(documented)}.",
    )


def _short(value, limit: int = 300) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[:limit] + "…"


def _describe(response, group: FailureGroup, errors: list[str]) -> str:
    """One failing example: the request, the answer, each check's complaint and, for a
    server error, where the exception was raised."""
    request = response.request
    lines = [
        f"{request.method} {request.url} {_short(request.body, 200)}",
        f"  -> {response.status_code} {_short(response.content)}",
    ]
    for failure in group.exceptions:
        lines.append(f"  - {failure.title}: {_short(failure.message, 500)}")
    if errors:
        lines.extend("    " + line for line in errors[-1].strip().splitlines()[-3:])
    return "\n".join(lines)


def _known_values(app, headers, schema, world) -> dict[str, dict[str, list]]:
    """Real values for path parameters, read from the matching list endpoint, so detail and
    action operations also run against objects that exist (not only 404s)."""
    from werkzeug.test import Client

    client = Client(app)
    listed: dict[str, list] = {}

    def items_of(list_path: str) -> list:
        # Read once: a list stands before the paths of all its detail actions.
        if list_path not in listed:
            response = client.get(list_path, headers=headers)
            items: object = []
            if response.status_code == 200 and response.is_json:
                body = response.get_json()
                items = body.get("results", body) if isinstance(body, dict) else body
            listed[list_path] = items if isinstance(items, list) else []
        return listed[list_path]

    values: dict[str, dict[str, list]] = {}
    for path in schema.raw_schema["paths"]:
        names = re.findall(r"{(\w+)}", path)
        if not names:
            continue
        found: dict[str, list] = {name: [] for name in names}
        for item in items_of(path[: path.index("{")]):
            if not isinstance(item, dict):
                continue
            key = "id" if "id" in item else None
            if len(names) == 1 and key is None and names[0] in item:
                key = names[0]
            for name in names:
                field = key if name in {"id", "pk"} else name
                if field in item and item[field] not in found[name]:
                    found[name].append(item[field])
        found.setdefault("month", [])
        found["month"] = found["month"] or list(world.months)
        if "code" in names and not found["code"]:
            found["code"] = sorted(world.units)
        values[path] = {name: found[name][:8] for name in names if found.get(name)}
    return values


def _exercise(operation, mode, *, headers, known, failures, counter, app) -> None:
    path_values = known.get(operation.path, {})

    @derandomized(MODES[mode])
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case, data):
        for name, candidates in path_values.items():
            if data.draw(st.booleans(), label=f"real {name}"):
                case.path_parameters[name] = data.draw(st.sampled_from(candidates), label=name)
        counter["requests"] += 1
        app.errors.clear()
        # Each example in its own savepoint: what one request writes never leaks into the next.
        with transaction.atomic():
            response = case.call(headers=headers)
            transaction.set_rollback(True)
        try:
            case.validate_response(response, checks=[*CHECKS, success_status_documented])
        except FailureGroup as group:
            raise AssertionError(_describe(response, group, app.errors)) from None

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # Nothing to negate (an operation without parameters or body): no invalid request.
    except AssertionError as exc:
        failures.append(f"{operation.label} ({mode.value}): {exc}")


def test_every_api_operation_answers_within_its_schema(wsgi_app, world):
    headers = {SESSION_HEADER: session_key(world.admin)}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app, headers=headers)
    known = _known_values(wsgi_app, headers, schema, world)
    failures: list[str] = []
    counter = {"operations": 0, "requests": 0}
    for result in schema.get_all_operations():
        operation = result.ok()
        counter["operations"] += 1
        for mode in MODES:
            _exercise(
                operation,
                mode,
                headers=headers,
                known=known,
                failures=failures,
                counter=counter,
                app=wsgi_app,
            )
    examples = " + ".join(f"{n} {mode.value}" for mode, n in MODES.items())
    SUMMARY["schemathesis"] = (
        f"schemathesis: {counter['operations']} operations checked with {counter['requests']} "
        f"requests (up to {examples} examples each), {len(failures)} failing"
    )
    print(SUMMARY["schemathesis"])
    assert counter["operations"] > 0, "the schema lists no operation"
    if failures:
        pytest.fail(f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures))
