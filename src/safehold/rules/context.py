"""What the rules see about one piece of content: the input of :func:`evaluate`.

A :class:`Context` is also what an ``events`` row keeps (``to_json``), so that a new
rule set can be replayed against recent traffic (:mod:`safehold.rules.replay`). It holds
facts, never media: ``signals`` carries only ``md5``, ``sha256``, ``pdq`` and
``pdq_quality`` (a video's per-frame vPDQ list is too big to keep per event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SIGNAL_KEYS = ("md5", "sha256", "pdq", "pdq_quality")


@dataclass
class Context:
    tenant: str = "default"
    content_id: str | None = None
    account_id: str | None = None
    matches: list[dict[str, Any]] = field(default_factory=list)
    """Match dicts as :meth:`safehold.banks.matcher.Match.to_dict` makes them."""
    classifications: dict[str, float] = field(default_factory=dict)
    """Classifier name -> score in [0, 1] (later issues add classifiers)."""
    reports: int = 0
    """How many reports (from users or partners) name this content."""
    account: dict[str, Any] = field(default_factory=dict)
    """Account signals: the caller's plus ``prior_events``, ``prior_matches``, ``prior_cases``."""
    media: dict[str, Any] = field(default_factory=dict)
    """``kind`` (image/video), ``format``, ``bytes``, ``width``, ``height``."""
    signals: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signals = {k: v for k, v in self.signals.items() if k in SIGNAL_KEYS}

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "content_id": self.content_id,
            "account_id": self.account_id,
            "matches": [dict(m) for m in self.matches],
            "classifications": dict(self.classifications),
            "reports": self.reports,
            "account": dict(self.account),
            "media": dict(self.media),
            "signals": dict(self.signals),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Context:
        """The context of a stored event; tolerant of missing or mistyped fields."""
        d = d if isinstance(d, dict) else {}

        def _dict(key: str) -> dict[str, Any]:
            value = d.get(key)
            return dict(value) if isinstance(value, dict) else {}

        def _opt_str(key: str) -> str | None:
            value = d.get(key)
            return str(value) if value is not None else None

        reports = d.get("reports", 0)
        matches = d.get("matches")
        return cls(
            tenant=str(d.get("tenant") or "default"),
            content_id=_opt_str("content_id"),
            account_id=_opt_str("account_id"),
            matches=[dict(m) for m in matches if isinstance(m, dict)]
            if isinstance(matches, list)
            else [],
            classifications={
                str(k): float(v)
                for k, v in _dict("classifications").items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            },
            reports=reports if isinstance(reports, int) and not isinstance(reports, bool) else 0,
            account=_dict("account"),
            media=_dict("media"),
            signals=_dict("signals"),
        )
