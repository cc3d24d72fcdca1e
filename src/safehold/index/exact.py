"""Exact-match index for digests and URLs: a hash map from value to entry ids."""

from __future__ import annotations

import threading
from collections.abc import Iterable


class ExactIndex:
    """value -> entry ids, with removal by id. Safe for concurrent reads with one writer."""

    def __init__(self) -> None:
        self._by_value: dict[str, tuple[int, ...]] = {}
        self._by_id: dict[int, str] = {}
        self._lock = threading.Lock()

    def add(self, ids: Iterable[int], values: Iterable[str]) -> None:
        with self._lock:
            for entry_id, value in zip(ids, values, strict=True):
                entry_id = int(entry_id)
                if entry_id in self._by_id:
                    self._drop(entry_id)
                self._by_id[entry_id] = value
                self._by_value[value] = (*self._by_value.get(value, ()), entry_id)

    def remove(self, ids: Iterable[int]) -> int:
        removed = 0
        with self._lock:
            for entry_id in ids:
                if int(entry_id) in self._by_id:
                    self._drop(int(entry_id))
                    removed += 1
        return removed

    def _drop(self, entry_id: int) -> None:
        value = self._by_id.pop(entry_id)
        rest = tuple(i for i in self._by_value.get(value, ()) if i != entry_id)
        if rest:
            self._by_value[value] = rest
        else:
            self._by_value.pop(value, None)

    def search(self, values: Iterable[str]) -> list[tuple[int, ...]]:
        """Entry ids holding each value (empty tuple when none)."""
        get = self._by_value.get
        return [get(v, ()) for v in values]

    def __len__(self) -> int:
        return len(self._by_id)
