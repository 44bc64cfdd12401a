"""Streaming aggregation of shard Parquet rows: a few numbers per record batch, nothing per row kept.

`ShardRows.add(batch)` folds one Arrow record batch (statuses, reasons, sizes, captions, URLs,
image hashes, query ids) into counters, fine fixed-bin distributions (stats.dist), per-domain
tables (stats.domains) and duplicate counters (stats.distinct), so memory follows distinct
domains and hashes, not rows. Fixed bins and exact counters make the result independent of batch
and shard boundaries; the only rows kept are a deterministic 1-in-k sample of captions for the
token-length estimate (at most `TOKEN_SAMPLE`).
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openwit.pipeline.stats.dist import Dist, num
from openwit.pipeline.stats.distinct import Distinct, hash_strings
from openwit.pipeline.stats.domains import DomainTally

COLUMNS = ("url", "status", "error_message", "width", "height", "original_width", "original_height",
           "caption", "query_ids", "sha256", "original_format", "original_bytes", "image_bytes")
TOKEN_SAMPLE = 10_000  # captions tokenized for the token-length estimate (±0.2% on a 2% share)
SIZES = (("original_width", "int"), ("original_height", "int"), ("width", "int"), ("height", "int"),
         ("original_aspect", "ratio"), ("aspect", "ratio"), ("original_min_side_all", "int"))


def _column(batch: pa.RecordBatch, name: str, kind: pa.DataType) -> pa.Array:
    """The batch's column, or an all-null column when the file lacks it (older writers)."""
    i = batch.schema.get_field_index(name)
    return batch.column(i) if i >= 0 else pa.nulls(batch.num_rows, kind)


def _sizes(w: pa.Array, h: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    ok = pc.and_(pc.and_(pc.is_valid(w), pc.is_valid(h)), pc.and_(pc.greater(w, 0), pc.greater(h, 0)))
    ok = pc.fill_null(ok, False)
    return (pc.filter(w, ok).to_numpy(zero_copy_only=False).astype(np.float64),
            pc.filter(h, ok).to_numpy(zero_copy_only=False).astype(np.float64))


def reasons_of(status: pa.Array, error: pa.Array) -> pa.Array:
    """Each row's failure reason (`error_message` up to the first ':'), null for successes and
    "unknown" for a failure without one."""
    first = pc.list_element(pc.split_pattern(pc.fill_null(error, ""), ":", max_splits=1), 0)
    reason = pc.utf8_trim_whitespace(first)
    reason = pc.if_else(pc.equal(reason, ""), "unknown", reason)
    return pc.if_else(pc.equal(status, "success"), pa.scalar(None, pa.string()), reason)


class ShardRows:
    """Totals over every attempted sample of every shard.

    `source_of[i]`: the source code (index into the report's source names) of query id i, for
    counting successes per query source; `caption_stride`: every k-th success's caption is kept
    for the token-length estimate."""

    def __init__(self, source_of: np.ndarray | None = None, caption_stride: int = 1):
        self.status = Counter()
        self.reasons = Counter()  # (status, reason) → n
        self.hist = {name: Dist(kind, "log") for name, kind in SIZES}
        self.chars, self.words = Dist("int"), Dist("int")
        self.entries = Dist("int")  # metadata entries matched per success
        self.empty_captions = 0
        self.query_hits = np.zeros(0, dtype=np.int64)  # successes per query id
        self.with_query, self.query_links, self.bad_query_ids = 0, 0, 0
        self.source_of = source_of
        n_sources = int(source_of.max()) + 1 if source_of is not None and source_of.size else 0
        self.source_samples = np.zeros(n_sources, dtype=np.int64)  # successes with ≥1 entry of the source
        self.urls, self.images, self.captions = Distinct(), Distinct(), Distinct()
        self.domains = DomainTally()
        self.caption_stride, self.successes_seen = max(1, int(caption_stride)), 0
        self.token_captions: list[str] = []
        self.formats = Counter()  # sniffed format of every downloaded file (status aside)
        self.original_bytes, self.image_bytes = Dist("int", "log"), Dist("int", "log")

    def add(self, batch: pa.RecordBatch) -> None:
        status = pc.fill_null(_column(batch, "status", pa.string()), "unknown")
        for item in pc.value_counts(status).to_pylist():
            self.status[item["values"]] += item["counts"]
        ok = pc.equal(status, "success")
        reason = reasons_of(status, _column(batch, "error_message", pa.string()))
        self._add_reasons(status, reason)
        url = _column(batch, "url", pa.string())
        if url.null_count < len(url):
            self.domains.add(url, ok, reason)
            self.urls.add(hash_strings(url), url)
        sha = _column(batch, "sha256", pa.string())
        has_sha = pc.fill_null(pc.not_equal(sha, ""), False)
        if pc.any(has_sha).as_py():
            self.images.add(hash_strings(pc.filter(sha, has_sha)), pc.filter(url, has_sha))
        ow, oh = (_column(batch, n, pa.int32()) for n in ("original_width", "original_height"))
        w_all, h_all = _sizes(ow, oh)
        self.hist["original_min_side_all"].add(np.minimum(w_all, h_all))
        self._add_files(batch, ok)
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

    def _add_files(self, batch: pa.RecordBatch, ok: pa.Array) -> None:
        """Downloaded files by sniffed format and size, written images by size (shards written before
        these columns existed add nothing)."""
        raw = _column(batch, "original_bytes", pa.int64())
        if raw.null_count == len(raw):
            return
        fmt = pc.fill_null(_column(batch, "original_format", pa.string()), "unknown")
        fmt = pc.filter(fmt, pc.is_valid(raw))
        for item in pc.value_counts(fmt).to_pylist():
            self.formats[item["values"]] += item["counts"]
        self.original_bytes.add(pc.drop_null(raw).to_numpy(zero_copy_only=False))
        written = pc.drop_null(pc.filter(_column(batch, "image_bytes", pa.int64()), ok))
        self.image_bytes.add(written.to_numpy(zero_copy_only=False))

    def _add_reasons(self, status: pa.Array, reason: pa.Array) -> None:
        bad = pc.is_valid(reason)
        if not pc.any(bad).as_py():
            return
        table = pa.table({"status": pc.filter(status, bad), "reason": pc.filter(reason, bad)})
        for row in table.group_by(["status", "reason"]).aggregate([("reason", "count")]).to_pylist():
            self.reasons[(row["status"], row["reason"])] += row["reason_count"]

    def _add_captions(self, caption: pa.Array) -> None:
        caption = pc.fill_null(caption, "")
        chars = pc.utf8_length(caption).to_numpy(zero_copy_only=False)
        self.chars.add(chars)
        self.words.add(pc.count_substring_regex(caption, r"\S+").to_numpy(zero_copy_only=False))
        self.empty_captions += int((chars == 0).sum())
        self.captions.add(hash_strings(caption), caption)
        n, k = len(caption), self.caption_stride
        first = (-self.successes_seen) % k  # global success index ≡ 0 (mod k)
        picked = np.arange(first, n, k)
        room = TOKEN_SAMPLE - len(self.token_captions)
        if picked.size and room > 0:
            self.token_captions += caption.take(pa.array(picked[:room])).to_pylist()
        self.successes_seen += n

    def _add_queries(self, qids: pa.Array) -> None:
        lengths = pc.fill_null(pc.list_value_length(qids), 0).to_numpy(zero_copy_only=False)
        self.with_query += int((lengths > 0).sum())
        self.entries.add(lengths)
        flat = pc.list_flatten(qids)
        ids = pc.fill_null(flat, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        rows = np.repeat(np.arange(lengths.size), lengths)
        self.bad_query_ids += int((ids < 0).sum()) - flat.null_count
        rows, ids = rows[ids >= 0], ids[ids >= 0]
        self.query_links += int(ids.size)
        if ids.size:
            counts = np.bincount(ids)
            if counts.size > self.query_hits.size:
                self.query_hits = np.pad(self.query_hits, (0, counts.size - self.query_hits.size))
            self.query_hits[: counts.size] += counts
        if self.source_samples.size and ids.size:
            n_src = self.source_samples.size
            inside = ids < self.source_of.size
            row, code = rows[inside], self.source_of[ids[inside]].astype(np.int64)
            pairs = np.unique(row[code >= 0] * n_src + code[code >= 0])  # (success, source) once each
            self.source_samples += np.bincount(pairs % n_src, minlength=n_src)


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
        "start_time": num(t0), "end_time": num(t1), "wall_seconds": round(t1 - t0, 3),
        "successes": int(successes),
        "successes_per_minute": round(successes / (t1 - t0) * 60.0, 3),
        "peak_successes_per_minute": round(float(rates.max()), 3),
        "successes_per_second": round(successes / (t1 - t0), 3),
        "peak_successes_per_second": round(float(rates.max()) / 60.0, 3),
        "step_minutes": [round(float(t - t0) / 60.0, 4) for t in times],
        "step_rates": [round(float(r), 3) for r in rates],
    }
