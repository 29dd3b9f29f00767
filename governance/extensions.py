"""Hooks through which apps above governance add to what it shows, without being imported.

``costs`` registers a note for approval requests (the share of the unit's remaining monthly
budget an estimate would take) in its ``AppConfig.ready()``; ``incidents`` registers a panel
for decision pages (the incidents a decision contributed to).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

RequestNote = Callable[[Any], str | None]
_request_notes: list[RequestNote] = []


def register_request_note(note: RequestNote) -> None:
    if note not in _request_notes:
        _request_notes.append(note)


def request_notes(request: Any) -> list[str]:
    """Sentences other apps want an approver to read about ``request``."""
    return [text for note in _request_notes if (text := note(request))]


# --- Decisions: what other apps link to a decision ----------------------------------------------


class RelatedItem(NamedTuple):
    """One line of a decision page's "Related" section: a linked title and a sentence."""

    title: str
    url: str
    text: str
    section: str = "Related"


DecisionPanel = Callable[[Any, Any], Iterable[RelatedItem | tuple[str, str, str]]]
_decision_panels: list[DecisionPanel] = []


def register_decision_panel(panel: DecisionPanel) -> None:
    """``panel(decision, user)`` returns the records of its app that name the decision, as
    ``(title, url, text)`` or :class:`RelatedItem` (``incidents`` lists the incidents the
    decision contributed to). ``user`` is who reads the page, for apps that scope reads."""
    if panel not in _decision_panels:
        _decision_panels.append(panel)


def decision_related(decision: Any, *, user: Any = None) -> list[RelatedItem]:
    """What other apps link to ``decision``, panel by panel, in registration order."""
    items: list[RelatedItem] = []
    for panel in _decision_panels:
        for item in panel(decision, user):
            items.append(item if isinstance(item, RelatedItem) else RelatedItem(*item))
    return items
