"""The exact area average as a compiled kernel (numba): each output pixel is the mean of the source
area it covers, partial source pixels weighted by the fraction covered.

Separable, rows first: each output row is a weighted sum of the ≤ ⌈s⌉+1 source rows it covers
(s = source/output size), computed over the whole row at once (SIMD); then each output pixel is a
weighted sum of the ≤ ⌈s⌉+1 columns of that one row. OpenCV's INTER_AREA sums each source row's
columns first, i.e. does the scalar half on every source row: at the fractional scales of web photos
(2…4) this kernel does ~1/s of that work and takes a third of OpenCV's time (benchmarks/RESULTS.md).

The weights are exact: overlaps are integers in units of 1/(source·output) pixel, divided once. Sums
are float32 in a fixed order (no fused multiply-add, no fast-math), rounded half up, so the same
pixels give the same bytes in every process and on every x86-64 or ARM CPU numba compiles for.
"""
from __future__ import annotations

import numpy as np
from numba import njit


def _compiled(fn):
    """njit, its machine code cached on disk (beside this file, else numba's user-wide cache): a
    fresh process loads it in ~0.15 s instead of compiling for ~1 s. Where no cache folder is
    writable, each process compiles once."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function …: no locator available"
        return njit(nogil=True)(fn)


@_compiled
def _taps(n_in, n_out):
    """Per output index: the first source index, how many it covers, their weights (sum 1)."""
    most = (n_in + n_out - 1) // n_out + 1  # ⌈s⌉ + 1 sources at most
    first = np.empty(n_out, np.int64)
    count = np.empty(n_out, np.int64)
    weight = np.zeros((n_out, most), np.float32)
    for j in range(n_out):
        lo, hi = j * n_in, (j + 1) * n_in  # the output's interval, in 1/n_out source pixels
        i0 = lo // n_out
        i1 = min((hi + n_out - 1) // n_out, n_in)
        first[j] = i0
        count[j] = i1 - i0
        for k in range(i1 - i0):
            i = i0 + k
            covered = min(hi, (i + 1) * n_out) - max(lo, i * n_out)
            weight[j, k] = covered / n_in
    return first, count, weight


@_compiled
def _rows(flat, first, count, weight, row, yo):
    """row[:] = the weighted sum of the source rows output row yo covers (whole rows: SIMD)."""
    src = flat[first[yo]]
    w = weight[yo, 0]
    for x in range(row.size):
        row[x] = w * src[x]
    for k in range(1, count[yo]):
        src = flat[first[yo] + k]
        w = weight[yo, k]
        for x in range(row.size):
            row[x] += w * src[x]


@_compiled
def _average(src, out):
    """out (Ho×Wo×C uint8) = the exact area average of src (H×W×C uint8, C-contiguous)."""
    h, w, c = src.shape
    ho, wo, _ = out.shape
    fy, cy, wy = _taps(h, ho)
    fx, cx, wx = _taps(w, wo)
    flat = src.reshape(h, w * c)
    row = np.empty(w * c, np.float32)
    top = np.float32(255.0)
    for yo in range(ho):
        _rows(flat, fy, cy, wy, row, yo)
        line = out[yo]
        if c == 3:  # the common case, its three sums side by side
            for xo in range(wo):
                a0 = a1 = a2 = np.float32(0.5)
                p = fx[xo] * 3
                for k in range(cx[xo]):
                    wk = wx[xo, k]
                    a0 += wk * row[p]
                    a1 += wk * row[p + 1]
                    a2 += wk * row[p + 2]
                    p += 3
                line[xo, 0] = np.uint8(min(a0, top))
                line[xo, 1] = np.uint8(min(a1, top))
                line[xo, 2] = np.uint8(min(a2, top))
        else:
            for xo in range(wo):
                for ch in range(c):
                    acc = np.float32(0.5)
                    p = fx[xo] * c + ch
                    for k in range(cx[xo]):
                        acc += wx[xo, k] * row[p]
                        p += c
                    line[xo, ch] = np.uint8(min(acc, top))
    return out


def area_average(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The exact area average of an H×W (grey) or H×W×C uint8 array at `size` = (width, height),
    rounded to uint8, same shape kind as the input. Works for enlarging too (each output pixel then
    covers part of one or two source pixels)."""
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"area_average: target size must be ≥ 1×1, got {width}×{height}")
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or 0 in pixels.shape:
        raise ValueError(f"area_average: expects a non-empty H×W(×C) uint8 array, got {pixels.dtype} {pixels.shape}")
    src = np.ascontiguousarray(pixels if pixels.ndim == 3 else pixels[:, :, None])
    out = np.empty((height, width, src.shape[2]), np.uint8)
    _average(src, out)
    return out if pixels.ndim == 3 else out[:, :, 0]
