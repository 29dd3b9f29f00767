"""Local AWS for tests: moto in server mode, a Price List stand-in, and fault injection.

The sync code builds real boto3 clients through ``costs.clients``; tests point those at these
servers with ``settings.CAPGOV_AWS_ENDPOINT_URL[S]``, so requests are signed, serialised,
retried and parsed exactly as they would be against AWS.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.awsrequest import AWSResponse

from costs import clients


def moto_post(url: str, path: str, payload: dict[str, Any] | None = None) -> int:
    request = urllib.request.Request(  # noqa: S310 - a local test server
        url + path,
        data=json.dumps(payload or {}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status


def moto_reset(url: str) -> None:
    moto_post(url, "/moto-api/reset")


def ce_seed(url: str, pages: list[dict[str, Any]]) -> None:
    """Queue Cost Explorer answers: each new request body takes the next page."""
    assert moto_post(url, "/moto-api/static/ce/cost-and-usage-results", {"results": pages}) == 201


# --- the Price List API (moto has none) -------------------------------------------------------


def price_item(
    *,
    sku: str,
    attributes: dict[str, str],
    usd: str,
    unit: str = "Hrs",
    effective: str = "2026-09-01T00:00:00Z",
    family: str = "ML Instance",
) -> str:
    """One PriceList entry shaped like the API's (a JSON document in a string)."""
    term = f"{sku}.JRTCKXETXF"
    return json.dumps(
        {
            "product": {"productFamily": family, "sku": sku, "attributes": attributes},
            "serviceCode": attributes.get("servicecode", ""),
            "terms": {
                "OnDemand": {
                    term: {
                        "offerTermCode": "JRTCKXETXF",
                        "sku": sku,
                        "effectiveDate": effective,
                        "priceDimensions": {
                            f"{term}.6YS6EN2CT7": {
                                "unit": unit,
                                "pricePerUnit": {"USD": usd},
                                "description": f"{usd} USD per {unit}",
                            }
                        },
                        "termAttributes": {},
                    }
                }
            },
            "version": "20260901000000",
            "publicationDate": "2026-09-01T00:00:00Z",
        }
    )


class PriceListServer:
    """Answers ``GetProducts`` (AWS JSON 1.1) from a product table, one product per page."""

    def __init__(self) -> None:
        self.products: dict[str, list[str]] = {}  # service code -> PriceList items
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                target = self.headers.get("X-Amz-Target", "")
                server.requests.append({"target": target, **body})
                if target != "AWSPriceListService.GetProducts":
                    self._send(400, {"__type": "InvalidParameterException", "Message": target})
                    return
                wanted = {f["Field"]: f["Value"] for f in body.get("Filters") or []}
                matching = [
                    item
                    for item in server.products.get(body.get("ServiceCode", ""), [])
                    if all(
                        json.loads(item)["product"]["attributes"].get(k) == v
                        for k, v in wanted.items()
                    )
                ]
                start = int(body.get("NextToken") or 0)
                answer: dict[str, Any] = {
                    "FormatVersion": "aws_v1",
                    "PriceList": matching[start : start + 1],
                }
                if start + 1 < len(matching):
                    answer["NextToken"] = str(start + 1)
                self._send(200, answer)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def start(self) -> PriceListServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


# --- fault injection through the real retry path ------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any):
        yield self._body


def json_error(code: str, message: str = "Rate exceeded", status: int = 400) -> AWSResponse:
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "injected"}
    return AWSResponse("https://injected", status, headers, _Raw(body))


def s3_error(code: str, message: str, status: int) -> AWSResponse:
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    return AWSResponse("https://injected", status, {"Content-Type": "application/xml"}, _Raw(body))


@dataclass
class Fault:
    """Answers the first ``len(responses)`` calls of an operation (None: let it through)."""

    service: str  # the client's service name: "ce", "sagemaker", "s3", "pricing"...
    operation: str
    responses: list[AWSResponse | None]
    calls: list[Any] = field(default_factory=list)

    def handler(self, request, **_: Any):
        self.calls.append(request)
        index = len(self.calls) - 1
        return self.responses[index] if index < len(self.responses) else None


class Injector:
    """Wraps ``costs.clients.aws_client`` so every client it builds carries the faults."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.faults: list[Fault] = []

    def add(
        self, service: str, operation: str, responses: list[AWSResponse | None] | None = None
    ) -> Fault:
        fault = Fault(service, operation, list(responses or []))
        self.faults.append(fault)
        return fault

    def __call__(self, account, service: str, *, region: str | None = None):
        client = self.real(account, service, region=region)
        service_id = client.meta.service_model.service_id.hyphenize()
        for fault in self.faults:
            if fault.service == service:
                client.meta.events.register(
                    f"before-send.{service_id}.{fault.operation}", fault.handler
                )
        return client


def install_injector(monkeypatch) -> Injector:
    injector = Injector(clients.aws_client)
    monkeypatch.setattr(clients, "aws_client", injector)
    return injector
