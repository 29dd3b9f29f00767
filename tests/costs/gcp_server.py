"""A local HTTP server that answers as Google's REST APIs do, for the real clients to call.

It speaks the JSON of Cloud Billing (``billingAccounts.get``, ``billingAccounts.projects.list``),
the Cloud Billing Catalog (``services.list``, ``services.skus.list``) and BigQuery
(``jobs.query``, ``jobs.getQueryResults``, ``jobs.get``), pages lists with ``nextPageToken``
(``pageToken`` for BigQuery rows), records every request, and fails the requests a test asks
it to, with Google's error body.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Failure:
    """Answer ``status`` to requests whose method and path match, ``times`` times, after
    letting ``after`` matching requests through."""

    method: str
    path: re.Pattern[str]
    status: int
    message: str
    reason: str
    times: int = 1
    after: int = 0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any] | None


def schema_fields(columns: tuple[tuple[str, str, str], ...], **records: tuple) -> list[dict]:
    """BigQuery's ``schema.fields`` from (name, type, mode) tuples; ``records`` gives the
    sub-fields of RECORD columns by name."""
    fields = []
    for name, kind, mode in columns:
        item: dict[str, Any] = {"name": name, "type": kind, "mode": mode}
        if kind == "RECORD":
            item["fields"] = schema_fields(records[name])
        fields.append(item)
    return fields


def _value(field: dict, value: Any) -> Any:
    if value is None:
        return None
    if field["type"] in ("RECORD", "STRUCT"):
        return {"f": [_cell(sub, value.get(sub["name"])) for sub in field["fields"]]}
    if field["type"] in ("BOOLEAN", "BOOL"):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _cell(field: dict, value: Any) -> dict:
    if field.get("mode") == "REPEATED":
        return {"v": [{"v": _value(field, item)} for item in value or []]}
    return {"v": _value(field, value)}


def bigquery_rows(fields: list[dict], rows: list[dict]) -> list[dict]:
    """Rows as BigQuery's REST API sends them: ``{"f": [{"v": ...}, ...]}`` in schema order."""
    return [{"f": [_cell(f, row.get(f["name"])) for f in fields]} for row in rows]


@dataclass
class GoogleFake:
    """What the fake Google knows; tests fill it in, then point the clients at ``url``."""

    services: list[dict] = field(default_factory=list)
    skus: dict[str, list[dict]] = field(default_factory=dict)  # service id -> SKUs
    billing_accounts: dict[str, dict] = field(default_factory=dict)
    project_billing: dict[str, list[dict]] = field(default_factory=dict)
    # BigQuery: the result schema, and the rows per value of @invoice_month.
    bigquery_fields: list[dict] = field(default_factory=list)
    query_results: dict[str, list[dict]] = field(default_factory=dict)
    page_size: int = 2
    bigquery_page_size: int = 1000
    requests: list[Request] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    _jobs: dict[str, list[dict]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- control -------------------------------------------------------------------------

    def start(self) -> str:
        handler = type("GoogleHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        message: str = "",
        reason: str = "",
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Fail matching requests (``path`` is a regular expression searched in the path)."""
        self.failures.append(
            Failure(
                method,
                re.compile(path),
                status,
                message or f"Injected {status}",
                reason or _STATUS.get(status, "error"),
                times,
                after,
            )
        )

    def calls(self, method: str, path: str) -> list[Request]:
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    # --- answers -------------------------------------------------------------------------

    def answer(self, request: Request) -> tuple[int, dict]:
        with self._lock:
            self.requests.append(request)
            failure = self._failure(request)
        if failure is not None:
            return failure.status, _error(failure.status, failure.message, failure.reason)
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, request.path)
            if match and method == request.method:
                return handler(request, **match.groupdict())
        return 404, _error(404, f"No route for {request.method} {request.path}", "notFound")

    def _failure(self, request: Request) -> Failure | None:
        for failure in self.failures:
            if failure.method != request.method or not failure.path.search(request.path):
                continue
            if failure.after > 0:
                failure.after -= 1
                continue
            if failure.times > 0:
                failure.times -= 1
                return failure
        return None

    def _routes(self):
        return [
            ("GET", r"/v1/services", self._services),
            ("GET", r"/v1/services/(?P<service>[^/]+)/skus", self._skus),
            ("GET", r"/v1/billingAccounts/(?P<account>[^/]+)", self._billing_account),
            ("GET", r"/v1/billingAccounts/(?P<account>[^/]+)/projects", self._projects),
            ("POST", r"/bigquery/v2/projects/(?P<project>[^/]+)/queries", self._query),
            (
                "GET",
                r"/bigquery/v2/projects/(?P<project>[^/]+)/queries/(?P<job>[^/]+)",
                self._query_results,
            ),
            ("GET", r"/bigquery/v2/projects/(?P<project>[^/]+)/jobs/(?P<job>[^/]+)", self._job),
        ]

    def _page(self, request: Request, items: list[dict], key: str) -> tuple[int, dict]:
        token = (request.query.get("pageToken") or request.query.get("page_token") or ["0"])[0]
        start = int(token or 0)
        body: dict[str, Any] = {key: items[start : start + self.page_size]}
        if start + self.page_size < len(items):
            body["nextPageToken"] = str(start + self.page_size)
        return 200, body

    def _services(self, request: Request) -> tuple[int, dict]:
        return self._page(request, self.services, "services")

    def _skus(self, request: Request, service: str) -> tuple[int, dict]:
        return self._page(request, self.skus.get(service, []), "skus")

    def _billing_account(self, request: Request, account: str) -> tuple[int, dict]:
        if account not in self.billing_accounts:
            return 404, _error(404, f"Billing account {account} not found.", "notFound")
        return 200, self.billing_accounts[account]

    def _projects(self, request: Request, account: str) -> tuple[int, dict]:
        return self._page(request, self.project_billing.get(account, []), "projectBillingInfo")

    def _query(self, request: Request, project: str) -> tuple[int, dict]:
        body = request.body or {}
        values = {
            p["name"]: p["parameterValue"].get("value") for p in body.get("queryParameters", [])
        }
        rows = bigquery_rows(
            self.bigquery_fields, self.query_results.get(values.get("invoice_month"), [])
        )
        job = f"job_{len(self._jobs) + 1}"
        self._jobs[job] = rows
        return 200, self._result_page(project, job, rows, 0, kind="bigquery#queryResponse")

    def _result_page(
        self, project: str, job: str, rows: list[dict], start: int, *, kind: str
    ) -> dict:
        page = rows[start : start + self.bigquery_page_size]
        body: dict[str, Any] = {
            "kind": kind,
            "jobReference": {"projectId": project, "jobId": job, "location": "EU"},
            "schema": {"fields": self.bigquery_fields},
            "jobComplete": True,
            "totalRows": str(len(rows)),
            "totalBytesProcessed": "1024",
            "cacheHit": False,
        }
        if page:
            body["rows"] = page
        if start + self.bigquery_page_size < len(rows):
            body["pageToken"] = str(start + self.bigquery_page_size)
        return body

    def _query_results(self, request: Request, project: str, job: str) -> tuple[int, dict]:
        rows = self._jobs.get(job)
        if rows is None:
            return 404, _error(404, f"Not found: Job {project}:{job}", "notFound")
        start = int((request.query.get("pageToken") or ["0"])[0])
        body = self._result_page(project, job, rows, start, kind="bigquery#getQueryResultsResponse")
        if request.query.get("maxResults") == ["0"]:
            body.pop("rows", None)
            body.pop("pageToken", None)
        return 200, body

    def _job(self, request: Request, project: str, job: str) -> tuple[int, dict]:
        if job not in self._jobs:
            return 404, _error(404, f"Not found: Job {project}:{job}", "notFound")
        return 200, {
            "kind": "bigquery#job",
            "id": f"{project}:EU.{job}",
            "jobReference": {"projectId": project, "jobId": job, "location": "EU"},
            "configuration": {"jobType": "QUERY", "query": {"useLegacySql": False}},
            "status": {"state": "DONE"},
            "statistics": {
                "creationTime": "1764756000000",
                "startTime": "1764756000100",
                "endTime": "1764756000200",
                "query": {"totalBytesProcessed": "1024"},
            },
        }


def _error(status: int, message: str, reason: str) -> dict:
    """Google's JSON error body (BigQuery adds ``errors[].reason``)."""
    return {
        "error": {
            "code": status,
            "message": message,
            "status": _STATUS.get(status, "UNKNOWN"),
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }


class _Handler(BaseHTTPRequestHandler):
    fake: GoogleFake

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        request = Request(method, parts.path, parse_qs(parts.query), body)
        status, payload = self.fake.answer(request)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests read ``requests`` instead
