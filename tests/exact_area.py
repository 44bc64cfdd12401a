"""The exact area average, written independently of OpenCV and Pillow: the reference that
`resample="area"` is checked against (tests/pipeline/images) and measured by (benchmarks/bench_decode.py)."""
from __future__ import annotations

import numpy as np


def _area_1d(a: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Average of the piecewise-constant signal over n_out equal intervals along `axis`, from its
    integral (cumulative sum, linear within a pixel): partial pixels count by the fraction covered."""
    a = np.moveaxis(np.asarray(a, dtype=np.float64), axis, 0)
    n_in = a.shape[0]
    integral = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])
    x = np.arange(n_out + 1) * n_in / n_out
    i = np.minimum(np.floor(x).astype(int), n_in - 1)
    at_x = integral[i] + (x - i).reshape((-1,) + (1,) * (a.ndim - 1)) * a[i]
    return np.moveaxis((at_x[1:] - at_x[:-1]) * n_out / n_in, 0, axis)


def exact_area(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W(×C) pixels averaged exactly to `size` = (width, height), in float64 (no rounding)."""
    return _area_1d(_area_1d(pixels, size[1], 0), size[0], 1)
