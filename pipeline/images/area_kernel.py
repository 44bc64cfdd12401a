"""The exact area average as a compiled kernel (numba): each output pixel is the mean of the source
area it covers, partial source pixels weighted by the fraction covered.

Separable, rows first: each output row is a weighted sum of the ≤ ⌈s⌉+1 source rows it covers
(s = source/output size), computed over the whole row at once (SIMD); then each output pixel is a
weighted sum of the ≤ ⌈s⌉+1 columns of that one row (unrolled for the 4 or 5 of scales up to 4).
OpenCV's INTER_AREA sums each source row's columns first, i.e. does the scalar half on every source
row: at the fractional scales of web photos (2…4) this kernel takes a third of its time or less
(benchmarks/RESULTS.md).

The weights are exact: overlaps are integers in units of 1/(source·output) pixel, divided once. Sums
are float32 in a fixed order (no fused multiply-add, no fast-math), rounded half up: the same pixels
give the same bytes in every process, thread and worker count; IEEE single precision in a fixed
order should give them on other CPUs too (tested on x86-64 only).
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
def _window(first, count, weight, n_in, taps):
    """The same weights in a fixed window of `taps` sources per output (zeros around them, the
    window moved left at the end), so the column sums below run unrolled. Adding a zero weight's
    term changes no float: the sums and bytes are those of the exact taps."""
    n_out = first.size
    start = np.empty(n_out, np.int64)
    padded = np.zeros((n_out, taps), np.float32)
    for j in range(n_out):
        s = min(first[j], n_in - taps)
        start[j] = s
        for k in range(count[j]):
            padded[j, first[j] - s + k] = weight[j, k]
    return start, padded


@_compiled
def _window_cols(row, start, weight, line):
    """line[xo, c] = the rounded sum of the 4 or 5 (weight's columns) weighted source pixels of one
    row from start[xo] (3 channels), unrolled; a fifth term only for scales 3…4."""
    top = np.float32(255.0)
    five = weight.shape[1] == 5
    for xo in range(line.shape[0]):
        w0, w1, w2, w3 = weight[xo, 0], weight[xo, 1], weight[xo, 2], weight[xo, 3]
        w4 = weight[xo, 4] if five else np.float32(0.0)
        p = start[xo] * 3
        for ch in range(3):
            q = p + ch
            a = np.float32(0.5) + w0 * row[q]
            a += w1 * row[q + 3]
            a += w2 * row[q + 6]
            a += w3 * row[q + 9]
            if five:
                a += w4 * row[q + 12]
            line[xo, ch] = np.uint8(min(a, top))


@_compiled
def _cols3(row, first, count, weight, line):
    """As _window_cols, any number of source pixels (their count per output pixel)."""
    top = np.float32(255.0)
    for xo in range(line.shape[0]):
        a0 = a1 = a2 = np.float32(0.5)
        p = first[xo] * 3
        for k in range(count[xo]):
            wk = weight[xo, k]
            a0 += wk * row[p]
            a1 += wk * row[p + 1]
            a2 += wk * row[p + 2]
            p += 3
        line[xo, 0] = np.uint8(min(a0, top))
        line[xo, 1] = np.uint8(min(a1, top))
        line[xo, 2] = np.uint8(min(a2, top))


@_compiled
def _cols(row, first, count, weight, line):
    """line[xo, c] = the rounded sum of the weighted source pixels (any count, any channels)."""
    top = np.float32(255.0)
    c = line.shape[1]
    for xo in range(line.shape[0]):
        for ch in range(c):
            a = np.float32(0.5)
            p = first[xo] * c + ch
            for k in range(count[xo]):
                a += weight[xo, k] * row[p]
                p += c
            line[xo, ch] = np.uint8(min(a, top))


@_compiled
def _average(src, out):
    """out (Ho×Wo×C uint8) = the exact area average of src (H×W×C uint8, C-contiguous)."""
    h, w, c = src.shape
    ho, wo, _ = out.shape
    fy, cy, wy = _taps(h, ho)
    fx, cx, wx = _taps(w, wo)
    taps = wx.shape[1]
    unrolled = c == 3 and taps <= 5 and w >= 5  # web photos: JPEGs DCT-scaled to 1…4× the target
    if unrolled:
        taps = 4 if taps <= 4 else 5
        sx, px = _window(fx, cx, wx, w, taps)
    flat = src.reshape(h, w * c)
    row = np.empty(w * c, np.float32)
    for yo in range(ho):
        _rows(flat, fy, cy, wy, row, yo)
        if c != 3:
            _cols(row, fx, cx, wx, out[yo])
        elif unrolled:
            _window_cols(row, sx, px, out[yo])
        else:
            _cols3(row, fx, cx, wx, out[yo])
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
