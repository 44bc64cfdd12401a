"""Run-wide exact de-duplication by sha256 (`--dedup-sha256`), after the shards are written.

One rule, the one `shard_sample.dedup_by_sha256` applies inside a shard, lifted to the whole run:
of all successes with the same image sha256, the first in (shard, key) order stays; every other
one becomes `filtered` with `error_message` "duplicate_sha256: same image as FIRST". The per-shard
pass already did this inside each shard (cheaply, before the first write); this pass catches the
copies in other shards and re-points in-shard duplicates whose first is itself a duplicate now.

Beam shell (`DedupShards`): each shard's stats → its (sha256, (shard, key, named)) records, read
from the shard's Parquet (4 columns; skipped, retried and fresh shards alike) → group by sha256 →
`plan_group` yields the changes → co-grouped with the stats by shard → `rewrite_shard` once per
affected shard. Only keys and hashes are shuffled, never image bytes.

Crash safety: `rewrite_shard` writes through `shard_writer.write_shard`, which removes the stats
marker first and writes it last. A run killed mid-rewrite leaves that shard uncommitted, so the
rerun rebuilds it and this pass then rewrites it again: the same bytes as an uninterrupted run.
A run killed before the pass finds the shards committed and still duplicated: the rerun skips
them and the pass dedups them. After the pass no duplicate is a success: a rerun changes nothing.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from openwit.pipeline.shards import writer as sw
from openwit.pipeline.shards.config import NS
from openwit.pipeline.shards.sample import mark_duplicate, sample_from_row
from openwit.pipeline.shards.spool import Spool

REASON = "duplicate_sha256"
Record = tuple[int, str, "str | None"]  # (shard, key, first key it is filed as a duplicate of; None: success)


def records(rows: Iterable[dict], shard: int) -> Iterator[tuple[str, Record]]:
    """(sha256, (shard, key, named)) for every success and every sha256 duplicate of one shard."""
    for r in rows:
        msg = r.get("error_message") or ""
        if not r.get("sha256"):
            continue
        if r["status"] == "success":
            yield r["sha256"], (shard, r["key"], None)
        elif r["status"] == "filtered" and msg.startswith(f"{REASON}:"):
            yield r["sha256"], (shard, r["key"], msg.rsplit(" ", 1)[-1])


def plan_group(sha256: str, group: Iterable[Record]) -> Iterator[tuple[int, tuple[str, str]]]:
    """(shard, (key, first key)) for each record of one sha256 that is not yet what the rule says.

    `group` is iterated twice (Beam's grouped values are re-iterable), so a hot hash (a placeholder
    image on a million pages) is never held as a list."""
    first = min(((shard, key) for shard, key, named in group if named is None), default=None)
    if first is None:
        return  # only duplicates left (cannot happen: a duplicate's first is never removed)
    for shard, key, named in group:
        if (shard, key) != first and named != first[1]:
            yield shard, (key, first[1])


def shard_records(stats: dict, out: str) -> Iterator[tuple[str, Record]]:
    """Read the needed columns of a written shard's Parquet (local, gs://, s3://)."""
    shard = int(stats["shard"])
    yield from records(sw.read_rows(out, shard, ["key", "status", "sha256", "error_message"]), shard)


def rewrite_shard(out: str, shard: int, stats: dict, marks: dict[str, str]) -> tuple[dict, int]:
    """Mark `marks` (key → first key) as duplicates in one shard and rewrite its three files.

    Returns (new stats, successes removed). Tolerates a tar already rewritten by a failed attempt
    (the marked keys are simply not found there). Stats keep the shard's fingerprint: a rerun
    skips the shard."""
    rows = sw.read_rows(out, shard)
    samples = [mark_duplicate(sample_from_row(r), marks[r["key"]]) if r["key"] in marks else sample_from_row(r)
               for r in rows]
    removed = sum(r["key"] in marks and r["status"] == "success" for r in rows)
    with Spool() as spool:
        sw.attach_images(out, shard, samples, spool.keep)
        new = sw.shard_stats(shard, samples, stats["fingerprint"], stats["settings"], stats["candidates_hash"])
        sw.write_shard(out, shard, samples, new)
    return new, removed


class RewriteShardFn(beam.DoFn):
    """(shard, {"stats": [stats], "marks": [(key, first)]}) → rewritten shard; yields its new stats."""

    def __init__(self, out: str):
        self.out = out

    def process(self, element):
        shard, joined = element
        marks, stats = dict(joined["marks"]), list(joined["stats"])
        if not marks or not stats:
            return
        new, removed = rewrite_shard(self.out, shard, stats[0], marks)
        Metrics.counter(NS, f"reason_{REASON}").inc(removed)
        Metrics.counter(NS, "shards_deduped").inc()
        yield new


def _by_shard(stats: dict) -> tuple[int, dict]:
    return int(stats["shard"]), stats


class DedupShards(beam.PTransform):
    """Written shards' stats → the whole run deduplicated by sha256; returns the rewritten shards' stats."""

    def __init__(self, out: str):
        super().__init__()
        self.out = out

    def expand(self, stats):
        marks = (stats
                 | "Records" >> beam.FlatMap(shard_records, self.out)
                 | "GroupBySha256" >> beam.GroupByKey()
                 | "Plan" >> beam.FlatMapTuple(plan_group))
        keyed = stats | "StatsByShard" >> beam.Map(_by_shard)
        return ({"stats": keyed, "marks": marks}
                | "Join" >> beam.CoGroupByKey()
                | "Rewrite" >> beam.ParDo(RewriteShardFn(self.out)))
