"""Streaming aggregation of shard Parquet rows: a few numbers per record batch, nothing per row kept.

`ShardRows.add(batch)` folds one Arrow record batch (statuses, reasons, sizes, caption lengths,
query ids) into counters and fixed-edge histograms, so memory stays flat however many shards there
are. Fixed edges (not data-driven ones) make the result independent of batch boundaries.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Quarter-octave pixel bins from 8 to 16384 (plus [1, 8)); larger values land in the last bin.
SIZE_EDGES = [1] + sorted({int(round(2 ** (k / 4))) for k in range(12, 57)})
# Aspect ratio w/h in quarter octaves from 1/16 to 16.
ASPECT_EDGES = [round(2 ** (k / 4), 4) for k in range(-16, 17)]
CHAR_EDGES = list(range(0, 305, 5))
WORD_EDGES = list(range(0, 66, 2))
COLUMNS = ("status", "error_message", "width", "height", "original_width", "original_height",
           "caption", "query_ids")


class Histogram:
    """Counts over fixed [lo, hi) bins; values outside go to the first or last bin. Exact ints."""

    def __init__(self, edges):
        self.edges = list(edges)
        self._edges = np.asarray(edges, dtype=np.float64)
        self.counts = np.zeros(len(edges) - 1, dtype=np.int64)
        self.n, self.total = 0, 0.0
        self.lo, self.hi = None, None

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return
        idx = np.clip(np.searchsorted(self._edges, values, side="right") - 1, 0, len(self.counts) - 1)
        self.counts += np.bincount(idx, minlength=len(self.counts))
        self.n += int(values.size)
        self.total += float(values.sum())
        lo, hi = float(values.min()), float(values.max())
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)

    def to_dict(self) -> dict:
        return {
            "edges": self.edges, "counts": [int(c) for c in self.counts], "count": self.n,
            "mean": round(self.total / self.n, 4) if self.n else None,
            "min": _num(self.lo), "max": _num(self.hi),
        }


def _num(v):
    if v is None:
        return None
    return int(v) if float(v).is_integer() else round(v, 4)


def _column(batch: pa.RecordBatch, name: str, kind: pa.DataType) -> pa.Array:
    """The batch's column, or an all-null column when the file lacks it (older writers)."""
    i = batch.schema.get_field_index(name)
    return batch.column(i) if i >= 0 else pa.nulls(batch.num_rows, kind)


def _sizes(w: pa.Array, h: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    ok = pc.and_(pc.and_(pc.is_valid(w), pc.is_valid(h)), pc.and_(pc.greater(w, 0), pc.greater(h, 0)))
    ok = pc.fill_null(ok, False)
    return (pc.filter(w, ok).to_numpy(zero_copy_only=False).astype(np.float64),
            pc.filter(h, ok).to_numpy(zero_copy_only=False).astype(np.float64))


class ShardRows:
    """Totals over every attempted sample of every shard."""

    def __init__(self):
        self.status = Counter()
        self.reasons = Counter()  # (status, reason) → n
        self.hist = {
            "original_width": Histogram(SIZE_EDGES), "original_height": Histogram(SIZE_EDGES),
            "width": Histogram(SIZE_EDGES), "height": Histogram(SIZE_EDGES),
            "original_aspect": Histogram(ASPECT_EDGES), "aspect": Histogram(ASPECT_EDGES),
            "original_min_side_all": Histogram(SIZE_EDGES),
        }
        self.chars, self.words = Histogram(CHAR_EDGES), Histogram(WORD_EDGES)
        self.empty_captions = 0
        self.query_hits = np.zeros(0, dtype=np.int64)  # successes per query id
        self.with_query, self.query_links, self.bad_query_ids = 0, 0, 0

    def add(self, batch: pa.RecordBatch) -> None:
        status = pc.fill_null(_column(batch, "status", pa.string()), "unknown")
        for item in pc.value_counts(status).to_pylist():
            self.status[item["values"]] += item["counts"]
        self._add_reasons(status, _column(batch, "error_message", pa.string()))
        ow, oh = (_column(batch, n, pa.int32()) for n in ("original_width", "original_height"))
        w_all, h_all = _sizes(ow, oh)
        self.hist["original_min_side_all"].add(np.minimum(w_all, h_all))
        ok = pc.equal(status, "success")
        if not pc.any(ok).as_py():
            return
        good = batch.filter(ok)
        for prefix in ("original_", ""):
            w, h = _sizes(*(_column(good, prefix + n, pa.int32()) for n in ("width", "height")))
            self.hist[prefix + "width"].add(w)
            self.hist[prefix + "height"].add(h)
            self.hist[prefix + "aspect"].add(w / h)
        self._add_captions(_column(good, "caption", pa.string()))
        self._add_queries(_column(good, "query_ids", pa.list_(pa.int32())))

    def _add_reasons(self, status: pa.Array, error: pa.Array) -> None:
        bad = pc.not_equal(status, "success")
        if not pc.any(bad).as_py():
            return
        first = pc.list_element(pc.split_pattern(pc.filter(error, bad), ":", max_splits=1), 0)
        reason = pc.fill_null(pc.utf8_trim_whitespace(first), "")
        reason = pc.if_else(pc.equal(reason, ""), "unknown", reason)
        table = pa.table({"status": pc.filter(status, bad), "reason": reason})
        for row in table.group_by(["status", "reason"]).aggregate([("reason", "count")]).to_pylist():
            self.reasons[(row["status"], row["reason"])] += row["reason_count"]

    def _add_captions(self, caption: pa.Array) -> None:
        caption = pc.fill_null(caption, "")
        chars = pc.utf8_length(caption).to_numpy(zero_copy_only=False)
        self.chars.add(chars)
        self.words.add(pc.count_substring_regex(caption, r"\S+").to_numpy(zero_copy_only=False))
        self.empty_captions += int((chars == 0).sum())

    def _add_queries(self, qids: pa.Array) -> None:
        lengths = pc.fill_null(pc.list_value_length(qids), 0).to_numpy(zero_copy_only=False)
        self.with_query += int((lengths > 0).sum())
        ids = pc.list_flatten(qids).drop_null().to_numpy(zero_copy_only=False).astype(np.int64)
        self.bad_query_ids += int((ids < 0).sum())
        ids = ids[ids >= 0]
        self.query_links += int(ids.size)
        if ids.size:
            counts = np.bincount(ids)
            if counts.size > self.query_hits.size:
                self.query_hits = np.pad(self.query_hits, (0, counts.size - self.query_hits.size))
            self.query_hits[: counts.size] += counts


def throughput(shards: list[dict]) -> dict:
    """Successes per minute over time from each shard's [start_time, end_time] (unix seconds).

    Each shard's successes are spread evenly over its own interval; overlapping shards add up, so
    the curve is a step function with a step at every shard start or end.
    """
    spans = []
    for s in shards:
        start, end, ok = s.get("start_time"), s.get("end_time"), s.get("successes")
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end, ok)) and end > start:
            spans.append((float(start), float(end), float(ok)))
    if not spans:
        return {"shards_timed": 0, "shards_untimed": len(shards)}
    t0, t1 = min(s[0] for s in spans), max(s[1] for s in spans)
    times = np.array(sorted({t for s in spans for t in s[:2]}))
    delta = np.zeros(times.size)
    for start, end, ok in spans:  # sweep: +rate where a shard starts, -rate where it ends
        rate = ok / (end - start) * 60.0
        delta[np.searchsorted(times, start)] += rate
        delta[np.searchsorted(times, end)] -= rate
    rates = np.clip(np.cumsum(delta)[:-1], 0.0, None)
    successes = sum(s[2] for s in spans)
    return {
        "shards_timed": len(spans), "shards_untimed": len(shards) - len(spans),
        "start_time": _num(t0), "end_time": _num(t1), "wall_seconds": round(t1 - t0, 3),
        "successes": int(successes),
        "successes_per_minute": round(successes / (t1 - t0) * 60.0, 3),
        "peak_successes_per_minute": round(float(rates.max()), 3),
        "step_minutes": [round(float(t - t0) / 60.0, 4) for t in times],
        "step_rates": [round(float(r), 3) for r in rates],
    }
