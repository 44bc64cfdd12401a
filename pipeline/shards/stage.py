"""Shard stage of openwit-build: balanced candidates → WebDataset tar + Parquet shards (img2dataset layout).

Beam shell only, as composite transforms: `FetchShards(cfg)` = PlanShards (plan.py: every
candidate's shard and index by hash rank) → CheckPlan (check.py: every planned shard against what
OUT holds, before any write) → WriteShard (one DoFn call per shard: builder.py fetches and resizes,
writer.py writes) → DedupShards (dedup.py, with --dedup-sha256). Candidate metadata is shuffled
twice (by hash bucket, then by shard); image bytes never go through a shuffle. Rerunning resumes:
committed shards are skipped when their settings fingerprint matches, and the run stops with a
one-line error naming the setting otherwise.

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
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from openwit.common import layout
from openwit.common.beamrun import counters, is_dry_run, is_local, new_pipeline, pipeline_options
from openwit.common.errors import UserError, cli_main, setup_logging
from openwit.common.files import match_files
from openwit.common.outdir import check_out, out_lock
from openwit.common.progress import progress
from openwit.pipeline.finish import finish_run
from openwit.pipeline.shards import writer as sw
from openwit.pipeline.shards.check import CheckPlan, check_candidates, check_existing, check_shard
from openwit.pipeline.shards.config import NS, ShardConfig, add_shard_flags, shard_config, usable_cores
from openwit.pipeline.shards.dedup import DedupShards
from openwit.pipeline.shards.plan import bucket_offsets, rank_bucket, sort_bucket, sort_hash

log = logging.getLogger(__name__)
# Shards a worker builds at once: the next ones download while the last URLs of the previous ones
# (slow or timing-out hosts) finish and while they are written. Memory: this many shards' images
# (each at most spool.HELD_BYTES in memory). 3 rather than 2: -22% wall with stalled hosts, the same
# CPU, no loss on clean ones (benchmarks/RESULTS.md).
SHARDS_IN_FLIGHT = 3


class WriteShardFn(beam.DoFn):
    """(shard, [(index, candidate)]) → the shard's files; yields its stats. Loop/session made in setup.

    Up to SHARDS_IN_FLIGHT shards of a bundle are built at once (see ShardBuilder.submit); the
    stats of finished shards are yielded as they come, the rest in finish_bundle. Per-sample counts
    are gathered in the builder's thread and added to the Beam counters from the bundle's thread
    (Beam's metrics container is per thread), once per shard rather than per sample."""

    def __init__(self, cfg: ShardConfig):
        self.cfg = cfg

    def setup(self):
        from openwit.pipeline.fetch.offline import OfflineWatch
        from openwit.pipeline.shards.builder import ShardBuilder
        self.builder = ShardBuilder(self.cfg)
        self._lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._offline = OfflineWatch()

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
        warning = self._offline.see(sample.get("reason"))
        if warning:
            log.warning("%s", warning)

    def _flush_counts(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, collections.Counter()
        for name, n in counts.items():
            Metrics.counter(NS, name).inc(n)

    def _finished(self, keep: int) -> Iterator[dict]:
        """Wait until at most `keep` shards are unfinished; the finished shards' stats."""
        while len(running := [f for f in self._pending if not f.done()]) > keep:
            wait(running, return_when=FIRST_COMPLETED)  # not on the finished ones: it would return at once
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


def _by_bucket(cand: dict, seed) -> tuple[int, tuple[int, dict]]:
    h = sort_hash(cand["uid"], seed)
    return sort_bucket(h), (h, cand)


def _ranked(element, offsets: dict, samples_per_shard: int):
    bucket, members = element
    yield from rank_bucket(bucket, members, offsets[bucket], samples_per_shard)


class PlanShards(beam.PTransform):
    """Candidates → (shard, [(index, candidate)]) by hash rank (see plan.py): the same plan as
    `plan.plan_in_memory`, in two small shuffles instead of a global sort."""

    def __init__(self, seed, samples_per_shard: int):
        super().__init__()
        self.seed, self.samples_per_shard = seed, samples_per_shard

    def expand(self, candidates):
        keyed = candidates | "ShardHash" >> beam.Map(_by_bucket, self.seed)
        offsets = (keyed
                   | "BucketCount" >> beam.combiners.Count.PerKey()
                   | "BucketCounts" >> beam.combiners.ToDict()
                   | "BucketOffsets" >> beam.Map(bucket_offsets))
        return (keyed
                | "GroupBucket" >> beam.GroupByKey()
                | "Rank" >> beam.FlatMap(_ranked, beam.pvalue.AsSingleton(offsets), self.samples_per_shard)
                | "GroupShard" >> beam.GroupByKey())


class FetchShards(beam.PTransform):
    """Candidates → shards written to `cfg.out`; returns each written (or skipped) shard's stats.
    Every planned shard is checked against OUT first: WriteShard takes the checks as a side
    input, so a refused run writes no shard."""

    def __init__(self, cfg: ShardConfig):
        super().__init__()
        self.cfg = cfg

    def expand(self, candidates):
        cfg = self.cfg
        planned = candidates | "Plan" >> PlanShards(cfg.seed, cfg.samples_per_shard)
        checked = planned | "Check" >> CheckPlan(functools.partial(check_shard, cfg=cfg), cfg.out)
        stats = planned | "WriteShard" >> beam.ParDo(WriteShardFn(cfg), beam.pvalue.AsSingleton(checked))
        if cfg.dedup_sha256:  # run-wide pass over the written shards (see dedup.py)
            _ = stats | "Dedup" >> DedupShards(cfg.out)
        return stats


class CheckCandidates(beam.PTransform):
    """`openwit-build --stage candidates` into an OUT with committed shards: refuse (before the
    candidate files are committed) when the new candidates are not the ones the shards hold,
    planned with the shards' own samples per shard and seed."""

    def __init__(self, out: str, seed, samples_per_shard: int):
        super().__init__()
        self.out, self.seed, self.samples_per_shard = out, seed, samples_per_shard

    def expand(self, candidates):
        planned = candidates | "Plan" >> PlanShards(self.seed, self.samples_per_shard)
        return planned | "Check" >> CheckPlan(functools.partial(check_candidates, out=self.out), self.out)


def candidates_check(out: str, options) -> CheckCandidates | None:
    """The CheckCandidates an OUT with committed shards needs (None: nothing to check, or a dry run)."""
    if is_dry_run(options):
        return None
    first = layout.marker_paths(out)[:1]
    if not first:
        return None
    settings = sw.read_marker_file(first[0]).get("settings") or {}
    return CheckCandidates(out.rstrip("/"), settings.get("seed", 0), int(settings.get("samples_per_shard") or 10_000))


def local_shard_workers(options) -> int:
    """How many WriteShard instances a local runner runs at once (`--direct_num_workers N` with
    multi_threading/multi_processing; 0 means one per core), so that their image workers share the cores."""
    from apache_beam.options.pipeline_options import DirectOptions

    direct = options.view_as(DirectOptions)
    if (direct.direct_running_mode or "in_memory") == "in_memory":
        return 1
    return direct.direct_num_workers or usable_cores()


def stage_config(args: argparse.Namespace, options) -> ShardConfig:
    """The shard stage's settings for this run, checked against OUT's committed shards (driver side);
    local runs let the progress and per-shard lines through even when the CLI quiets INFO logs."""
    cfg = shard_config(args, local=is_local(options), local_processes=local_shard_workers(options))
    check_existing(cfg, options)
    if cfg.progress:
        for name in ("openwit.pipeline.shards", "openwit.pipeline.finish"):
            logging.getLogger(name).setLevel(logging.INFO)
    return cfg


def run_shards(candidate_rows_or_glob: str | Iterable[dict], out: str, args: argparse.Namespace,
               beam_args: list[str]) -> dict:
    """Run the shard stage alone on candidate rows or a Parquet glob; returns the summary totals.
    Everything is checked before OUT is touched; OUT is held (common.outdir) while the job runs."""
    check_out(out)
    args = argparse.Namespace(**{**vars(args), "out": out})
    options = pipeline_options(beam_args)
    cfg = stage_config(args, options)
    dry_run = is_dry_run(options)
    if isinstance(candidate_rows_or_glob, str) and not dry_run:
        if not match_files(candidate_rows_or_glob):
            raise UserError(f"no candidate files match {candidate_rows_or_glob}")
    with new_pipeline(options) as p:
        if isinstance(candidate_rows_or_glob, str):
            cands = p | "ReadCandidates" >> beam.io.ReadFromParquet(candidate_rows_or_glob)
        else:
            cands = p | "Candidates" >> beam.Create(list(candidate_rows_or_glob), reshuffle=False)
        _ = cands | "FetchShards" >> FetchShards(cfg)
        with contextlib.nullcontext() if dry_run else out_lock(out):
            result = p.run()
            result.wait_until_finish()
            totals = finish_run(out, options, report=getattr(args, "report", True))
    if totals:
        totals["counters"] = counters(result, NS)
    return totals


@cli_main(interrupted="interrupted: committed shards are kept; the same command resumes")
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
