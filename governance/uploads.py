"""Uploaded files: a size limit and a type check for every door that takes a file.

Each kind of upload names the file extensions it takes and what each must hold, read from
the first bytes (Parquet starts ``PAR1``, gzip ``1f 8b``, text is UTF-8 without NUL bytes),
so a renamed spreadsheet, PDF or program is refused before anything is stored or parsed.
A refusal says what was wrong with which file and how to fix it: 413 for size, 400 for type.

``RequestSizeLimitMiddleware`` refuses a request whose declared body is over the largest
limit before anything reads it (Django would otherwise stream it all to a temporary file).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import PurePath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse, JsonResponse

from governance.exceptions import DomainError
from governance.throttle import limited_response

MIB = 1024 * 1024
# Enough to tell every format apart, and to see whether text is UTF-8.
HEAD_BYTES = 8192
# Form fields and multipart boundaries around the file itself.
MULTIPART_MARGIN = MIB

TEXT, GZIP, PARQUET = "text", "gzip", "parquet"
_EXPECTED = {TEXT: "UTF-8 text", GZIP: "gzip-compressed data", PARQUET: "Parquet data"}
# What a refused file most likely is, by its first bytes: named so the person knows what
# they picked by mistake.
_SIGNATURES = (
    (b"PAR1", PARQUET),
    (b"\x1f\x8b", GZIP),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one too)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\xd0\xcf\x11\xe0", "an old Excel or Word file (.xls/.doc)"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a Linux program"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"BZh", "a bzip2-compressed file"),
    (b"\xfd7zXZ", "an xz-compressed file"),
    (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
)


@dataclass(frozen=True)
class UploadKind:
    """One door's accepted files: extension -> what the content must be."""

    label: str  # "billing export"
    extensions: dict[str, str]
    described: str  # "CSV, .csv.gz, Parquet or JSON lines"
    fix: str  # what to do instead, one sentence
    too_large: str  # what to do with a file over the limit, one sentence


class UploadRejectedError(DomainError):
    """A file refused for its size (413) or type (400); nothing of it was kept."""

    def __init__(self, message: str, *, status: int, field: str = "file") -> None:
        super().__init__(message)
        self.http_status = status
        self.field = field

    def payload(self) -> dict:
        return {"detail": self.message, "field": self.field}


def sniff(head: bytes) -> str:
    """What the first bytes of a file are: ``text``, ``gzip``, ``parquet`` or a description."""
    for magic, found in _SIGNATURES:
        if head.startswith(magic):
            return found
    if b"\x00" in head:
        return "binary data"
    try:
        # Incremental: a character cut in two at the end of the head is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        return f"text that is not UTF-8 (byte 0x{head[exc.start]:02x} at offset {exc.start})"
    return TEXT


def size_text(size: int) -> str:
    return f"{size / MIB:.1f} MB" if size >= MIB // 10 else f"{size:,} bytes"


def extension_of(name: str, kind: UploadKind) -> str | None:
    """The longest of the kind's extensions that the name ends with (any case)."""
    lower = name.lower()
    matches = [ext for ext in kind.extensions if lower.endswith(ext)]
    return max(matches, key=len) if matches else None


def upload_problem(
    *, name: str, size: int, head: bytes, kind: UploadKind, max_bytes: int
) -> tuple[int, str] | None:
    """Why a file may not come in, as (HTTP status, message); None when it may."""
    if size > max_bytes:
        shown, limit = size_text(size), size_text(max_bytes)
        if shown == limit:  # just over: rounding would make them look alike
            shown, limit = f"{size:,} bytes", f"{max_bytes:,} bytes"
        return 413, (
            f"{name} is {shown}, larger than the {limit} limit for a {kind.label}. {kind.too_large}"
        )
    extension = extension_of(name, kind)
    if extension is None:
        suffix = "".join(PurePath(name).suffixes[-2:]) or "no extension"
        return 400, (
            f"{name} ({suffix}) is not a file Capgov takes as a {kind.label}: it takes "
            f"{kind.described}. {kind.fix}"
        )
    expected, found = kind.extensions[extension], sniff(head)
    if found != expected:
        return 400, (
            f"{name} is named {extension} but holds {_EXPECTED.get(found, found)}, not "
            f"{_EXPECTED[expected]}. {kind.fix}"
        )
    return None


def upload_check(*, upload: UploadedFile, kind: UploadKind, max_bytes: int) -> None:
    """Refuse the file with ``UploadRejectedError`` unless its size and type fit the kind."""
    name = PurePath(upload.name or "upload").name
    head = upload.read(HEAD_BYTES)
    upload.seek(0)
    problem = upload_problem(
        name=name, size=upload.size or 0, head=head, kind=kind, max_bytes=max_bytes
    )
    if problem:
        status, message = problem
        raise UploadRejectedError(message, status=status)


def request_limit(request: HttpRequest) -> int:
    """The largest body a request may declare: files up to the billing limit, else the
    form/JSON limit (``DATA_UPLOAD_MAX_MEMORY_SIZE``)."""
    if request.content_type == "multipart/form-data":
        return settings.CAPGOV_MAX_UPLOAD_MB * MIB + MULTIPART_MARGIN
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class RequestSizeLimitMiddleware:
    """413 for a request whose Content-Length is over its limit, before the body is read."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = request_limit(request)
        if length <= limit:
            return self.get_response(request)
        message = (
            f"The request body is {size_text(length)}, over the {size_text(limit)} Capgov "
            "accepts in one request. Split the data, or import a billing file this large on "
            "the server with `manage.py import_billing`."
        )
        if request.path_info.startswith("/api/"):
            return JsonResponse({"detail": message}, status=413)
        return limited_response(
            request, title="Upload too large", message=message, retry_after=None, status=413
        )
