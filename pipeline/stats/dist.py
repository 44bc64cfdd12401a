"""Distributions on fine fixed bins: exact counts, percentiles, and display bins fitted to the data.

A `Dist` folds batches of numbers into counts over fine bins that never change (so the result is
independent of batch and shard boundaries) and keeps the exact count, sum, min and max:

- `int` quantities (pixels, characters, words, tokens, bytes): one bin per integer below 4,096, then
  32 bins per octave (integer edges) up to 2^40. Percentiles are exact below 4,096; above, they
  are the lower edge of a bin ≤ 2.2% wide.
- `ratio` quantities (aspect ratios): 32 bins per octave from 1/4096 to 4096; a percentile is the
  smallest value seen in its bin (a real value, at most 2.2% below the exact one).

Percentiles use the nearest-rank rule (the smallest value with at least q% of the values at or
below it), clamped to [min, max]. `to_dict` turns the fine counts into ~20–60 display bins over
the data's own range — log-spaced (`scale: "log"`) or linear with the top 1% folded into a last
"and more" bin (`overflow_from`; when the max is over 1.5 × p99) — summed from the fine bins, so every display count is exact.
"""
from __future__ import annotations

import math

import numpy as np

PERCENTILES = (1, 5, 50, 95, 99)
_UNIT_LIMIT = 4096
_PER_OCTAVE = 32


def _int_edges() -> np.ndarray:
    log_part = np.ceil(_UNIT_LIMIT * 2.0 ** (np.arange(1, _PER_OCTAVE * 28 + 1) / _PER_OCTAVE))
    return np.unique(np.concatenate([np.arange(_UNIT_LIMIT + 1, dtype=np.float64), log_part]))


def _ratio_edges() -> np.ndarray:
    k = np.arange(-12 * _PER_OCTAVE, 12 * _PER_OCTAVE + 1)
    return np.array([float(f"{v:.6g}") for v in 2.0 ** (k / _PER_OCTAVE)])


INT_EDGES = _int_edges()
RATIO_EDGES = _ratio_edges()
_NICE_STEPS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10_000, 20_000, 50_000)


def num(v):
    """A JSON number: an int when whole, else 6 significant digits or 3 decimals (None stays None)."""
    if v is None:
        return None
    v = float(v)
    if v.is_integer():
        return int(v)
    return float(f"{v:.6g}") if abs(v) < 1e4 else round(v, 3)  # (unix times keep their milliseconds)


class Dist:
    """Counts over fine fixed bins (see the module doc) + exact count, sum, min, max."""

    def __init__(self, kind: str = "int", scale: str = "linear", show_up_to: float | None = None):
        """`show_up_to`: a linear axis reaches at least this value before folding the tail (the
        77-token context for token lengths, so the fold holds exactly the truncated captions)."""
        if kind not in ("int", "ratio") or scale not in ("linear", "log"):
            raise ValueError(f"bad Dist kind/scale {kind}/{scale}")
        self.kind, self.scale, self.show_up_to = kind, scale, show_up_to
        self.edges = INT_EDGES if kind == "int" else RATIO_EDGES
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)
        self.n, self.total = 0, 0.0
        self.lo, self.hi = None, None
        self.bin_min = np.full(len(self.counts), np.inf) if kind == "ratio" else None

    def add(self, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return
        if self.kind == "int":  # one bin per integer below _UNIT_LIMIT: the value is its bin
            idx = np.clip(values, 0, _UNIT_LIMIT).astype(np.int64)
            big = values >= _UNIT_LIMIT
            if big.any():
                idx[big] = np.searchsorted(self.edges, values[big], side="right") - 1
            idx = np.minimum(idx, len(self.counts) - 1)
        else:
            idx = np.clip(np.searchsorted(self.edges, values, side="right") - 1, 0, len(self.counts) - 1)
        self.counts += np.bincount(idx, minlength=len(self.counts))
        if self.kind == "ratio":  # the smallest value seen in each bin: percentiles are real values
            order = np.argsort(values, kind="stable")
            bins, first = np.unique(idx[order], return_index=True)
            self.bin_min[bins] = np.minimum(self.bin_min[bins], values[order][first])
        self.n += int(values.size)
        self.total += float(values.sum())
        lo, hi = float(values.min()), float(values.max())
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)

    def _bin(self, value: float) -> int:
        return int(np.clip(np.searchsorted(self.edges, value, side="right") - 1, 0, len(self.counts) - 1))

    def percentile(self, q: float) -> float | None:
        if not self.n:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.n))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        if self.kind == "ratio":
            value = self.bin_min[i]
        else:
            value = self.edges[i]
        return min(max(value, self.lo), self.hi)

    def percentiles(self) -> dict:
        return {f"p{q}": num(self.percentile(q)) for q in PERCENTILES}

    def display(self) -> tuple[list, list, float | None]:
        """(edges, counts, overflow_from) of the display bins: the data's range, ~20–60 bins."""
        if not self.n:
            return [], [], None
        lo_i, hi_i = self._bin(self.lo), self._bin(self.hi) + 1  # fine edge indices around the data
        overflow = None
        if self.scale == "log":
            if self.kind == "int":
                lo_i = max(lo_i, 1)  # no 0 on a log axis: zeros fold into the first bin
                hi_i = max(hi_i, lo_i + 1)
            idx = self._log_indices(lo_i, hi_i)
        else:
            idx, overflow = self._linear_indices(lo_i, hi_i)
        cum = np.concatenate([[0], np.cumsum(self.counts)])
        # Values below the first display edge or above the last fold into the first / last bin.
        bounds = np.array(idx, dtype=np.int64)
        bounds_lo, bounds_hi = bounds.copy(), bounds.copy()
        bounds_lo[0], bounds_hi[-1] = 0, len(self.counts)
        counts = (cum[bounds_hi[1:]] - cum[bounds_lo[:-1]]).tolist()
        counts = [int(c) for c in counts]
        return [num(self.edges[i]) for i in idx], counts, overflow

    def _log_indices(self, lo_i: int, hi_i: int) -> list[int]:
        lo, hi = self.edges[lo_i], self.edges[hi_i]
        octaves = math.log2(hi / lo) if lo > 0 else 1.0
        per_octave = next((b for b in (16, 8, 4, 2, 1) if octaves * b <= 48), 1)
        n = max(1, math.ceil(octaves * per_octave))
        targets = lo * 2.0 ** (np.arange(n + 1) * (math.log2(hi / lo) / n))
        idx = np.clip(np.searchsorted(self.edges, targets), lo_i, hi_i)
        return sorted(set(idx.tolist()) | {lo_i, hi_i})

    def _linear_indices(self, lo_i: int, hi_i: int) -> tuple[list[int], float | None]:
        lo, top = self.edges[lo_i], self.edges[hi_i]  # the data lies in [lo, top)
        p99 = self.percentile(99)
        end, overflow = top, None
        if self.hi > 1.5 * p99 + 1:  # a long tail: fit the axis to p99, fold the top 1% into one bin
            end = self.edges[self._bin(max(p99, self.show_up_to or 0)) + 1]
            if end >= top:
                end = top
        step = next((s for s in _NICE_STEPS if (end - lo) / s <= 50), _NICE_STEPS[-1])
        start = math.floor(lo / step) * step
        targets = np.arange(start, end + step, step, dtype=np.float64)
        if targets[-1] < end:
            targets = np.append(targets, targets[-1] + step)
        idx = np.searchsorted(self.edges, targets).tolist()
        if end < top:
            overflow = float(self.edges[idx[-1]])
            idx.append(hi_i)
        return sorted(set(idx)), overflow

    def to_dict(self) -> dict:
        edges, counts, overflow = self.display()
        return {
            "count": self.n, "mean": round(self.total / self.n, 4) if self.n else None,
            "min": num(self.lo), "max": num(self.hi), "percentiles": self.percentiles(),
            "scale": self.scale, "edges": edges, "counts": counts, "overflow_from": num(overflow),
        }
