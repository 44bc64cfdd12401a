"""Checks of a planned shard run against what OUT already holds, done before any shard is written.

A shard committed in OUT must have been built with the same settings and the same candidates, and
OUT must hold no committed shard outside the plan; otherwise the run stops with one line. In the
pipeline the checks form one singleton (`CheckPlan`) that the shard writer takes as a side input,
so every check has passed before the first shard is written: a refused run leaves OUT untouched.
"""
from __future__ import annotations

import json

import apache_beam as beam

from openwit.common import layout
from openwit.common.beamrun import is_dry_run
from openwit.common.errors import UserError
from openwit.pipeline.shards import writer as sw
from openwit.pipeline.shards.config import ShardConfig
from openwit.pipeline.shards.builder import check_committed, check_planned
from openwit.pipeline.shards.plan import candidates_hash, settings_fingerprint


def check_existing(cfg: ShardConfig, options) -> None:
    """Fail fast in the driver when committed shards were built with other settings.

    Skipped for `--dry_run=True` (build the job only: no storage access, no credentials)."""
    if is_dry_run(options):
        return
    for path in layout.marker_paths(cfg.out)[:1]:
        stats = sw.read_marker_file(path)
        if stats.get("settings") != json.loads(json.dumps(cfg.settings, default=str)):
            check_committed(stats, cfg, settings_fingerprint(cfg.settings, ""), stats.get("shard", 0))


def check_shard(element, cfg: ShardConfig) -> int:
    shard, items = element
    check_planned(cfg, shard, list(items))
    return shard


def check_no_other_shards(planned: list[int], out: str) -> int:
    """UserError when OUT holds committed shards this run would not write (other candidates)."""
    planned_set = set(planned)
    extra = [n for n in map(layout.shard_number, layout.marker_paths(out)) if n not in planned_set]
    if extra:
        raise UserError(f"{out} holds shard {layout.shard_name(extra[0], '')} but this run plans "
                        f"{len(planned)} shard(s): the candidates changed (different input or settings). "
                        f"Rerun with the original input, write to a new --out, or start over with --overwrite")
    return len(planned)


def check_candidates(element, out: str) -> int:
    """The committed shard holds exactly these candidates (compared by the candidates hash)."""
    shard, items = element
    old = sw.read_stats(out, shard)
    cand_hash = candidates_hash(c["uid"] for _, c in sorted(items, key=lambda x: x[0]))
    if old is not None and old.get("candidates_hash") != cand_hash:
        raise UserError(f"shard {shard:05d} in {out} was built from other candidates (different input or "
                        f"balancing settings). Rerun with the original settings, write to a new --out, or start over with "
                        f"--overwrite")
    return shard


class CheckPlan(beam.PTransform):
    """Planned shards → a singleton that exists once every planned shard passed `check` and OUT
    holds no committed shard outside the plan (a consumer taking it as a side input runs after
    all the checks)."""

    def __init__(self, check, out: str):
        super().__init__()
        self.check, self.out = check, out

    def expand(self, planned):
        return (planned
                | "CheckShard" >> beam.Map(self.check)
                | "PlannedShards" >> beam.combiners.ToList()
                | "CheckCommitted" >> beam.Map(check_no_other_shards, self.out))
