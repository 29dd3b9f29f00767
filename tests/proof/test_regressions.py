"""What the proofs found, pinned one test per bug so each stays fixed."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from governance.choices import Role
from tests.factories import UserFactory


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _component(schema, name: str) -> dict:
    return schema["components"]["schemas"][name]


def _response(schema, path: str, method: str, status: str) -> dict:
    return schema["paths"][path][method]["responses"][status]["content"]["application/json"][
        "schema"
    ]


# --- 500s: an id filter with a number no database key can hold --------------------------------


@pytest.fixture
def signed_in(client, db):
    client.force_login(UserFactory(username="regression-admin", roles=[Role.PLATFORM_ADMIN]))
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/action-items/?postmortem=-1.25977829024561e%2B166",
        "/api/v1/contributing-factors/?postmortem=4.35253436941688e%2B34",
        "/api/v1/benchmarks/?protocol=99999999999999999999",
    ],
)
def test_id_filter_too_large_for_a_key_is_a_400_not_a_500(signed_in, url):
    response = signed_in.get(url)
    assert response.status_code == 400
    assert response.json()  # names the filter and what is wrong with it


def test_id_filter_still_takes_an_id(signed_in):
    response = signed_in.get("/api/v1/model-versions/?model=1")
    assert response.status_code == 200


# --- the schema said "never null" of fields that are null until something happens -------------


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ("ApprovalRequest", "decision"),  # until the request is decided
        ("ApprovalRequestDetail", "decision"),
        ("CapacityAssessment", "decision"),  # until the board decides
        ("CapacityAssessment", "pool"),
        ("BenchmarkProtocol", "hardware_profile"),  # a protocol for any hardware
        ("BenchmarkProtocol", "approved_by"),  # until approved
        ("BudgetMonth", "data_until"),  # a month without billing data yet
        ("BudgetFreeze", "lifted_by"),
        ("Period", "published_by"),  # a draft month
        ("Period", "closed_by"),  # a published, not closed, month
        ("BusinessUnit", "owner"),
        ("ServiceLevelObjective", "provider"),
        ("CapacityPool", "owner"),
        ("RetirementCase", "endpoint_name"),
        ("RetirementCase", "decided_by"),
        ("RetirementStep", "by"),
    ],
)
def test_schema_says_which_fields_may_be_null(schema, component, field):
    spec = _component(schema, component)["properties"][field]
    assert spec.get("nullable") is True, f"{component}.{field}: {spec}"


def test_schema_writes_months_as_yyyy_mm_not_as_dates(schema):
    for component, field in [
        ("Period", "month"),
        ("Quota", "first_month"),
        ("Quota", "last_month"),
    ]:
        spec = _component(schema, component)["properties"][field]
        assert "format" not in spec, f"{component}.{field} is a month, not a date: {spec}"
        assert spec["pattern"].startswith(r"^\d{4}-\d{2}")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/model-versions/{id}/history/",
        "/api/v1/postmortems/{id}/factors/",
        "/api/v1/retirement-cases/{id}/steps/",
    ],
)
def test_schema_does_not_call_plain_lists_paginated(schema, path):
    spec = _response(schema, path, "get", "200")
    assert spec["type"] == "array", f"{path} answers a plain list: {spec}"
    parameters = {p["name"] for p in schema["paths"][path]["get"].get("parameters", [])}
    assert "page" not in parameters


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/action-items/", "post"),
        ("/api/v1/incidents/{id}/timeline/", "post"),
        ("/api/v1/retirement-cases/{id}/keep/", "post"),
        ("/api/v1/model-versions/{id}/benchmarks/", "post"),
    ],
)
def test_schema_lets_a_400_name_the_fields_that_are_wrong(schema, path, method):
    spec = _response(schema, path, method, "400")
    if "$ref" in spec:
        spec = _component(schema, spec["$ref"].rsplit("/", 1)[1])
    assert "detail" not in spec.get("required", []), (
        "a field error ({'owner': [...]}) has no `detail`"
    )


def test_schema_lets_an_undecided_retirement_case_have_no_decision(schema):
    spec = _component(schema, "RetirementCase")["properties"]["decision"]
    choices = [ref["$ref"].rsplit("/", 1)[1] for ref in spec.get("oneOf", [])]
    assert "BlankEnum" in choices, f"an open case answers decision '': {spec}"


# --- 500 on PostgreSQL: a NUL in a field used for a lookup (``business_unit=R\x00ES``) -----


NUL_RULE = {"business_unit": "R\x00ES", "tag_key": "team", "tag_values": ["x"], "priority": 5}


@pytest.mark.parametrize("encoding", ["json", "form", "multipart"])
def test_nul_in_a_body_field_is_a_400_naming_the_field(signed_in, encoding):
    if encoding == "json":
        response = signed_in.post(
            "/api/v1/allocation-rules/", NUL_RULE, content_type="application/json"
        )
    elif encoding == "form":
        body = "business_unit=R%00ES&tag_key=team&tag_values=x&priority=5"
        response = signed_in.post(
            "/api/v1/allocation-rules/", body, content_type="application/x-www-form-urlencoded"
        )
    else:
        response = signed_in.post("/api/v1/allocation-rules/", NUL_RULE)
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
    assert "business_unit" in response.json()["detail"]


def test_the_multipart_parser_leaves_file_bytes_alone():
    """Only text fields are refused: a file's bytes go to whatever reads the file (the upload
    check, the importer), which says what is wrong with them."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from governance.api.parsers import StrictMultiPartParser

    upload = SimpleUploadedFile("result.json", b'{"a": "\x00"}\x00', "application/json")
    body = encode_multipart(BOUNDARY, {"file": upload, "note": "fine"})
    django_request = APIRequestFactory().post("/x/", body, content_type=MULTIPART_CONTENT)
    request = Request(django_request, parsers=[StrictMultiPartParser()])
    assert request.data["note"] == "fine"
    assert b"\x00" in request.FILES["file"].read()
