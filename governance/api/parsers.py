"""Request bodies that the database can store: no unpaired UTF-16 surrogates, no NULs.

PostgreSQL text cannot hold a NUL character, and a lookup with one (``business_unit=R\\x00ES``)
fails deep inside the query; no field of this API means anything by it. Refusing both at the
parser answers 400 with the field's name, the same for JSON, form and multipart bodies
(uploaded files keep their bytes: only text fields are checked).
"""

from __future__ import annotations

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser


def _nul_error(where: str) -> ParseError:
    return ParseError(
        f"{where} holds a NUL character (\\u0000), which no text field can hold; remove it."
    )


def _refuse_nul(value, where: str = "The body") -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise _nul_error(where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, "A field name")
            _refuse_nul(item, f"The field {key!r}")
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(item, where)


def _refuse_nul_in_form(data) -> None:
    for key, values in data.lists():
        _refuse_nul(key, "A field name")
        for item in values:
            _refuse_nul(item, f"The field {key!r}")


class StrictJSONParser(JSONParser):
    """JSON allows ``"\\ud800"``, which is not a character, and ``"\\u0000"``: refuse both with
    a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ParseError(
                "The JSON body holds an unpaired surrogate escape (such as \\ud800), which is "
                "not a character; send the text as UTF-8."
            ) from exc
        _refuse_nul(data)
        return data


class StrictFormParser(FormParser):
    """A form body whose fields hold no NUL."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _refuse_nul_in_form(data)
        return data


class StrictMultiPartParser(MultiPartParser):
    """A multipart body whose text fields hold no NUL (files are left as they are)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _refuse_nul_in_form(parsed.data)
        return parsed
