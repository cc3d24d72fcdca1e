"""PDQ's Jarosz blur and decimation, bit for bit, without the reference's cache misses.

The reference downsamples the float luma plane to 64x64 with two passes of a box
filter along rows and then along columns (running sums in float32, with shrinking
windows at the edges), and samples the centres of a 64x64 grid. Its column pass
walks each column top to bottom, a cache miss per pixel on a large photo.

Here every column's running sum sees exactly the same float32 additions,
subtractions and divisions, in the same order, as in the reference — the columns
are simply advanced together, one row at a time, so memory is read sequentially.
Rows are handled the same way, a block of rows at a time. The last column pass is
only computed for the 64 sampled columns. The result is the reference's 64x64
buffer, which the reference C++ core then turns into quality and hash.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ROW_BLOCK = 16


def window(old: int, new: int = 64) -> int:
    """computeJaroszFilterWindowSize of the reference."""
    return (old + 2 * new - 1) // (2 * new)


@njit(cache=True, nogil=True)
def _box_all_cols(src, dst, window):  # type: ignore[no-untyped-def]
    """Box filter down every column (boxAlongColsFloat), rows advanced together."""
    n, m = src.shape
    half = (window + 2) // 2
    p1 = half - 1
    p2 = window - half + 1
    p3 = n - window
    p4 = half - 1
    sums = np.zeros(m, np.float32)
    count = 0
    ri = 0
    li = 0
    oi = 0
    for _ in range(p1):
        for c in range(m):
            sums[c] += src[ri, c]
        count += 1
        ri += 1
    for _ in range(p2):
        count += 1
        d = np.float32(count)
        for c in range(m):
            sums[c] += src[ri, c]
            dst[oi, c] = sums[c] / d
        ri += 1
        oi += 1
    d = np.float32(count)
    for _ in range(p3):
        for c in range(m):
            sums[c] += src[ri, c]
            sums[c] -= src[li, c]
            dst[oi, c] = sums[c] / d
        li += 1
        ri += 1
        oi += 1
    for _ in range(p4):
        count -= 1
        d = np.float32(count)
        for c in range(m):
            sums[c] -= src[li, c]
            dst[oi, c] = sums[c] / d
        li += 1
        oi += 1


@njit(cache=True, nogil=True)
def _box_all_rows(src, dst, window):  # type: ignore[no-untyped-def]
    """Box filter along every row (boxAlongRowsFloat).

    A block of rows is copied transposed into a small buffer (it fits in cache), run
    through the column filter — each row's running sum in its own lane — and copied
    back: the same arithmetic per row, but vectorised across rows.
    """
    n, m = src.shape
    tile_in = np.empty((m, ROW_BLOCK), np.float32)
    tile_out = np.empty((m, ROW_BLOCK), np.float32)
    for r0 in range(0, n, ROW_BLOCK):
        b = min(ROW_BLOCK, n - r0)
        for r in range(b):
            for c in range(m):
                tile_in[c, r] = src[r0 + r, c]
        for r in range(b, ROW_BLOCK):
            for c in range(m):
                tile_in[c, r] = np.float32(0.0)
        _box_all_cols(tile_in, tile_out, window)
        for r in range(b):
            for c in range(m):
                dst[r0 + r, c] = tile_out[c, r]


@njit(cache=True, nogil=True)
def downsample64(luma, tmp, buf):  # type: ignore[no-untyped-def]
    """The reference's 64x64 buffer: two Jarosz passes, then the centre samples.

    ``luma``: (rows, cols) float32, C-contiguous; both sides at least 64. ``tmp``,
    ``buf``: scratch arrays of the same shape (reused by the caller: fresh memory
    costs more to fault in than the filtering itself).
    """
    n, m = luma.shape
    wr = (m + 127) // 128  # window along rows (from the number of columns)
    wc = (n + 127) // 128  # window along columns
    _box_all_rows(luma, tmp, wr)
    _box_all_cols(tmp, buf, wc)
    _box_all_rows(buf, tmp, wr)
    cols = np.empty(64, np.int64)
    for j in range(64):
        cols[j] = int(((j + 0.5) * m) / 64)
    picked = np.empty((n, 64), np.float32)
    for i in range(n):
        for j in range(64):
            picked[i, j] = tmp[i, cols[j]]
    sampled = np.empty((n, 64), np.float32)
    _box_all_cols(picked, sampled, wc)  # the last pass only for the sampled columns
    out = np.empty((64, 64), np.float32)
    for i in range(64):
        ini = int(((i + 0.5) * n) / 64)
        for j in range(64):
            out[i, j] = sampled[ini, j]
    return out
