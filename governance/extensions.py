"""Hooks through which apps above governance add to what it shows, without being imported.

``costs`` registers a note for approval requests (the share of the unit's remaining monthly
budget an estimate would take) in its ``AppConfig.ready()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RequestNote = Callable[[Any], str | None]
_request_notes: list[RequestNote] = []


def register_request_note(note: RequestNote) -> None:
    if note not in _request_notes:
        _request_notes.append(note)


def request_notes(request: Any) -> list[str]:
    """Sentences other apps want an approver to read about ``request``."""
    return [text for note in _request_notes if (text := note(request))]
