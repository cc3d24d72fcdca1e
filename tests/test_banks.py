"""Banks and entries on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from safehold.banks import Banks, make_entry
from safehold.errors import Conflict, InvalidValue, NotFound, UnknownLabel, UnknownSignalType
from safehold.store import Database


def pdq_values(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [bytes(r).hex() for r in rng.integers(0, 256, (n, 32), dtype=np.uint8)]


def test_create_get_list_update_delete(db: Database) -> None:
    banks = Banks(db)
    info = banks.create(
        "ncmec-hashes", description="from NCMEC", thresholds={"pdq": 20}, dihedral=True
    )
    assert (info.name, info.kind, info.thresholds, info.dihedral, info.version) == (
        "ncmec-hashes",
        "block",
        {"pdq": 20},
        True,
        1,
    )
    banks.create("fp", kind="negative")
    assert [b.name for b in banks.list()] == ["fp", "ncmec-hashes"]
    with pytest.raises(Conflict):
        banks.create("fp")
    updated = banks.update("ncmec-hashes", thresholds={"pdq": 25}, description="x")
    assert updated.thresholds == {"pdq": 25} and updated.version == 2 and updated.description == "x"
    assert updated.to_dict()["thresholds"]["vpdq"] == 80  # defaults filled in
    banks.add("fp", [make_entry("md5", "a" * 32)])
    assert banks.delete("fp") == 1
    with pytest.raises(NotFound, match="existing banks: ncmec-hashes"):
        banks.get("fp")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "../etc"}, InvalidValue),
        ({"name": ""}, InvalidValue),
        ({"name": "x" * 101}, InvalidValue),
        ({"name": "ok", "kind": "allow"}, InvalidValue),
        ({"name": "ok", "thresholds": {"pdq": 65}}, InvalidValue),
        ({"name": "ok", "thresholds": {"md5": 3}}, InvalidValue),
        ({"name": "ok", "thresholds": {"phash": 3}}, UnknownSignalType),
        ({"name": "ok", "description": "a\x00b"}, InvalidValue),
    ],
)
def test_bank_validation(db: Database, kwargs: dict, error: type[Exception]) -> None:  # type: ignore[type-arg]
    kwargs = dict(kwargs)
    name = kwargs.pop("name")
    with pytest.raises(error):
        Banks(db).create(name, **kwargs)


def test_entry_validation() -> None:
    e = make_entry("PDQ", "F" * 64, ["a1", "iwf:b"], "NCMEC", 123)  # type: ignore[arg-type]
    assert (e.signal_type, e.value, e.labels, e.source, e.external_id) == (
        "pdq",
        "f" * 64,
        ["A1", "iwf:B"],
        "ncmec",
        "123",
    )
    with pytest.raises(UnknownLabel, match="valid labels: A1"):
        make_entry("pdq", "f" * 64, ["evil"])
    with pytest.raises(InvalidValue):
        make_entry("pdq", "f" * 63)
    with pytest.raises(InvalidValue):
        make_entry("md5", "a" * 32, source="bad source!")
    with pytest.raises(InvalidValue):
        make_entry("md5", "a" * 32, external_id="x" * 300)
    assert make_entry("url", "HTTP://Example.com:80/a?utm_source=x").value == "http://example.com/a"


def test_add_is_idempotent_and_updates_changes(db: Database) -> None:
    banks = Banks(db)
    banks.create("b")
    values = pdq_values(50)
    entries = [make_entry("pdq", v, ["A1"], "ncmec", f"id{i}") for i, v in enumerate(values)]
    first = banks.add("b", entries + entries[:5])
    assert (first.added, first.updated, first.unchanged, first.duplicates) == (50, 0, 0, 5)
    assert len(first.ids) == 50
    again = banks.add("b", entries)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 50)
    assert banks.get("b").version == 2  # unchanged import does not bump the version
    changed = [
        make_entry("pdq", values[0], ["B2"], "ncmec", "id0"),
        make_entry("pdq", values[1], ["A1"], "ncmec", "new"),
    ]
    res = banks.add("b", changed)
    assert (res.added, res.updated, res.unchanged) == (0, 2, 0)
    rows = {e.value: e for e in banks.iter_entries("b")}
    assert rows[values[0]].labels == ["B2"] and rows[values[1]].external_id == "new"
    assert banks.get("b").counts == {"pdq": 50}


def test_remove_by_id_and_value(db: Database) -> None:
    banks = Banks(db)
    banks.create("b")
    banks.add("b", [make_entry("md5", c * 32) for c in "abcdef"])
    ids = {e.value[0]: e.id for e in banks.iter_entries("b")}
    removed = banks.remove("b", ids=[ids["a"], ids["b"]], values=[("md5", "f" * 32)])
    assert sorted(removed) == sorted([ids["a"], ids["b"], ids["f"]])
    assert sorted(e.value[0] for e in banks.iter_entries("b")) == ["c", "d", "e"]
    assert banks.remove("b", ids=[999999]) == []


def test_pagination_with_cursor(db: Database) -> None:
    banks = Banks(db)
    banks.create("b")
    banks.add("b", [make_entry("pdq", v) for v in pdq_values(25)])
    seen, after = [], 0
    while page := banks.entries("b", after=after, limit=10):
        seen.extend(e.id for e in page)
        after = page[-1].id
    assert len(seen) == 25 and seen == sorted(seen)


def test_entries_in_another_bank_are_separate(db: Database) -> None:
    banks = Banks(db)
    banks.create("a")
    banks.create("b")
    e = make_entry("sha256", "0" * 64, ["ncii"])
    assert banks.add("a", [e]).added == 1
    assert banks.add("b", [e]).added == 1
    assert banks.delete("a") == 1
    assert banks.get("b").counts == {"sha256": 1}


def test_long_vpdq_values_are_stored(db: Database) -> None:
    import json

    frames = [f"{v},100,{i}.000" for i, v in enumerate(pdq_values(2000))]  # a long video
    banks = Banks(db)
    banks.create("v")
    value = json.dumps(frames)
    assert banks.add("v", [make_entry("vpdq", value)]).added == 1
    assert banks.add("v", [make_entry("vpdq", value)]).unchanged == 1


@pytest.mark.slow
def test_bulk_insert_100k(db: Database) -> None:
    banks = Banks(db)
    banks.create("big")
    entries = [
        make_entry("pdq", v, ["A1"], "ncmec", str(i)) for i, v in enumerate(pdq_values(100_000, 3))
    ]
    assert banks.add("big", entries).added == 100_000
    assert sum(len(ids) for ids, _, _ in banks.signals("pdq")) == 100_000
    assert banks.add("big", entries).unchanged == 100_000
