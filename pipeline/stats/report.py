"""Dataset statistics for a built shard folder: `compute_stats` (numbers) and `write_report` (files).

`write_report(OUT)` writes `OUT/report/stats.json` (every number the report shows), `report.html`
(one page, no JavaScript: tables, the PNG plots beside it, the gallery's thumbnails embedded) and
the PNG plots. Shards are read one at a time and only the columns needed, in record batches, so a
report over millions of rows stays small in memory.

Determinism: stats.json depends only on OUT's files (shards, timing/, candidate_counts.json,
query_counts.parquet, queries_meta.json, tokenizer.json), the folder's path and the openwit
version — the same folder gives byte-identical stats.json and PNGs (sorted keys, fixed bins, PNGs
without a Software/date tag). report.html adds one thing that does not come from the data: the
time it was generated (UTC; `SOURCE_DATE_EPOCH` fixes it, as for reproducible builds).
"""
from __future__ import annotations

import json
import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq

from openwit.common import layout
from openwit.common.atomic import atomic_write_bytes, atomic_write_text
from openwit.common.errors import UserError
from openwit.pipeline.stats import funnel as funnel_mod
from openwit.pipeline.stats import gallery, header
from openwit.pipeline.stats.aggregate import COLUMNS, TOKEN_SAMPLE, ShardRows, throughput
from openwit.pipeline.stats.per_query import query_sources, query_stats, read_query_counts
from openwit.pipeline.stats.tokens import token_stats

BATCH_ROWS = 65_536
log = logging.getLogger(__name__)


def _settings_key(marker: dict) -> str | None:
    """What identifies a shard's build settings: its `settings` dict, else its fingerprint."""
    if isinstance(marker.get("settings"), dict):
        return json.dumps(marker["settings"], sort_keys=True, default=str)
    value = marker.get("settings_fingerprint", marker.get("fingerprint"))
    return None if value is None else str(value)


def _shard_summary(markers: list[dict], uncommitted: list[int]) -> dict:
    ids = [m["_shard"] for m in markers]
    variants = sorted({k for k in map(_settings_key, markers) if k is not None})
    first_settings = next((m["settings"] for m in markers if isinstance(m.get("settings"), dict)), None)
    return {
        "committed": len(markers), "uncommitted": uncommitted,
        "first": min(ids), "last": max(ids),
        "missing_in_range": sorted(set(range(min(ids), max(ids) + 1)) - set(ids))[:100],
        "settings_variants": len(variants),
        "settings": json.loads(json.dumps(first_settings, default=str)) if first_settings else None,
        "count_from_markers": sum(int(m.get("count", 0) or 0) for m in markers),
        "successes_from_markers": sum(int(m.get("successes", 0) or 0) for m in markers),
    }


def _read_shard(shard: layout.Shard) -> pa.Table:
    """The needed Parquet columns of one shard, read whole before anything is counted (a shard is
    ~10k rows), so a shard that breaks half-way adds nothing; BadShardFile names the file."""
    try:
        with layout.open_read(shard.parquet) as f:
            pf = pq.ParquetFile(f)
            return pf.read(columns=[c for c in COLUMNS if c in pf.schema_arrow.names])
    except (OSError, pa.ArrowException) as e:
        raise layout.BadShardFile(shard.parquet, f"cannot read the shard's Parquet ({str(e)[:200]})") from None


def _file_sizes(out_dir: str) -> dict[str, int]:
    """{file name: bytes} of OUT's top-level files and candidates/ (one listing each)."""
    from apache_beam.io.filesystems import FileSystems

    sizes = {}
    for pattern in (layout.join(out_dir, "*"), layout.join(layout.candidates_dir(out_dir), "*")):
        try:
            found = FileSystems.match([pattern])[0].metadata_list
        except Exception:  # noqa: BLE001 - nothing there (Beam raises its own error types)
            continue
        for m in found:
            rel = m.path[len(out_dir.rstrip("/")) + 1:] if m.path.startswith(out_dir.rstrip("/")) else m.path
            rel = rel.replace(os.sep, "/")
            if not rel.rsplit("/", 1)[-1].startswith("."):  # the run's lock, temporary files
                sizes[rel] = int(m.size_in_bytes)
    return sizes


def _disk(sizes: dict[str, int], shard_ids: list[int], successes: int) -> dict:
    ids = set(shard_ids)
    kinds = {"tar": 0, "parquet": 0, "markers": 0, "candidates": 0, "query_counts": 0, "tokenizer": 0, "other": 0}
    for name, n in sizes.items():
        shard = layout.shard_number(name)
        if shard is not None and shard in ids:
            kind = {layout.TAR: "tar", layout.PARQUET: "parquet", layout.MARKER: "markers"}[
                next(sfx for sfx in layout.SHARD_SUFFIXES if name.endswith(sfx))]
        elif name.startswith(layout.CANDIDATES_DIR + "/"):
            kind = "candidates"
        elif name == layout.QUERY_COUNTS:
            kind = "query_counts"
        elif name == layout.TOKENIZER:
            kind = "tokenizer"
        else:
            kind = "other"
        kinds[kind] += n
    kinds["shards"] = kinds["tar"] + kinds["parquet"] + kinds["markers"]
    kinds["total"] = sum(v for k, v in kinds.items() if k != "shards")
    kinds["tar_bytes_per_success"] = round(kinds["tar"] / successes, 1) if successes else None
    return kinds


def _per_shard(markers: list[dict], sizes: dict[str, int]) -> list[dict]:
    rows = []
    for m in markers:
        n, count, ok = m["_shard"], int(m.get("count", 0) or 0), int(m.get("successes", 0) or 0)
        start, end = m.get("start_time"), m.get("end_time")
        timed = isinstance(start, (int, float)) and isinstance(end, (int, float)) and end >= start
        rows.append({"shard": n, "attempted": count, "successes": ok,
                     "success_rate": round(ok / count, 6) if count else 0.0,
                     "tar_bytes": sizes.get(layout.shard_name(n, layout.TAR)),
                     "parquet_bytes": sizes.get(layout.shard_name(n, layout.PARQUET)),
                     "seconds": round(end - start, 3) if timed else None, "action": m.get("action")})
    return rows


def _duplicates(rows: ShardRows, reasons: dict) -> dict:
    removed = sum(n for by in reasons.values() for r, n in by.items() if r == "duplicate_sha256")
    return {"url": rows.urls.to_dict(), "sha256": rows.images.to_dict(), "caption": rows.captions.to_dict(),
            "removed_by_dedup_sha256": removed}


def _compute(out_dir: str, skip_bad_shards: bool, with_gallery: bool) -> tuple[dict, list[dict]]:
    shards, uncommitted = layout.list_shards(out_dir)
    if not shards:
        raise UserError(f"no shard files (*.parquet with _stats.json) in {out_dir} — run openwit-build first")
    query_table = read_query_counts(out_dir)
    sources = query_sources(out_dir, query_table)
    read: list[dict | layout.BadShardFile] = []  # markers are tiny: all first, for the caption sample's stride
    for shard in shards:
        try:
            read.append(layout.read_marker(shard.stats))
        except layout.BadShardFile as e:
            read.append(e)  # raised below, in the shard's turn
    expected = sum(int(m.get("successes", 0) or 0) for m in read if isinstance(m, dict))
    rows = ShardRows(source_of=sources[1], caption_stride=-(-expected // TOKEN_SAMPLE) if expected else 1)
    markers, skipped = [], []
    for shard, marker in zip(shards, read):
        try:
            if isinstance(marker, layout.BadShardFile):
                raise marker
            table = _read_shard(shard)
        except layout.BadShardFile as e:
            if not skip_bad_shards:
                raise UserError(f"{e} — rebuild it (delete {shard.stats} and rerun openwit-build) or pass "
                                f"--skip-bad-shards to report without it") from None
            log.warning("skipping shard %05d: %s", shard.shard, e)
            skipped.append({"shard": shard.shard, "file": e.path, "error": e.detail})
            continue
        timing = layout.read_json(layout.timing_path(out_dir, shard.shard)) or {}
        markers.append({**marker, **timing, "_shard": shard.shard})
        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
            rows.add(batch)
    if not markers:
        raise UserError(f"no readable shard in {out_dir}: all {len(skipped)} committed shards are damaged")
    attempted = sum(rows.status.values())
    successes = rows.status.get("success", 0)
    reasons: dict[str, dict[str, int]] = {}
    for (status, reason), n in sorted(rows.reasons.items()):
        reasons.setdefault(status, {})[reason] = n
    candidates = funnel_mod.read_candidate_counts(out_dir)
    balance = layout.read_json(layout.join(out_dir, layout.QUERIES_META))
    timing = throughput(markers)
    sizes = _file_sizes(out_dir)
    shard_ids = [m["_shard"] for m in markers]
    out_name = out_dir.rstrip("/") if "://" in out_dir else os.path.abspath(out_dir)
    picked = gallery.pick(out_dir, shard_ids) if with_gallery else []
    qstats = {**query_stats(out_dir, query_table, rows.query_hits, successes, rows.with_query, rows.query_links,
                            sources, rows.source_samples),
              "negative_query_ids": rows.bad_query_ids,
              "entries_per_success": rows.entries.to_dict()}
    queries_by_id = _query_names(query_table, {q for p in picked for q in p["query_ids"]})
    stats = {
        "build": header.build_info(out_name, markers, balance, candidates, timing),
        "shards": {**_shard_summary(markers, uncommitted), "skipped": skipped},
        "samples": {
            "attempted": attempted, "successes": successes,
            "success_rate": round(successes / attempted, 6) if attempted else 0.0,
        },
        "funnel": funnel_mod.funnel(candidates, attempted, successes, reasons),
        "status_counts": dict(sorted(rows.status.items())),
        "reason_counts": reasons,
        "throughput": timing,
        "image_sizes": {name: h.to_dict() for name, h in rows.hist.items()},
        "captions": {"chars": rows.chars.to_dict(), "words": rows.words.to_dict(), "empty": rows.empty_captions,
                     "tokens": token_stats(rows.token_captions, out_dir, successes)},
        "queries": qstats,
        "domains": rows.domains.to_dict(),
        "duplicates": _duplicates(rows, reasons),
        "disk": _disk(sizes, shard_ids, successes),
        "files": {"original_formats": dict(sorted(rows.formats.items(), key=lambda kv: (-kv[1], kv[0]))),
                  "original_bytes": rows.original_bytes.to_dict(), "image_bytes": rows.image_bytes.to_dict()},
        "per_shard": _per_shard(markers, sizes),
        "gallery": [{k: (v if k != "query_ids" else [queries_by_id.get(q, str(q)) for q in v])
                     for k, v in p.items() if k != "image"} for p in picked],
    }
    return stats, picked


def _query_names(table, ids: set[int]) -> dict[int, str]:
    if table is None or not ids or "query" not in table.column_names:
        return {}
    import pyarrow.compute as pc

    qid = table.column("query_id") if "query_id" in table.column_names else pa.array(range(table.num_rows))
    hit = table.filter(pc.is_in(qid, pa.array(sorted(ids), qid.type)))
    return dict(zip(hit.column("query_id").to_pylist(), hit.column("query").to_pylist()))


def compute_stats(out_dir: str, skip_bad_shards: bool = False) -> dict:
    """All report numbers for the committed shards in out_dir (JSON-ready, deterministic).

    A committed shard whose marker or Parquet cannot be read stops it with one line naming the
    file; with `skip_bad_shards` it is left out, logged and listed under `shards.skipped`."""
    return _compute(out_dir, skip_bad_shards, with_gallery=True)[0]


def write_report(out_dir: str, skip_bad_shards: bool = False, report_dir: str | None = None) -> str:
    """Write OUT/report/{stats.json, report.html, *.png} (or into `report_dir`); returns the report folder."""
    from openwit.pipeline.stats.page import render_html  # matplotlib only when a report is made
    from openwit.pipeline.stats.plots import render_plots

    stats, picked = _compute(out_dir, skip_bad_shards, with_gallery=True)
    report = (report_dir or layout.report_dir(out_dir)).rstrip("/")
    plots = render_plots(stats)
    for name, png in plots.items():
        atomic_write_bytes(layout.join(report, name), png)
    atomic_write_text(layout.join(report, "stats.json"), stats_json(stats))
    thumbs = [gallery.thumbnail(p["image"]) for p in picked]
    atomic_write_text(layout.join(report, "report.html"), render_html(stats, sorted(plots), thumbs))
    return report


def stats_json(stats: dict) -> str:
    return json.dumps(stats, sort_keys=True, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
