"""Shards: balanced candidates → `{n:05d}.tar` + `.parquet` + `_stats.json` (img2dataset layout).

`FetchShards(cfg)` is the stage as one composite Beam transform (PlanShards → CheckPlan →
WriteShard → DedupShards); `run_shards` / `python -m openwit.pipeline.shards` run it alone on
candidate files. Modules: stage (Beam shell, CLI), config (settings + flags), plan (which
candidate goes where, fingerprints), check (a planned run against OUT), builder (fetch + images
for one shard at a time), sample (one sample's fate and records), writer (the three files, read
back), dedup (run-wide sha256 pass).
"""
from openwit.pipeline.shards.config import NS, ShardConfig, add_shard_flags, shard_config
from openwit.pipeline.shards.stage import (CheckCandidates, FetchShards, PlanShards, candidates_check, main,
                                           run_shards, stage_config)
from openwit.pipeline.shards.writer import read_marker_file

__all__ = ["NS", "CheckCandidates", "FetchShards", "PlanShards", "ShardConfig", "add_shard_flags",
           "candidates_check", "main", "read_marker_file", "run_shards", "shard_config",
           "stage_config"]
