"""Calls into the reference PDQ C++ core that the ``pdqhash`` package ships.

``pdqhash.compute`` builds the float luma plane with whole-image float64 NumPy
passes (about half of its time on a 12 MP photo) and turns the hash into bits with a
Python loop. We compute the *same* luma values (the same expression, a few rows at a
time so the temporaries stay in cache) and call the C++ function
``pdqHash256FromFloatLuma`` that ``pdqhash`` compiled, so the hash and quality are
bit-for-bit those of ``pdqhash.compute`` — the values python-threatexchange and
HMA publish — at a fraction of the cost.

If the symbols cannot be found (a different ``pdqhash`` build), everything falls
back to ``pdqhash.compute`` and stays correct, only slower.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

_ROWS_PER_BLOCK = 64

_HASH_SYM = (
    "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi"
)
_DIHEDRAL_SYM = (
    "_ZN8facebook3pdq7hashing33pdqDihedralHash256esFromFloatLumaEPfS2_iiPA64_fS4_PA16_fS6_"
    "PNS1_7Hash256ES8_S8_S8_S8_S8_S8_S8_Ri"
)


class _Hash256(ctypes.Structure):
    _fields_ = [("w", ctypes.c_uint16 * 16)]


_FloatP = ctypes.POINTER(ctypes.c_float)


def _load() -> tuple[Any, Any] | None:
    try:
        from pdqhash import bindings

        lib = ctypes.CDLL(bindings.__file__)
        one = getattr(lib, _HASH_SYM)
        eight = getattr(lib, _DIHEDRAL_SYM)
    except (ImportError, OSError, AttributeError):  # pragma: no cover - depends on build
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


_FUNCS = _load()
NATIVE = _FUNCS is not None


def luma(rgb: np.ndarray) -> np.ndarray:
    """float32 luma, equal value for value to what ``pdqhash.compute`` feeds its core.

    The expression is pdqhash's own; evaluating it a few rows at a time keeps the
    float64 temporaries in cache, which makes it several times faster.
    """
    height, width = rgb.shape[:2]
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
    one, _ = _FUNCS
    lum = luma(rgb)
    scratch = np.empty_like(lum)
    b64, b16x64, b16, _aux = _buffers()
    h = _Hash256()
    q = ctypes.c_int(0)
    one(
        lum.ctypes.data_as(_FloatP),
        scratch.ctypes.data_as(_FloatP),
        lum.shape[0],
        lum.shape[1],
        b64,
        b16x64,
        b16,
        ctypes.byref(h),
        ctypes.byref(q),
    )
    return _hex(h), int(q.value)


def dihedral_rgb(rgb: np.ndarray) -> tuple[list[str], int]:
    """The 8 dihedral PDQ hashes (original, rot90, rot180, rot270, flipx, flipy,
    flip+1, flip-1) and the quality, from one pass over the picture."""
    if _FUNCS is None:  # pragma: no cover
        return _fallback_dihedral(rgb)
    _, eight = _FUNCS
    lum = luma(rgb)
    scratch = np.empty_like(lum)
    b64, b16x64, b16, aux = _buffers()
    hashes = [_Hash256() for _ in range(8)]
    q = ctypes.c_int(0)
    eight(
        lum.ctypes.data_as(_FloatP),
        scratch.ctypes.data_as(_FloatP),
        lum.shape[0],
        lum.shape[1],
        b64,
        b16x64,
        b16,
        aux,
        *[ctypes.byref(h) for h in hashes],
        ctypes.byref(q),
    )
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
