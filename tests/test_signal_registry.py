"""The signal registry, exact digests (md5/sha256) and hex validation."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

import media_factory as mf
from safehold.errors import InvalidSignal, InvalidValue, UnknownSignalType
from safehold.hashing import hash_file, hash_image_bytes
from safehold.signals import (
    SIGNAL_TYPES,
    Md5Signal,
    PdqSignal,
    Sha256Signal,
    SignalType,
    UrlSignal,
    VpdqSignal,
    get_signal_type,
)
from safehold.signals.md5 import CHUNK, digest_stream, md5_bytes, md5_file
from safehold.signals.sha256 import sha256_bytes, sha256_file


def test_registry_lists_every_signal_type() -> None:
    assert list(SIGNAL_TYPES) == ["md5", "sha256", "pdq", "vpdq", "url"]
    assert {
        "md5": Md5Signal,
        "sha256": Sha256Signal,
        "pdq": PdqSignal,
        "vpdq": VpdqSignal,
        "url": UrlSignal,
    } == SIGNAL_TYPES
    for name, cls in SIGNAL_TYPES.items():
        assert issubclass(cls, SignalType) and cls.name == name
        assert cls.comparison in ("exact", "hamming", "vpdq")
        assert cls.content_types and cls.description
        assert 0 <= cls.default_threshold <= cls.max_threshold


@pytest.mark.parametrize("name", ["md5", "MD5", " pdq ", "vPDQ", "Url", "sha256"])
def test_get_signal_type(name: str) -> None:
    assert get_signal_type(name) is SIGNAL_TYPES[name.strip().lower()]


@pytest.mark.parametrize("bad", ["", "sha1", "photodna", "pdq2", "md5;drop table", None, 5])
def test_unknown_signal_type_lists_valid_ones(bad: object) -> None:
    with pytest.raises(UnknownSignalType) as info:
        get_signal_type(bad)  # type: ignore[arg-type]
    err = info.value
    assert isinstance(err, InvalidValue)
    assert err.code == "unknown_signal_type" and err.status == 422
    assert err.details["valid"] == ["md5", "sha256", "pdq", "vpdq", "url"]
    assert "valid types: md5, sha256, pdq, vpdq, url" in err.message


def test_exact_thresholds() -> None:
    for cls in (Md5Signal, Sha256Signal, UrlSignal):
        assert cls.comparison == "exact"
        assert cls.check_threshold(0) == 0
        with pytest.raises(InvalidSignal, match="out of range"):
            cls.check_threshold(1)


# --------------------------------------------------------------------------- hex validation

MD5_OF_EMPTY = "d41d8cd98f00b204e9800998ecf8427e"
SHA256_OF_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("cls", "good"),
    [(Md5Signal, MD5_OF_EMPTY), (Sha256Signal, SHA256_OF_EMPTY), (PdqSignal, "ab" * 32)],
)
def test_hex_validation(cls: type[SignalType], good: str) -> None:
    assert cls.normalize(good) == good
    assert cls.normalize(f"  {good.upper()}\t\n") == good
    assert cls.distance(good, good.upper()) == 0
    assert cls.matches(good, good.upper())
    bad_values = [
        "",
        good[:-1],
        good + "0",
        good[:-1] + "g",
        good[:-1] + "-",
        "0x" + good[2:],
        good[:10] + " " + good[11:],
        good[:-1] + "\u0660",  # Arabic-Indic digit zero: a digit, not hex
        good[:-1] + "ａ",  # fullwidth a
        "z" * 100_000,
        None,
        int(good, 16),
        good.encode(),
    ]
    for bad in bad_values:
        with pytest.raises(InvalidSignal) as info:
            cls.normalize(bad)  # type: ignore[arg-type]
        assert info.value.code == "invalid_signal"
        assert len(info.value.message) < 200  # previews, never the whole value


def test_exact_distance() -> None:
    other = "0" * 32
    assert Md5Signal.distance(MD5_OF_EMPTY, other) == 1
    assert not Md5Signal.matches(MD5_OF_EMPTY, other)
    with pytest.raises(InvalidSignal):
        Md5Signal.distance(MD5_OF_EMPTY, "nope")


# --------------------------------------------------------------------------- streaming digests


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few MB, not a multiple of the 1 MiB read size."""
    data = np.random.default_rng(3).integers(0, 256, size=5 * CHUNK + 12345, dtype=np.uint8)
    path = tmp_path_factory.mktemp("digests") / "big.bin"
    path.write_bytes(data.tobytes())
    return path


def test_streaming_digests_equal_hashlib(big_file: Path) -> None:
    data = big_file.read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    sha = hashlib.sha256(data).hexdigest()
    assert md5_file(big_file) == md5_bytes(data) == md5
    assert sha256_file(big_file) == sha256_bytes(data) == sha
    with open(big_file, "rb") as f:
        assert digest_stream(f, ("md5", "sha256", "sha1")) == {
            "md5": md5,
            "sha256": sha,
            "sha1": hashlib.sha1(data).hexdigest(),
        }


def test_streaming_reads_in_chunks(big_file: Path) -> None:
    class CountingReader(io.BytesIO):
        sizes: list[int]

        def read(self, size: int | None = -1) -> bytes:
            self.sizes.append(-1 if size is None else size)
            return super().read(size)

    reader = CountingReader(big_file.read_bytes())
    reader.sizes = []
    digest_stream(reader, ("md5",))
    assert set(reader.sizes) == {CHUNK}  # never the whole stream at once
    assert len(reader.sizes) == 7  # 5 full chunks, 1 partial, 1 empty read


def test_empty_stream_digests() -> None:
    assert digest_stream(io.BytesIO(b""), ("md5", "sha256")) == {
        "md5": MD5_OF_EMPTY,
        "sha256": SHA256_OF_EMPTY,
    }


def test_hash_file_digests_are_of_the_exact_bytes(tmp_path: Path) -> None:
    data = mf.encode_image(mf.photo_like(64, 48, seed=2), "png")
    path = tmp_path / "p.png"
    path.write_bytes(data)
    result = hash_file(path)
    assert result.md5 == hashlib.md5(data).hexdigest() == Md5Signal.normalize(result.md5)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert hash_image_bytes(data).md5 == result.md5
    signals = result.signals()
    assert signals["md5"] == [result.md5] and signals["sha256"] == [result.sha256]
    assert signals["pdq"] == [result.pdq]
    assert result.to_json() == {
        "md5": result.md5,
        "sha256": result.sha256,
        "pdq": result.pdq,
        "pdq_quality": result.pdq_quality,
    }
