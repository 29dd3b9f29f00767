"""JSON bodies that the database can store: no unpaired UTF-16 surrogates."""

from __future__ import annotations

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONParser(JSONParser):
    """JSON allows ``"\\ud800"``, which is not a character: refuse it with a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ParseError(
                "The JSON body holds an unpaired surrogate escape (such as \\ud800), which is "
                "not a character; send the text as UTF-8."
            ) from exc
        return data
