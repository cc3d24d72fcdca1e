"""Our blur-and-decimate path gives the reference's hash and quality, bit for bit.

Pictures of at least FILTER_MIN_SIDE pixels on both sides are downsampled by
safehold.signals._pdqfilter instead of the C++ core; these tests compare with
``pdqhash.compute`` / ``compute_dihedral`` (the reference core end to end) on
pictures of many shapes and kinds.
"""

from __future__ import annotations

import numpy as np
import pdqhash
import pytest
from PIL import Image

from safehold.signals import _pdqcore


def _ref(rgb: np.ndarray) -> tuple[str, int, list[str], int]:
    bits, q = pdqhash.compute(rgb)
    dbits, dq = pdqhash.compute_dihedral(rgb)
    return (
        _pdqcore._bits_to_hex(bits),
        int(q),
        [_pdqcore._bits_to_hex(b) for b in dbits],
        int(dq),
    )


def _picture(rng: np.random.Generator, h: int, w: int, kind: int) -> np.ndarray:
    if kind == 0:  # pixel noise: every rounding matters
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    small = rng.integers(
        0, 256, (int(rng.integers(2, 40)), int(rng.integers(2, 40)), 3), dtype=np.uint8
    )
    resample = Image.Resampling.BICUBIC if kind == 1 else Image.Resampling.NEAREST
    return np.ascontiguousarray(np.asarray(Image.fromarray(small).resize((w, h), resample)))


@pytest.mark.parametrize("seed", range(6))
def test_filter_path_equals_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for kind in range(3):
        h, w = (int(x) for x in rng.integers(_pdqcore.FILTER_MIN_SIDE, 1300, 2))
        rgb = _picture(rng, h, w, kind)
        assert _pdqcore._use_filter(rgb)
        value, quality = _pdqcore.hash_rgb(rgb)
        variants, dq = _pdqcore.dihedral_rgb(rgb)
        assert (value, quality, variants, dq) == _ref(rgb), (h, w, kind)


@pytest.mark.parametrize("shape", [(128, 128), (128, 2000), (2000, 128), (129, 255), (1000, 1000)])
def test_filter_path_edge_shapes(shape: tuple[int, int]) -> None:
    rgb = _picture(np.random.default_rng(sum(shape)), shape[0], shape[1], 1)
    value, quality = _pdqcore.hash_rgb(rgb)
    variants, dq = _pdqcore.dihedral_rgb(rgb)
    assert (value, quality, variants, dq) == _ref(rgb)


def test_small_pictures_use_the_reference_core() -> None:
    rgb = _picture(np.random.default_rng(1), 64, 64, 1)
    assert not _pdqcore._use_filter(rgb)
    value, quality = _pdqcore.hash_rgb(rgb)
    assert (value, quality) == _ref(rgb)[:2]


def test_scratch_planes_are_reused_and_capped() -> None:
    a = _pdqcore._scratch(300, 400)
    b = _pdqcore._scratch(200, 100)
    assert a[0].base is b[0].base  # same per-thread memory, smaller view
    big = _pdqcore._scratch(5000, 4000)  # 20 MP: used once, not kept
    assert big[0].shape == (5000, 4000)
    assert _pdqcore._scratch(300, 400)[0].base is a[0].base
