"""The report's header: which openwit, which build (settings, inputs, output) and an equivalent command.

The command is rebuilt from what the build recorded — the shards' settings (the fingerprinted
subset in each `_stats.json`), queries_meta.json (query list, t, balancing mode, oversample, seed)
and candidate_counts.json (input files) — so it is an `openwit-build` line that gives the same
shards, not necessarily the one typed: Beam options and flags outside the fingerprint (timeouts,
concurrency, tokenizer size) are not recorded and are left out. A setting the fingerprint leaves out
at the value every build had before it existed (images.IMPLIED_SETTINGS: `--resample box`,
`--decode-margin 2`, `--area-kernel opencv` with `--resample area`) is written out, so the command still gives those shards when the default moved.
"""
from __future__ import annotations

import datetime as dt
import shlex

from openwit.common.version import openwit_version
from openwit.pipeline.images.resizer import with_implied

# queries_meta.json's keys: how the list was balanced, and the candidate settings openwit-build
# records when they are not at their default (each the flag without its dashes)
BALANCE_KEYS = ("max_per_query", "balance", "oversample", "seed")
CANDIDATE_FLAGS = ("min_caption_chars", "max_caption_chars", "exclude_domains", "limit")
# a settings key is the flag without its dashes, except these: a False value is this flag
_NEGATED = {"respect_x_robots_tag": "--ignore-x-robots-tag"}


def utc(ts: float | None) -> str | None:
    """`2026-12-01 14:05:09 UTC` for unix seconds (None stays None)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def command(out_dir: str, settings: dict | None, balance: dict | None, inputs: list[str] | None,
            all_inputs_listed: bool = True) -> list[str]:
    """An openwit-build argument list giving the same candidates and shards (see the module doc)."""
    args = ["openwit-build"]
    balance = balance or {}
    if balance.get("queries"):
        args += ["--queries", str(balance["queries"])]
    if inputs:
        args += ["--input", *inputs] + ([] if all_inputs_listed else ["…"])
    args += ["--out", out_dir]
    for key in (*BALANCE_KEYS, *CANDIDATE_FLAGS):
        if key != "seed" and balance.get(key) is not None:  # the seed comes next, from either file
            args += [_flag(key), str(balance[key])]
    if settings:  # left out of the fingerprint = built with the implied value
        settings = with_implied(settings)
    seed = (settings or {}).get("seed", balance.get("seed"))
    if seed is not None:
        args += ["--seed", str(seed)]
    for key, value in sorted((settings or {}).items()):
        if key == "seed" or value is None or value == "inf":
            continue
        if key in _NEGATED:
            if value is False:
                args.append(_NEGATED[key])
            continue
        flag = _flag(key)
        if value is True:
            args.append(flag)
        elif value is not False:
            args += [flag, str(value)]
    return args


def _flag(key: str) -> str:
    """The command-line flag of a recorded setting: `max_per_query` → `--max-per-query`."""
    return "--" + key.replace("_", "-")


def build_info(out_dir: str, markers: list[dict], balance: dict | None, candidates: dict | None,
               throughput: dict) -> dict:
    settings = next((m["settings"] for m in markers if isinstance(m.get("settings"), dict)), None)
    inputs = (candidates or {}).get("inputs") or {}
    listed = list(inputs.get("listed") or [])
    args = command(out_dir, settings, balance, listed, len(listed) == inputs.get("files", len(listed)))
    return {
        "out": out_dir,
        "openwit_version": openwit_version(),
        "shard_stage_started": utc(throughput.get("start_time")),
        "shard_stage_ended": utc(throughput.get("end_time")),
        "queries": (balance or {}).get("queries"),
        "balance": {k: v for k, v in (balance or {}).items() if k in BALANCE_KEYS} or None,
        **({"candidate_settings": extra} if (extra := {k: v for k, v in (balance or {}).items()
                                                      if k not in BALANCE_KEYS and k != "queries"}) else {}),
        "inputs": inputs or None,
        "command": shlex.join(args),
    }
