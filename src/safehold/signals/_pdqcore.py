"""Calls into the reference PDQ C++ core that the ``pdqhash`` package ships.

``pdqhash.compute`` builds the float luma plane with whole-image float64 NumPy
passes (about half of its time on a 12 MP photo) and turns the hash into bits with a
Python loop. We compute the *same* luma values (the same expression, a few rows at a
time so the temporaries stay in cache) and call the C++ function
``pdqHash256FromFloatLuma`` that ``pdqhash`` compiled, so the hash and quality are
bit-for-bit those of ``pdqhash.compute`` — the values python-threatexchange and
HMA publish — at a fraction of the cost.

For pictures of at least 128x128 pixels the blur-and-decimate step is done by
:mod:`safehold.signals._pdqfilter` (the same float32 arithmetic in the same order,
read cache-friendly), and the reference core finishes from the 64x64 buffer:
quality metric, DCT, dihedral transforms and bits.

If the symbols cannot be found (a different ``pdqhash`` build), everything falls
back to ``pdqhash.compute`` and stays correct, only slower.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np

_ROWS_PER_BLOCK = 64
FILTER_MIN_SIDE = 128
"""Pictures at least this large on both sides are downsampled by our filter."""

_HASH_SYM = (
    "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi"
)
_DIHEDRAL_SYM = (
    "_ZN8facebook3pdq7hashing33pdqDihedralHash256esFromFloatLumaEPfS2_iiPA64_fS4_PA16_fS6_"
    "PNS1_7Hash256ES8_S8_S8_S8_S8_S8_S8_Ri"
)


_TAIL_SYMS = {
    "quality": "_ZN8facebook3pdq7hashing27pdqImageDomainQualityMetricEPA64_f",
    "dct": "_ZN8facebook3pdq7hashing9dct64To16EPA64_fS3_PA16_f",
    "bits": "_ZN8facebook3pdq7hashing20pdqBuffer16x16ToBitsEPA16_fPNS1_7Hash256E",
}
_DIHEDRAL_TRANSFORMS = (  # in DIHEDRAL_NAMES order, after the original
    "_ZN8facebook3pdq7hashing23dct16OriginalToRotate90EPA16_fS3_",
    "_ZN8facebook3pdq7hashing24dct16OriginalToRotate180EPA16_fS3_",
    "_ZN8facebook3pdq7hashing24dct16OriginalToRotate270EPA16_fS3_",
    "_ZN8facebook3pdq7hashing20dct16OriginalToFlipXEPA16_fS3_",
    "_ZN8facebook3pdq7hashing20dct16OriginalToFlipYEPA16_fS3_",
    "_ZN8facebook3pdq7hashing24dct16OriginalToFlipPlus1EPA16_fS3_",
    "_ZN8facebook3pdq7hashing25dct16OriginalToFlipMinus1EPA16_fS3_",
)


class _Hash256(ctypes.Structure):
    _fields_ = [("w", ctypes.c_uint16 * 16)]


_FloatP = ctypes.POINTER(ctypes.c_float)


def _library() -> Any | None:
    """The compiled ``pdqhash`` extension, opened once for every binding below."""
    try:
        from pdqhash import bindings

        return ctypes.CDLL(bindings.__file__)
    except (ImportError, OSError):  # pragma: no cover - depends on build
        return None


_LIB = _library()


def _load() -> tuple[Any, Any] | None:
    try:
        one = getattr(_LIB, _HASH_SYM)
        eight = getattr(_LIB, _DIHEDRAL_SYM)
    except AttributeError:  # pragma: no cover - depends on build (or no library)
        return None
    one.restype = None
    one.argtypes = [
        _FloatP,
        _FloatP,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.POINTER(_Hash256),
        ctypes.POINTER(ctypes.c_int),
    ]
    eight.restype = ctypes.c_bool
    eight.argtypes = [
        _FloatP,
        _FloatP,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        *([ctypes.POINTER(_Hash256)] * 8),
        ctypes.POINTER(ctypes.c_int),
    ]
    return one, eight


def _load_tail() -> dict[str, Any] | None:
    try:
        tail = {name: getattr(_LIB, sym) for name, sym in _TAIL_SYMS.items()}
        tail["transforms"] = [getattr(_LIB, sym) for sym in _DIHEDRAL_TRANSFORMS]
    except AttributeError:  # pragma: no cover - depends on build (or no library)
        return None
    tail["quality"].restype = ctypes.c_int
    tail["quality"].argtypes = [ctypes.c_void_p]
    tail["dct"].restype = None
    tail["dct"].argtypes = [ctypes.c_void_p] * 3
    tail["bits"].restype = None
    tail["bits"].argtypes = [ctypes.c_void_p, ctypes.POINTER(_Hash256)]
    for fn in tail["transforms"]:
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return tail


_FUNCS = _load()
_TAIL = _load_tail() if _FUNCS is not None else None
NATIVE = _FUNCS is not None


def _use_filter(rgb: np.ndarray) -> bool:
    return _TAIL is not None and min(rgb.shape[0], rgb.shape[1]) >= FILTER_MIN_SIDE


_SCRATCH = threading.local()
_KEEP_SCRATCH = 16_000_000


def _scratch(height: int, width: int) -> list[np.ndarray]:
    """Three (height, width) float32 work planes, reused per thread (growing as needed)."""
    need = height * width
    planes: list[np.ndarray] | None = getattr(_SCRATCH, "planes", None)
    if planes is None or planes[0].size < need:
        planes = [np.empty(need, dtype=np.float32) for _ in range(3)]
        if need <= _KEEP_SCRATCH:  # keep up to 3 x 64 MiB per thread, not more
            _SCRATCH.planes = planes
    return [p[:need].reshape(height, width) for p in planes]


def _from_64x64(rgb: np.ndarray, dihedral: bool) -> tuple[list[str], int]:
    """Our downsampling, then the reference core's quality, DCT, transforms and bits."""
    from safehold.signals._pdqfilter import downsample64

    assert _TAIL is not None
    lum, tmp, work = _scratch(rgb.shape[0], rgb.shape[1])
    luma(rgb, lum)
    buf = np.ascontiguousarray(downsample64(lum, tmp, work), dtype=np.float32)
    t16x64 = np.empty((16, 64), dtype=np.float32)
    b16 = np.empty((16, 16), dtype=np.float32)
    aux = np.empty((16, 16), dtype=np.float32)
    quality = int(_TAIL["quality"](buf.ctypes.data))
    _TAIL["dct"](buf.ctypes.data, t16x64.ctypes.data, b16.ctypes.data)
    h = _Hash256()
    _TAIL["bits"](b16.ctypes.data, ctypes.byref(h))
    hashes = [_hex(h)]
    if dihedral:
        for transform in _TAIL["transforms"]:
            transform(b16.ctypes.data, aux.ctypes.data)
            h = _Hash256()
            _TAIL["bits"](aux.ctypes.data, ctypes.byref(h))
            hashes.append(_hex(h))
    return hashes, quality


def luma(rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 luma, equal value for value to what ``pdqhash.compute`` feeds its core.

    The expression is pdqhash's own; evaluating it a few rows at a time keeps the
    float64 temporaries in cache, which makes it several times faster.
    """
    height, width = rgb.shape[:2]
    if out is None:
        out = np.empty((height, width), dtype=np.float32)
    for start in range(0, height, _ROWS_PER_BLOCK):
        b = rgb[start : start + _ROWS_PER_BLOCK]
        out[start : start + b.shape[0]] = (
            b[:, :, 0] * 0.299 + b[:, :, 1] * 0.587 + b[:, :, 2] * 0.114
        )
    return out


def _hex(h: _Hash256) -> str:
    return "".join(f"{h.w[i]:04x}" for i in range(15, -1, -1))


def _buffers() -> tuple[Any, Any, Any, Any]:
    return (
        (ctypes.c_float * 4096)(),
        (ctypes.c_float * 1024)(),
        (ctypes.c_float * 256)(),
        (ctypes.c_float * 256)(),
    )


def hash_rgb(rgb: np.ndarray) -> tuple[str, int]:
    """PDQ hex and quality of an (h, w, 3) uint8 array."""
    if _FUNCS is None:  # pragma: no cover
        return _fallback(rgb)
    hashes, quality = _hashes(rgb, dihedral=False)
    return hashes[0], quality


def dihedral_rgb(rgb: np.ndarray) -> tuple[list[str], int]:
    """The 8 dihedral PDQ hashes (original, rot90, rot180, rot270, flipx, flipy,
    flip+1, flip-1) and the quality, from one pass over the picture."""
    if _FUNCS is None:  # pragma: no cover
        return _fallback_dihedral(rgb)
    return _hashes(rgb, dihedral=True)


def _hashes(rgb: np.ndarray, dihedral: bool) -> tuple[list[str], int]:
    if _use_filter(rgb):
        return _from_64x64(rgb, dihedral)
    return _reference(rgb, dihedral)


def _reference(rgb: np.ndarray, dihedral: bool) -> tuple[list[str], int]:
    """The reference core end to end (for small pictures)."""
    assert _FUNCS is not None
    one, eight = _FUNCS
    lum = luma(rgb)
    scratch = np.empty_like(lum)
    b64, b16x64, b16, aux = _buffers()
    hashes = [_Hash256() for _ in range(8 if dihedral else 1)]
    q = ctypes.c_int(0)
    head = (
        lum.ctypes.data_as(_FloatP),
        scratch.ctypes.data_as(_FloatP),
        lum.shape[0],
        lum.shape[1],
        b64,
        b16x64,
        b16,
    )
    if dihedral:
        eight(*head, aux, *[ctypes.byref(h) for h in hashes], ctypes.byref(q))
    else:
        one(*head, ctypes.byref(hashes[0]), ctypes.byref(q))
    return [_hex(h) for h in hashes], int(q.value)


def _bits_to_hex(bits: np.ndarray) -> str:
    return bytes(np.packbits(np.asarray(bits, dtype=np.uint8))).hex()


def _fallback(rgb: np.ndarray) -> tuple[str, int]:  # pragma: no cover
    import pdqhash

    bits, quality = pdqhash.compute(rgb)
    return _bits_to_hex(bits), int(quality)


def _fallback_dihedral(rgb: np.ndarray) -> tuple[list[str], int]:  # pragma: no cover
    import pdqhash

    bits_list, quality = pdqhash.compute_dihedral(rgb)
    return [_bits_to_hex(b) for b in bits_list], int(quality)
