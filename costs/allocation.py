"""Which business unit a set of tags belongs to. Pure: plain data in, plain data out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Prefixes that providers put in front of the key a user typed.
_KEY_PREFIXES = ("resourcetags/", "resource_tags/", "user:", "tag:", "label:")


def normalise_key(key: str) -> str:
    """``resourceTags/user:Team `` and ``team`` are the same key to a rule."""
    value = key.strip().lower()
    for prefix in _KEY_PREFIXES:
        if value.startswith(prefix):
            value = value[len(prefix) :].strip()
    return value


def normalise_value(value: str) -> str:
    return value.strip().lower()


@dataclass(frozen=True)
class Rule:
    """A compiled allocation rule: normalised key, normalised values (empty = any)."""

    id: int
    business_unit_id: int
    key: str
    values: frozenset[str]
    priority: int

    @classmethod
    def build(
        cls, *, id: int, business_unit_id: int, key: str, values: Iterable[str], priority: int
    ) -> Rule:
        return cls(
            id=id,
            business_unit_id=business_unit_id,
            key=normalise_key(key),
            values=frozenset(normalise_value(v) for v in values),
            priority=priority,
        )


def normalise_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Normalised key -> normalised value; for keys that collide, the first non-empty wins."""
    out: dict[str, str] = {}
    for key, value in tags.items():
        norm = normalise_key(key)
        if norm and (norm not in out or not out[norm]):
            out[norm] = normalise_value(value)
    return out


def allocate(tags: Mapping[str, str], rules: Iterable[Rule]) -> Rule | None:
    """The first rule, by priority then id, whose key and value the tags carry."""
    normalised = normalise_tags(tags)
    for rule in sorted(rules, key=lambda r: (r.priority, r.id)):
        value = normalised.get(rule.key)
        if value is None:
            continue
        if not rule.values or value in rule.values:
            return rule
    return None
