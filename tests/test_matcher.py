"""Matching: thresholds, dihedral variants, negative banks, vPDQ, live updates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from safehold.banks import Banks, Matcher, make_entry
from safehold.hashing import ContentHashes
from safehold.store import Database


def flip(value: str, bits: int) -> str:
    n = int(value, 16) ^ ((1 << bits) - 1)
    return f"{n:064x}"


def hashes(pdq: str, md5: str = "0" * 32, dihedral: list[str] | None = None) -> ContentHashes:
    return ContentHashes(
        "image", "jpeg", 1, md5, "0" * 64, pdq=pdq, pdq_quality=100, pdq_dihedral=dihedral
    )


@pytest.fixture()
def banks(db: Database) -> Banks:
    return Banks(db)


BASE = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def test_threshold_per_bank(db: Database, banks: Banks) -> None:
    banks.create("strict", thresholds={"pdq": 10})
    banks.create("loose")
    banks.add("strict", [make_entry("pdq", BASE, ["A1"], "ncmec", "n1")])
    banks.add("loose", [make_entry("pdq", BASE, ["B2"], "local")])
    m = Matcher(db)
    near, far = flip(BASE, 8), flip(BASE, 20)
    res = m.lookup("pdq", [near, far, flip(BASE, 40)])
    assert [(x.bank, x.distance) for x in res[0].matches] == [("loose", 8), ("strict", 8)]
    assert [(x.bank, x.distance) for x in res[1].matches] == [("loose", 20)]
    assert res[2].matches == []
    match = res[0].matches[1].to_dict()
    assert match == {
        "bank": "strict",
        "entry_id": match["entry_id"],
        "external_id": "n1",
        "labels": ["A1"],
        "source": "ncmec",
        "distance": 8,
        "signal_type": "pdq",
    }
    only = m.lookup("pdq", [near], banks=["strict"])[0]
    assert [x.bank for x in only.matches] == ["strict"]


def test_exact_and_url(db: Database, banks: Banks) -> None:
    banks.create("b")
    banks.add(
        "b",
        [
            make_entry("md5", "a" * 32, ["ncii"]),
            make_entry("url", "https://Example.com/x?utm_source=1#f"),
        ],
    )
    m = Matcher(db)
    assert len(m.lookup("md5", ["A" * 32])[0].matches) == 1
    assert m.lookup("md5", ["b" * 32])[0].matches == []
    assert len(m.lookup("url", ["https://example.com:443/x"])[0].matches) == 1


def test_dihedral_only_for_banks_that_enable_it(db: Database, banks: Banks) -> None:
    rotated = "30a10efd71cc3d429013d48d0ffffc52e34e0e17ada952a9d29685211ea9e5af"
    banks.create("plain")
    banks.create("turns", dihedral=True)
    for name in ("plain", "turns"):
        banks.add(name, [make_entry("pdq", rotated)])
    m = Matcher(db)
    # the 8 variants of the upright picture: variant 1 (rotate90) is the rotated file's hash
    variants = [BASE, rotated] + [flip(BASE, 100 + i) for i in range(6)]
    res = m.match_content(hashes(BASE, dihedral=variants))
    assert [(x.bank, x.variant) for x in res.matches] == [("turns", "rotate90")]


def test_negative_bank_suppresses_same_signal_type(db: Database, banks: Banks) -> None:
    banks.create("block")
    banks.create("benign", kind="negative")
    banks.add("block", [make_entry("pdq", BASE, ["A1"]), make_entry("md5", "c" * 32, ["A1"])])
    m = Matcher(db)
    assert len(m.match_content(hashes(flip(BASE, 5), md5="c" * 32)).matches) == 2
    banks.add("benign", [make_entry("pdq", flip(BASE, 3), ["benign"])])
    m = Matcher(db)
    res = m.match_content(hashes(flip(BASE, 5), md5="c" * 32))
    assert [x.signal_type for x in res.matches] == ["md5"]  # an exact copy is still caught
    assert [x.signal_type for x in res.suppressed] == ["pdq"]
    assert [x.bank for x in res.negative] == ["benign"]
    body = res.to_dict()
    assert body["suppressed_by"][0]["bank_kind"] == "negative"


def test_live_add_and_remove(db: Database, banks: Banks) -> None:
    banks.create("b")
    m = Matcher(db)
    assert m.lookup("pdq", [BASE])[0].matches == []
    added = banks.add("b", [make_entry("pdq", BASE)])
    m.add("b", [(added.ids[0], "pdq", BASE)])
    assert len(m.lookup("pdq", [BASE])[0].matches) == 1
    banks.remove("b", ids=added.ids)
    m.remove(added.ids)
    assert m.lookup("pdq", [BASE])[0].matches == []


def test_vpdq_video_match(db: Database, banks: Banks) -> None:
    rng = np.random.default_rng(3)
    frames = [bytes(r).hex() for r in rng.integers(0, 256, (20, 32), dtype=np.uint8)]
    video = json.dumps([f"{f},100,{i}.000" for i, f in enumerate(frames)])
    other = json.dumps([f"{f},100,{i}.000" for i, f in enumerate(frames[:8])])  # 40% of the frames
    banks.create("v")
    banks.add("v", [make_entry("vpdq", video, ["A2"])])
    m = Matcher(db)
    same = json.dumps([f"{flip(f, 6)},90,{i}.000" for i, f in enumerate(frames)])
    hit = m.lookup("vpdq", [same])[0].matches
    assert len(hit) == 1 and hit[0].to_dict()["query_match_pct"] == 100.0
    assert m.lookup("vpdq", [other])[0].matches == []  # query matches, but only 40% of the target


def test_unknown_bank_is_reported(db: Database) -> None:
    from safehold.errors import NotFound

    with pytest.raises(NotFound):
        Matcher(db, banks=["nope"])


def test_bank_filter_keeps_negative_banks(db: Database, banks: Banks) -> None:
    banks.create("block")
    banks.create("other")
    banks.create("benign", kind="negative")
    banks.add("block", [make_entry("pdq", BASE, ["A1"])])
    banks.add("other", [make_entry("pdq", BASE, ["B1"])])
    banks.add("benign", [make_entry("pdq", BASE, ["benign"])])
    m = Matcher(db, banks=["block"])  # a filter chooses block banks only
    res = m.match_content(hashes(BASE))
    assert res.matches == [] and [x.bank for x in res.suppressed] == ["block"]
    assert m.lookup("pdq", [BASE], banks=["block"])[0].negative[0].bank == "benign"


def test_low_quality_pictures_are_not_matched_by_pdq(db: Database, banks: Banks) -> None:
    banks.create("b")
    banks.add("b", [make_entry("pdq", BASE), make_entry("md5", "d" * 32)])
    m = Matcher(db)
    flat = ContentHashes("image", "png", 1, "d" * 32, "0" * 64, pdq=BASE, pdq_quality=10)
    res = m.match_content(flat)
    assert [x.signal_type for x in res.matches] == ["md5"]
    assert "quality 10" in res.to_dict()["notes"][0]


def test_vpdq_lookup_reports_each_value_separately(db: Database, banks: Banks) -> None:
    rng = np.random.default_rng(4)
    frames = [bytes(r).hex() for r in rng.integers(0, 256, (10, 32), dtype=np.uint8)]
    banks.create("v")
    banks.add(
        "v", [make_entry("vpdq", json.dumps([f"{f},100,{i}.000" for i, f in enumerate(frames)]))]
    )
    full = json.dumps([f"{f},100,{i}.000" for i, f in enumerate(frames)])
    extra = [bytes(r).hex() for r in rng.integers(0, 256, (2, 32), dtype=np.uint8)]
    most = json.dumps([f"{f},100,{i}.000" for i, f in enumerate(frames + extra)])
    a, b = Matcher(db).lookup("vpdq", [full, most])
    assert a.matches[0].distance == 0 and a.matches[0].details["query_match_pct"] == 100.0
    assert b.matches[0].details["query_match_pct"] == round(1000 / 12, 2)


def test_matcher_add_picks_up_a_new_bank(db: Database, banks: Banks) -> None:
    m = Matcher(db)
    banks.create("late")
    added = banks.add("late", [make_entry("md5", "e" * 32)])
    m.add("late", [(added.ids[0], "md5", "e" * 32)])
    assert [x.bank for x in m.lookup("md5", ["e" * 32])[0].matches] == ["late"]


def test_limits_from_environment_apply(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from safehold.errors import TooManyPixels
    from safehold.hashing import hash_file

    path = tmp_path / "p.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path)
    monkeypatch.setenv("SAFEHOLD_MAX_PIXELS", "1000")
    with pytest.raises(TooManyPixels, match="limit is 1000"):
        hash_file(path)
