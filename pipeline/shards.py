"""Shard stage of openwit-build: balanced candidates → WebDataset tar + Parquet shards (img2dataset layout).

Beam shell only: plan (shard_plan) → one DoFn call per shard that fetches, resizes and writes it
(shard_fetch, shard_writer). Candidate metadata is shuffled twice (by hash bucket, then by shard);
image bytes never go through a shuffle. Rerunning resumes: committed shards are skipped when their
settings fingerprint matches, and the run stops with a one-line error naming the setting otherwise.

    python -m openwit.pipeline.shards --candidates 'OUT/candidates/*.parquet' --out OUT [flags] [beam flags]
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import logging
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import TestOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from openwit.common import layout
from openwit.common.beamrun import counters, is_local, pipeline_options
from openwit.common.errors import UserError, cli_main, setup_logging
from openwit.common.files import match_files
from openwit.common.outdir import check_out, out_lock
from openwit.common.progress import progress
from openwit.pipeline import shard_writer as sw
from openwit.pipeline.shard_check import all_checked, check_candidates, check_existing, check_shard
from openwit.pipeline.shard_config import ShardConfig, add_shard_flags, shard_config
from openwit.pipeline.shard_dedup import add_dedup_pass
from openwit.pipeline.shard_plan import bucket_of, bucket_offsets, rank_bucket, sort_hash

log = logging.getLogger("openwit.shards")
NS = "shards"
# Shards a worker builds at once: the next one downloads while the last URLs of the previous one
# (slow or timing-out hosts) finish and while it is written. Memory: this many shards' images.
SHARDS_IN_FLIGHT = 2


class WriteShardFn(beam.DoFn):
    """(shard, [(index, candidate)]) → the shard's files; yields its stats. Loop/session made in setup.

    Up to SHARDS_IN_FLIGHT shards of a bundle are built at once (see ShardBuilder.submit); the
    stats of finished shards are yielded as they come, the rest in finish_bundle. Per-sample counts
    are gathered in the builder's thread and added to the Beam counters from the bundle's thread
    (Beam's metrics container is per thread), once per shard rather than per sample."""

    def __init__(self, cfg: ShardConfig):
        self.cfg = cfg

    def setup(self):
        from openwit.pipeline.shard_fetch import ShardBuilder
        self.builder = ShardBuilder(self.cfg)
        self._lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()

    def teardown(self):
        builder = getattr(self, "builder", None)
        if builder is not None:
            builder.close()

    def start_bundle(self):
        self._pending: list[Future] = []

    def _count(self, sample: dict) -> None:
        with self._lock:
            self._counts[sample["status"]] += 1
            if sample.get("reason"):
                self._counts[f"reason_{sample['reason']}"] += 1
        if self.cfg.progress:
            progress("shards").add(samples=1, ok=int(sample["status"] == "success"))

    def _flush_counts(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, collections.Counter()
        for name, n in counts.items():
            Metrics.counter(NS, name).inc(n)

    def _finished(self, keep: int) -> Iterator[dict]:
        """Wait until at most `keep` shards are unfinished; the finished shards' stats."""
        while sum(not f.done() for f in self._pending) > keep:
            wait(self._pending, return_when=FIRST_COMPLETED)
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        self._flush_counts()
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:  # let the other shards end before the bundle fails (no stray writers)
            wait(self._pending)
            self._pending = []
            raise failed.exception()
        for f in done:
            action, stats = f.result()
            Metrics.counter(NS, f"shards_{action}").inc()
            yield stats

    def process(self, element, checked=None):
        shard, items = element
        try:
            self._pending.append(self.builder.submit(shard, list(items), self._count))
        except Exception:  # e.g. committed with other settings: let the running shards end first
            wait(self._pending)
            raise
        yield from self._finished(keep=SHARDS_IN_FLIGHT - 1)

    def finish_bundle(self):
        for stats in self._finished(keep=0):
            yield WindowedValue(stats, MIN_TIMESTAMP, [GlobalWindow()])


def _keyed(cand: dict, seed) -> tuple[int, tuple[int, dict]]:
    h = sort_hash(cand["uid"], seed)
    return bucket_of(h), (h, cand)


def _ranked(element, offsets: dict, samples_per_shard: int):
    bucket, members = element
    yield from rank_bucket(bucket, members, offsets[bucket], samples_per_shard)


def _plan(candidates: beam.PCollection, seed, samples_per_shard: int) -> beam.PCollection:
    """(shard, [(index, candidate)]) by hash rank (see shard_plan)."""
    keyed = candidates | "ShardHash" >> beam.Map(_keyed, seed)
    offsets = (keyed
               | "BucketCount" >> beam.combiners.Count.PerKey()
               | "BucketCounts" >> beam.combiners.ToDict()
               | "BucketOffsets" >> beam.Map(bucket_offsets))
    return (keyed
            | "GroupBucket" >> beam.GroupByKey()
            | "Rank" >> beam.FlatMap(_ranked, beam.pvalue.AsSingleton(offsets), samples_per_shard)
            | "GroupShard" >> beam.GroupByKey())


def _shard_transform(candidates: beam.PCollection, cfg: ShardConfig) -> beam.PCollection:
    """Plan, check every shard against OUT, then group per shard and build each; returns stats.
    WriteShard waits for the checks (a side input), so a refused run writes no shard."""
    planned = _plan(candidates, cfg.seed, cfg.samples_per_shard)
    checked = all_checked(planned, functools.partial(check_shard, cfg=cfg), cfg.out)
    stats = planned | "WriteShard" >> beam.ParDo(WriteShardFn(cfg), beam.pvalue.AsSingleton(checked))
    if cfg.dedup_sha256:  # run-wide pass over the written shards (see shard_dedup)
        add_dedup_pass(stats, cfg.out)
    return stats


def add_candidates_check(candidates: beam.PCollection, out: str, options) -> None:
    """`openwit-build --stage candidates` into an OUT with committed shards: refuse (before the
    candidate files are committed) when the new candidates are not the ones the shards hold,
    planned with the shards' own samples per shard and seed."""
    if options.view_as(TestOptions).dry_run:
        return
    out = out.rstrip("/")
    first = layout.marker_paths(out)[:1]
    if not first:
        return
    settings = sw.read_marker_file(first[0]).get("settings") or {}
    planned = _plan(candidates, settings.get("seed", 0), int(settings.get("samples_per_shard") or 10_000))
    all_checked(planned, functools.partial(check_candidates, out=out), out)


def _show_progress(cfg: ShardConfig) -> None:
    """Local runs: let the progress and per-shard lines through even when the CLI quiets INFO logs."""
    if cfg.progress:
        for name in (log.name, "openwit.pipeline.shard_fetch"):
            logging.getLogger(name).setLevel(logging.INFO)


def add_shard_stage(candidates: beam.PCollection, args: argparse.Namespace, beam_args: list[str]) -> None:
    """Add the shard stage to a pipeline that produces candidate dicts (openwit-build --stage all).

    After the pipeline has run, call `finish_shards(args.out, beam_args)` for the summary and report.
    """
    options = pipeline_options(beam_args)
    cfg = shard_config(args, local=is_local(options))
    check_existing(cfg, options)
    _show_progress(cfg)
    _shard_transform(candidates, cfg)


def summarize(out: str) -> dict:
    """Totals over the committed shards' stats."""
    totals = {"shards": 0, "count": 0, "successes": 0, "failed_to_download": 0, "failed_to_resize": 0,
              "filtered": 0}
    for path in layout.marker_paths(out):
        stats = sw.read_marker_file(path)
        totals["shards"] += 1
        for k in list(totals)[1:]:
            totals[k] += int(stats.get(k, 0))
    return totals


def finish_shards(out: str, beam_args: list[str], report: bool = True) -> dict:
    """Log the summary and, on local runs, write OUT/report/ with openwit's stats report."""
    totals = summarize(out) if is_local(pipeline_options(beam_args)) else {}
    if totals and not totals["shards"]:
        log.warning("shards: no candidates, no shards written to %s", out)
    elif totals and report:
        log.info("shards: %s", ", ".join(f"{k}={v}" for k, v in totals.items()))
        try:
            from openwit.pipeline.stats import write_report
        except ImportError:
            log.warning("stats report not available (openwit.pipeline.stats missing)")
        else:
            log.info("report: %s", write_report(out))
    elif totals:
        log.info("shards: %s", ", ".join(f"{k}={v}" for k, v in totals.items()))
    return totals


def run_shards(candidate_rows_or_glob: str | Iterable[dict], out: str, args: argparse.Namespace,
               beam_args: list[str]) -> dict:
    """Run the shard stage alone on candidate rows or a Parquet glob; returns the summary totals.
    Everything is checked before OUT is touched; OUT is held (common.outdir) while the job runs."""
    check_out(out)
    args = argparse.Namespace(**{**vars(args), "out": out})
    options = pipeline_options(beam_args)
    cfg = shard_config(args, local=is_local(options))
    check_existing(cfg, options)
    _show_progress(cfg)
    dry_run = options.view_as(TestOptions).dry_run
    if isinstance(candidate_rows_or_glob, str) and not dry_run:
        if not match_files(candidate_rows_or_glob):
            raise UserError(f"no candidate files match {candidate_rows_or_glob}")
    p = beam.Pipeline(options=options)
    if isinstance(candidate_rows_or_glob, str):
        cands = p | "ReadCandidates" >> beam.io.ReadFromParquet(candidate_rows_or_glob)
    else:
        cands = p | "Candidates" >> beam.Create(list(candidate_rows_or_glob), reshuffle=False)
    _shard_transform(cands, cfg)
    with contextlib.nullcontext() if dry_run else out_lock(out):
        result = p.run()
        result.wait_until_finish()
        totals = finish_shards(out, beam_args, report=getattr(args, "report", True))
    if totals:
        totals["counters"] = counters(result, NS)
    return totals


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openwit.pipeline.shards", description=__doc__.split("\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--candidates", required=True, help="candidate Parquet file(s): path or glob")
    parser.add_argument("--out", required=True, help="output folder (local, gs://, s3://)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--no-report", dest="report", action="store_false", help="skip OUT/report/ at the end")
    add_shard_flags(parser)
    args, beam_args = parser.parse_known_args(argv)
    setup_logging(args.verbose)
    run_shards(args.candidates, args.out, args, beam_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
