"""Dataset statistics for a built shard folder: `compute_stats` (numbers) and `write_report` (files).

`write_report(OUT)` writes `OUT/report/stats.json` (every number the report shows), `report.html`
(one self-contained page, no JavaScript) and the PNG plots beside it. Shards are read one at a time
and only the columns needed, in record batches, so a report over millions of rows stays small in
memory. The same inputs give byte-identical stats.json and PNGs (sorted keys, fixed histogram
edges, no timestamps but those read from the shards, PNGs without a Software/date tag).
"""
from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq

from openwit.common import layout
from openwit.common.atomic import atomic_write_bytes, atomic_write_text
from openwit.common.errors import UserError
from openwit.pipeline.stats.aggregate import COLUMNS, ShardRows, throughput
from openwit.pipeline.stats.per_query import query_stats

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


def _read_shard(shard: layout.Shard) -> tuple[dict, pa.Table]:
    """(marker, the needed Parquet columns) of one shard, read whole before anything is counted
    (a shard is ~10k rows), so a shard that breaks half-way adds nothing; BadShardFile names the file."""
    marker = layout.read_marker(shard.stats)
    try:
        with layout.open_read(shard.parquet) as f:
            pf = pq.ParquetFile(f)
            table = pf.read(columns=[c for c in COLUMNS if c in pf.schema_arrow.names])
    except (OSError, pa.ArrowException) as e:
        raise layout.BadShardFile(shard.parquet, f"cannot read the shard's Parquet ({str(e)[:200]})") from None
    return marker, table


def compute_stats(out_dir: str, skip_bad_shards: bool = False) -> dict:
    """All report numbers for the committed shards in out_dir (JSON-ready, deterministic).

    A committed shard whose marker or Parquet cannot be read stops it with one line naming the
    file; with `skip_bad_shards` it is left out, logged and listed under `shards.skipped`."""
    shards, uncommitted = layout.list_shards(out_dir)
    if not shards:
        raise UserError(f"no shard files (*.parquet with _stats.json) in {out_dir} — run openwit-build first")
    rows, markers, skipped = ShardRows(), [], []
    for shard in shards:
        try:
            marker, table = _read_shard(shard)
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
    return {
        "shards": {**_shard_summary(markers, uncommitted), "skipped": skipped},
        "samples": {
            "attempted": attempted, "successes": successes,
            "success_rate": round(successes / attempted, 6) if attempted else 0.0,
        },
        "status_counts": dict(sorted(rows.status.items())),
        "reason_counts": reasons,
        "throughput": throughput(markers),
        "image_sizes": {name: h.to_dict() for name, h in rows.hist.items()},
        "captions": {"chars": rows.chars.to_dict(), "words": rows.words.to_dict(),
                     "empty": rows.empty_captions},
        "queries": {
            **query_stats(out_dir, rows.query_hits, successes, rows.with_query, rows.query_links),
            "negative_query_ids": rows.bad_query_ids,
        },
    }


def write_report(out_dir: str, skip_bad_shards: bool = False) -> str:
    """Write OUT/report/{stats.json, report.html, *.png}; returns the report folder."""
    from openwit.pipeline.stats.page import render_html  # matplotlib only when a report is made
    from openwit.pipeline.stats.plots import render_plots

    stats = compute_stats(out_dir, skip_bad_shards)
    report = layout.report_dir(out_dir)
    plots = render_plots(stats)
    for name, png in plots.items():
        atomic_write_bytes(layout.join(report, name), png)
    atomic_write_text(layout.join(report, "stats.json"),
                      json.dumps(stats, sort_keys=True, indent=1, allow_nan=False, ensure_ascii=False) + "\n")
    atomic_write_text(layout.join(report, "report.html"), render_html(stats, sorted(plots)))
    return report
