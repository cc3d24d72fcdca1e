"""PDQ: equality with the reference, the fast C++-core path, colour modes, EXIF,
dihedral hashes and the fast hashing mode."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import media_factory as mf
from conftest import VECTORS
from safehold.errors import InvalidSignal
from safehold.hashing import hash_file, hash_image_bytes
from safehold.media import open_image, rgb_array
from safehold.signals import _pdqcore
from safehold.signals.pdq import (
    DEFAULT_THRESHOLD,
    DIHEDRAL_NAMES,
    PdqSignal,
    dihedral_from_rgb,
    hamming,
    pack,
    pdq_from_image,
    pdq_from_rgb,
)

PDQ_DIR = VECTORS / "pdq"
NO_VECTORS = f"reference vectors not found at {PDQ_DIR} (see /work/shared/vectors/README.md)"

LOSSY_BITS = 10
"""How far a lossy re-encode (JPEG/WebP/HEIC/AVIF at quality 95) of a synthetic photo
may move its PDQ. Measured: 0-2 bits. PDQ's match threshold is 31 bits and
re-encoding a photo at high quality typically moves a handful of bits; 10 leaves room
for other encoder versions while any real bug (a channel swap, an inverted or turned
picture) moves ~100 bits or more."""

QUANTIZATION_BITS = 16
"""How far the picture may move when *stored* in fewer colours (256-colour palette,
greyscale) compared with the RGB original. Measured: 12 bits for the palette, 2 for
grey. The pixels really differ, so exact equality is checked against the stored
picture (``ImageVariant.upright``) instead."""

PYTX_WRONG_BITS = 31
"""python-threatexchange's result counts as wrong when it is farther than PDQ's match
threshold from the right hash: it would not match."""


def _manifest() -> list[dict[str, Any]]:
    path = PDQ_DIR / "manifest.json"
    if not path.exists():
        return []
    items: list[dict[str, Any]] = json.loads(path.read_text())
    return items


def _vector_params() -> list[Any]:
    items = _manifest()
    if not items:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_VECTORS), id="no-vectors")]
    return [pytest.param(item, id=item["file"]) for item in items]


def _bits(hex_value: str) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(hex_value), dtype=np.uint8))


def _hex(bits: np.ndarray) -> str:
    return bytes(np.packbits(np.asarray(bits, dtype=np.uint8))).hex()


# --------------------------------------------------------------------------- (1) reference vectors


@pytest.mark.parametrize("item", _vector_params())
def test_reference_vectors(item: dict[str, Any], record_property: Any) -> None:
    path = PDQ_DIR / item["file"]
    result = hash_file(path)
    assert result.pdq is not None
    assert result.pdq == item["pdq"]
    assert result.pdq_quality == item["quality"]
    same = hash_image_bytes(path.read_bytes())
    assert (same.pdq, same.pdq_quality) == (item["pdq"], item["quality"])
    if "pdq_cpp" in item:
        # The reference C++ tool decodes JPEG with its own decoder: a few bits away.
        # Reported, not required to be equal (see the vectors' README).
        d = hamming(result.pdq, item["pdq_cpp"])
        record_property("distance_to_pdq_cpp", d)
        print(f"{item['file']}: {d} bits from the reference C++ tool")
        assert d <= 10


# --------------------------------------------------------------------------- (2) C++-core path


def _random_arrays() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(2024)
    shapes = [
        (1, 1), (1, 2), (2, 1), (2, 2), (3, 4), (4, 3), (4, 4), (1, 7), (7, 1),
        (5, 5), (6, 9), (17, 1), (1, 64), (31, 33), (63, 65), (64, 64), (65, 63),
        (100, 3), (3, 100), (127, 128), (128, 127), (255, 257), (300, 7), (333, 500),
        (1000, 3), (513, 1025),
    ]  # fmt: skip
    out: list[tuple[str, np.ndarray]] = []
    for h, w in shapes:
        out.append((f"noise-{h}x{w}", rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)))
        yy, xx = np.mgrid[0:h, 0:w]
        grad = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], 2)
        out.append((f"gradient-{h}x{w}", grad.astype(np.uint8)))
    for seed, (w, h) in enumerate([(320, 240), (241, 199), (64, 48), (16, 12), (999, 17)]):
        out.append((f"photo-{w}x{h}", np.asarray(mf.photo_like(w, h, seed=seed))))
    out.append(("flat", np.full((80, 60, 3), 128, dtype=np.uint8)))
    out.append(("black", np.zeros((50, 50, 3), dtype=np.uint8)))
    out.append(("white", np.full((50, 50, 3), 255, dtype=np.uint8)))
    return out


RANDOM_ARRAYS = _random_arrays()


def _reference(rgb: np.ndarray) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    return _hex(bits), int(quality)


def _reference_dihedral(rgb: np.ndarray) -> tuple[list[str], int]:
    bits_list, quality = pdqhash.compute_dihedral(np.ascontiguousarray(rgb))
    return [_hex(b) for b in bits_list], int(quality)


def test_native_core_is_in_use() -> None:
    # If this fails, pdqhash's build changed and everything runs (correctly) on the
    # slow fallback; the equality tests below still hold.
    assert _pdqcore.NATIVE


@pytest.mark.parametrize(("name", "rgb"), RANDOM_ARRAYS, ids=[n for n, _ in RANDOM_ARRAYS])
def test_core_equals_pdqhash_bit_for_bit(name: str, rgb: np.ndarray) -> None:
    assert _pdqcore.hash_rgb(rgb) == _reference(rgb)
    assert _pdqcore.dihedral_rgb(rgb) == _reference_dihedral(rgb)
    # The pure-pdqhash fallback gives the same values too.
    assert _pdqcore._fallback(rgb) == _reference(rgb)
    assert _pdqcore._fallback_dihedral(rgb) == _reference_dihedral(rgb)


def test_core_accepts_non_contiguous_views() -> None:
    base = np.asarray(mf.photo_like(300, 200, seed=9))
    for view in (base[::2, ::3], base[:, ::-1], base.transpose(1, 0, 2), base[10:-7, 5:-3]):
        assert not view.flags.c_contiguous or view.base is not None
        assert _pdqcore.hash_rgb(view) == _reference(view)
        assert _pdqcore.dihedral_rgb(view) == _reference_dihedral(view)


def test_luma_matches_pdqhash_coefficients() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, size=(130, 70, 3), dtype=np.uint8)
    expected = rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114
    np.testing.assert_array_equal(_pdqcore.luma(rgb), expected.astype(np.float32))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 70), st.integers(1, 70), st.just(3)),
        elements=st.integers(0, 255),
    )
)
def test_core_equals_pdqhash_on_generated_arrays(rgb: np.ndarray) -> None:
    assert _pdqcore.hash_rgb(rgb) == _reference(rgb)
    assert _pdqcore.dihedral_rgb(rgb) == _reference_dihedral(rgb)


# --------------------------------------------------------------------------- (3) modes and EXIF


@cache
def original() -> Image.Image:
    return mf.photo_like(256, 192, seed=21)


@cache
def variants() -> dict[str, mf.ImageVariant]:
    out = {v.name: v for v in mf.mode_variants(original())}
    for fmt in ("png", "jpeg", "webp", "tiff", "heic", "avif"):
        out.update({v.name: v for v in mf.orientation_variants(original(), fmt)})
    return out


VARIANT_NAMES = sorted(variants())


def _write(tmp_path: Path, v: mf.ImageVariant) -> Path:
    path = tmp_path / f"{v.name}{v.suffix}"
    path.write_bytes(v.data)
    return path


def test_factory_orientation_round_trip() -> None:
    """The factory stores pixels so that applying the EXIF orientation gives the original."""
    from PIL import ImageOps

    for o in mf.ORIENTATIONS:
        stored = mf.stored_pixels(original(), o)
        if o >= 5:
            assert stored.size == original().size[::-1]
        stored.getexif()[0x0112] = o
        upright = ImageOps.exif_transpose(stored)
        assert upright is not None
        assert np.array_equal(np.asarray(upright), np.asarray(original())), o


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_variant_hashes_as_the_upright_picture(tmp_path: Path, name: str) -> None:
    v = variants()[name]
    result = hash_file(_write(tmp_path, v))
    assert result.format == v.fmt
    assert (result.width, result.height) == original().size
    expected = pdq_from_image(v.upright)
    if v.lossless:
        # Same pixels, so the same hash: check the pixels themselves too.
        decoded = rgb_array(open_image(v.data))
        np.testing.assert_array_equal(decoded, np.asarray(v.upright))
        assert (result.pdq, result.pdq_quality) == expected
    else:
        assert result.pdq is not None
        assert hamming(result.pdq, expected.value) <= LOSSY_BITS
    # Whatever the mode, it is still the original picture.
    assert result.pdq is not None
    assert hamming(result.pdq, pdq_from_image(original()).value) <= QUANTIZATION_BITS


def _pytx_hash(path: Path) -> str | None:
    """python-threatexchange's PDQ of a file, or None when it fails on it."""
    from threatexchange.signal_type.pdq.signal import PdqSignal as PytxPdq

    try:
        value = PytxPdq.hash_from_file(path)
    except Exception:
        return None
    if not isinstance(value, str) or len(value) != 64:
        return None  # e.g. 16-bit grey: it returns an empty string
    return value


# Where python-threatexchange hashes the raw stored pixels: CMYK channels as if RGB,
# palette indices as if grey levels, sideways/mirrored pictures, 16-bit grey.
PYTX_WRONG = sorted(
    [n for n in VARIANT_NAMES if n.startswith(("cmyk-", "p-", "i16-"))]
    + [f"exif{o}-{fmt}" for o in mf.ORIENTATIONS for fmt in ("jpeg", "png", "webp", "avif")]
)


@pytest.mark.parametrize("name", PYTX_WRONG)
def test_we_get_right_what_python_threatexchange_gets_wrong(tmp_path: Path, name: str) -> None:
    v = variants()[name]
    path = _write(tmp_path, v)
    right = pdq_from_image(v.upright).value
    ours = hash_file(path).pdq
    assert ours is not None and hamming(ours, right) <= LOSSY_BITS
    theirs = _pytx_hash(path)
    assert theirs is None or hamming(theirs, right) > PYTX_WRONG_BITS, (
        f"python-threatexchange now hashes {name} right; update this test"
    )


@pytest.mark.parametrize("name", ["rgb-png", "rgb-jpeg", "la-png", "l-png", "rgba-png"])
def test_python_threatexchange_agrees_on_plain_pictures(tmp_path: Path, name: str) -> None:
    """Sanity check of the comparison above: on plain RGB/grey files both agree."""
    v = variants()[name]
    path = _write(tmp_path, v)
    theirs = _pytx_hash(path)
    assert theirs is not None and theirs == hash_file(path).pdq


# --------------------------------------------------------------------------- (4) dihedral


def test_dihedral_names() -> None:
    assert DIHEDRAL_NAMES == (
        "original",
        "rotate90",
        "rotate180",
        "rotate270",
        "flipx",
        "flipy",
        "flip_plus1",
        "flip_minus1",
    )


@pytest.mark.skipif(not (PDQ_DIR / "manifest.json").exists(), reason=NO_VECTORS)
def test_dihedral_hashes_match_the_rotated_reference_files() -> None:
    bridges = [item for item in _manifest() if item["file"].startswith("bridge-")]
    bridges.sort(key=lambda item: item["file"])
    assert len(bridges) == 8
    # The reference files are named in DIHEDRAL_NAMES order: bridge-2-rotate-90.jpg ...
    for name, item in zip(DIHEDRAL_NAMES, bridges, strict=True):
        stem = item["file"].split("-", 2)[2].removesuffix(".jpg")
        assert stem.replace("-", "") == name.replace("_", "")
    result = hash_file(PDQ_DIR / "bridge-1-original.jpg", dihedral=True)
    assert result.pdq_dihedral is not None and len(result.pdq_dihedral) == 8
    assert result.pdq == result.pdq_dihedral[0] == bridges[0]["pdq"]
    assert result.signals()["pdq"] == result.pdq_dihedral
    # Each rotated/flipped file is its own JPEG encode, so a few bits away (measured <= 8).
    distances = [
        hamming(h, item["pdq"]) for h, item in zip(result.pdq_dihedral, bridges, strict=True)
    ]
    assert max(distances) <= 10, distances
    # ... and each is far from the other seven.
    for i, h in enumerate(result.pdq_dihedral):
        others = [hamming(h, item["pdq"]) for j, item in enumerate(bridges) if j != i]
        assert min(others) > 2 * DEFAULT_THRESHOLD


def test_dihedral_transforms_are_what_the_names_say() -> None:
    # On a 64x64 picture PDQ's downsampling is the identity, so each dihedral hash
    # equals the hash of the transformed pixels exactly.
    a = np.asarray(mf.photo_like(64, 64, seed=3))
    transforms = [
        a,
        np.rot90(a, 1),  # rotate90: a quarter turn anticlockwise
        np.rot90(a, 2),
        np.rot90(a, 3),
        a[::-1],  # flipx: mirrored about the horizontal (x) axis
        a[:, ::-1],  # flipy: mirrored about the vertical (y) axis
        a.transpose(1, 0, 2),  # flip_plus1: about the main diagonal
        np.rot90(a, 2).transpose(1, 0, 2),  # flip_minus1: about the anti-diagonal
    ]
    hashes, quality = dihedral_from_rgb(a)
    assert quality == pdq_from_rgb(a).quality
    for name, h, t in zip(DIHEDRAL_NAMES, hashes, transforms, strict=True):
        assert h == pdq_from_rgb(np.ascontiguousarray(t)).value, name


# --------------------------------------------------------------------------- (5) fast mode


@pytest.mark.parametrize("item", _vector_params())
def test_fast_mode_on_reference_photos(item: dict[str, Any]) -> None:
    path = PDQ_DIR / item["file"]
    fast = hash_file(path, mode="fast")
    assert fast.pdq is not None
    assert hamming(fast.pdq, item["pdq"]) <= 8
    assert fast.pdq_quality is not None and fast.pdq_quality >= 50


def _fast_vs_exact(seed: int) -> tuple[int, int]:
    """(bits between fast and exact, long side of the fast decode) on a 12 MP JPEG."""
    data = mf.encode_image(mf.photo_like(4000, 3000, seed=seed), "jpeg", quality=90)
    exact = hash_image_bytes(data)
    fast = hash_image_bytes(data, mode="fast")
    assert (exact.width, exact.height) == (4000, 3000)
    assert exact.pdq is not None and fast.pdq is not None
    # Fast mode decodes at reduced scale; the picture reported is the decoded one.
    assert fast.width is not None and fast.width < 4000
    return hamming(exact.pdq, fast.pdq), fast.width


def test_fast_mode_on_a_12_megapixel_jpeg() -> None:
    # Fast mode decodes a 12 MP JPEG at 1/4 scale (1000x750: the long side stays at
    # least FAST_LONG_SIDE). The DCT-domain reduction changes PDQ's own downsampling:
    # 2-12 bits across seeds, median about 5 (the slow test below); seed 1 gives 4.
    distance, long_side = _fast_vs_exact(seed=1)
    assert long_side == 1000
    assert distance <= 8


@pytest.mark.slow
def test_fast_mode_on_many_12_megapixel_jpegs() -> None:
    distances = [_fast_vs_exact(seed)[0] for seed in range(8)]
    print("fast vs exact, bits:", distances)
    # inside half the match threshold, and typically far less
    assert max(distances) <= 15
    assert float(np.median(distances)) <= 8


def test_fast_mode_other_formats_are_reduced(tmp_path: Path) -> None:
    picture = mf.photo_like(2400, 2100, seed=4)
    for fmt in ("png", "bmp"):
        path = mf.write_image(tmp_path / f"big{mf.SUFFIX[fmt]}", picture, fmt)
        exact, fast = hash_file(path), hash_file(path, mode="fast")
        # reduced by 2: the long side stays >= FAST_LONG_SIDE
        assert (fast.width, fast.height) == (1200, 1050)
        assert exact.pdq is not None and fast.pdq is not None
        assert hamming(exact.pdq, fast.pdq) <= 8


# --------------------------------------------------------------------------- signal type


def test_pdq_signal_type() -> None:
    h = pdq_from_image(original()).value
    assert PdqSignal.normalize(" " + h.upper() + "\n") == h
    flipped = f"{int(h, 16) ^ 0b111:064x}"
    assert PdqSignal.distance(h, flipped) == 3
    assert PdqSignal.matches(h, flipped)
    assert not PdqSignal.matches(h, flipped, threshold=2)
    far = f"{int(h, 16) ^ ((1 << 32) - 1):064x}"
    assert PdqSignal.distance(h, far) == 32 and not PdqSignal.matches(h, far)
    assert PdqSignal.default_threshold == DEFAULT_THRESHOLD == 31
    assert PdqSignal.check_threshold(64) == 64
    for bad_threshold in (-1, 65):
        with pytest.raises(InvalidSignal):
            PdqSignal.check_threshold(bad_threshold)
    for bad in ("", "abc", h[:-1], h + "0", "g" * 64, h[:-1] + " ", None, 12):
        with pytest.raises(InvalidSignal):
            PdqSignal.normalize(bad)  # type: ignore[arg-type]


def test_hamming_and_pack() -> None:
    a, b = "0" * 64, "f" * 64
    assert hamming(a, b) == 256 and hamming(a, a) == 0
    assert np.unpackbits(pack([a, b])).sum() == 256
    assert pack([]).shape == (0, 32)
    assert pack([b]).tobytes() == b"\xff" * 32
    assert (_bits(b) == 1).all()
