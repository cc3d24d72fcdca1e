"""Small adapters between library results and the templates."""

from __future__ import annotations

from typing import Any

STATES = ("new", "in_review", "decided", "actioned", "referred", "closed")
OPEN_STATES = ("new", "in_review")
ACTIONS = (
    ("no_violation", "No violation", "Close the case: nothing to act on"),
    ("remove", "Remove", "Remove the content"),
    ("restrict", "Restrict", "Restrict the content or account"),
    ("refer", "Refer", "Refer to an authority (needs a second reviewer)"),
    ("escalate", "Escalate", "Send to the escalations queue with higher priority"),
)


def field(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def page_items(result: Any) -> list[Any]:
    """The cases of a :meth:`Cases.list_cases` page (or a plain list)."""
    if isinstance(result, list | tuple):
        return list(result)
    for name in ("items", "cases", "rows"):
        found = field(result, name)
        if found is not None:
            return list(found)
    return []


def page_next(result: Any) -> str | None:
    for name in ("next_cursor", "cursor", "next"):
        found = field(result, name)
        if found:
            return str(found)
    return None
