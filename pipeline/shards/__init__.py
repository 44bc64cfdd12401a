"""Shards: balanced candidates → `{n:05d}.tar` + `.parquet` + `_stats.json` (img2dataset layout).

`FetchShards(cfg)` is the stage as one composite Beam transform (PlanShards → CheckPlan →
WriteShard → DedupShards); `run_shards` / `python -m openwit.pipeline.shards` run it alone on
candidate files. Modules: stage (Beam shell, CLI), config (settings + flags), plan (which
candidate goes where, fingerprints), check (a planned run against OUT), builder (fetch + images
for one shard at a time), sample (one sample's fate and records), spool (a shard's images past
256 MB wait in a temporary file), writer (the three files, read back), dedup (run-wide sha256 pass).

Its names are imported on first use, so that `python -m openwit.pipeline.shards` imports Beam
through `openwit.common.launch` (the GC paused) rather than while this package loads.
"""
import importlib

_WHERE = {
    "NS": "config", "ShardConfig": "config", "add_shard_flags": "config", "shard_config": "config",
    "CheckCandidates": "stage", "FetchShards": "stage", "PlanShards": "stage", "candidates_check": "stage",
    "main": "stage", "run_shards": "stage", "stage_config": "stage",
    "read_marker_file": "writer",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
