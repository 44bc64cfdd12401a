"""After an openwit-build run: the tokenizer, the stats report and the run's final summary, in one place.

Both `openwit-build` and `python -m openwit.pipeline.shards` end here once their pipeline has run.
The tokenizer and the report are made on local runs only: a remote runner's output is read where it
lives (`openwit-stats gs://…`, `openwit-loader tokenizer train`). `openwit-build` also prints one
summary at the very end (`summary_lines`): the candidates funnel (OUT/candidate_counts.json), the
shards written / skipped because an earlier run had committed them (a resumed run) / failed, the
samples, the wall time, and as the last line the absolute path of report.html.
"""
from __future__ import annotations

import logging
import os
import time

from openwit.common import layout
from openwit.common.beamrun import counters, is_local
from openwit.common.outdir import display_path

log = logging.getLogger(__name__)
TOTALS = ("count", "successes", "failed_to_download", "failed_to_resize", "filtered")
TOP_REASONS = 5  # failure reasons named in the summary (all of them are in the report)
SHOWN_RANGES = 8  # shard ranges named in the summary's skipped list


def summarize(out: str) -> dict:
    """Totals over the committed shards' markers."""
    from openwit.pipeline.shards import read_marker_file

    totals = {"shards": 0, **{k: 0 for k in TOTALS}, "reasons": {}}
    for path in layout.marker_paths(out):
        stats = read_marker_file(path)
        totals["shards"] += 1
        for k in TOTALS:
            totals[k] += int(stats.get(k, 0))
        for reason, n in (stats.get("status_dict") or {}).items():
            totals["reasons"][reason] = totals["reasons"].get(reason, 0) + int(n)
    return totals


def reason_lines(attempted: int, ok: int, reasons: dict[str, int]) -> list[str]:
    """The most frequent reasons samples were not kept; when nothing was downloaded and the network
    itself failed (names that do not resolve, refused connections, timeouts), what to check."""
    from openwit.pipeline.fetch.rules import NETWORK_REASONS, OFFLINE_QUESTION  # imports aiohttp: at the end only

    if not reasons:
        return []
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{k} {_n(v)}" for k, v in top[:TOP_REASONS])
    more = f", {len(top) - TOP_REASONS} more in the report" if len(top) > TOP_REASONS else ""
    lines = [f"  why not kept: {shown}{more}"]
    network = sum(v for k, v in reasons.items() if k in NETWORK_REASONS)
    if attempted and not ok and network == attempted:
        failed = ", ".join(k for k, _ in top if k in NETWORK_REASONS)
        lines.append(f"  nothing was downloaded and every attempt failed on the network ({failed}): {OFFLINE_QUESTION} "
                     "Rerun the same command with --retry-failed once it is online")
    return lines


def finish_run(out: str, options, report: bool = True, tokenizer_vocab_size: int = 0, *, result=None,
               started: float | None = None, stage: str = "all") -> dict:
    """Train OUT/tokenizer.json on the captions (`tokenizer_vocab_size` tokens, 0 = none), then write
    OUT/report/ (`report`); returns the shards' totals ({} on remote runners).

    With `started` (the run's `time.time()` at its start; openwit-build) also print the run's
    summary (`summary_lines`, using the finished pipeline `result`'s counters); `stage`
    "candidates" makes neither tokenizer nor report."""
    local = is_local(options)
    totals: dict = {}
    tokenizer = report_file = None
    if local and stage == "all":
        log.setLevel(logging.INFO)
        totals = summarize(out)
        if not totals["shards"]:
            log.warning("shards: no candidates, no shards written to %s", out)
        elif started is None:
            log.info("shards: %s", ", ".join(f"{k}={v}" for k, v in totals.items() if k != "reasons"))
        if tokenizer_vocab_size and totals["successes"]:  # before the report: it measures captions in these tokens
            tokenizer = _train_tokenizer(out, tokenizer_vocab_size, totals["successes"])
        elif tokenizer_vocab_size and totals["shards"]:
            log.warning("tokenizer: no sample in the dataset, so no tokenizer.json")
        if report and totals["shards"]:
            from openwit.pipeline.stats import write_report

            log.info("report: reading %s for the statistics report ...", _plural(totals["shards"], "shard"))
            report_file = layout.join(write_report(out), "report.html")
            log.info("report: %s", report_file)
    if started is not None:
        print("\n".join(summary_lines(out, options, result, started, stage, totals, tokenizer, report_file,
                                      report, tokenizer_vocab_size)), flush=True)
    return totals


def _train_tokenizer(out: str, vocab_size: int, successes: int) -> str | None:
    from openwit.loader.dataset_tokenizer import MAX_CAPTIONS, train_dataset_tokenizer

    n = min(successes, MAX_CAPTIONS)
    log.info("tokenizer: training a %s-token byte-level BPE on %s → %s (--tokenizer-vocab-size 0 skips this) ...",
             f"{vocab_size:,}", _plural(n, "caption"), layout.tokenizer_path(out))
    t0 = time.monotonic()
    path = train_dataset_tokenizer(out, vocab_size)
    if path:
        log.info("tokenizer: done in %.1f s", time.monotonic() - t0)
    return path


# --- the final summary ------------------------------------------------------------------------------
def _n(x) -> str:
    return f"{int(x or 0):,}"


def _plural(n, word: str) -> str:
    """`1 input file`, `7 input files`."""
    return f"{_n(n)} {word}{'' if int(n or 0) == 1 else 's'}"


def shard_ranges(numbers: list[int], shown: int = SHOWN_RANGES) -> str:
    """[0, 1, 2, 5] → `00000-00002, 00005` (the first `shown` ranges, then `…`)."""
    ranges: list[list[int]] = []
    for n in sorted(numbers):
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    text = [layout.shard_name(a, "") + ("" if a == b else "-" + layout.shard_name(b, "")) for a, b in ranges[:shown]]
    return ", ".join(text) + (", …" if len(ranges) > shown else "")


def skipped_shards(out: str, started: float) -> list[int]:
    """Committed shards of a local OUT that this run did not write: their timing record (or, for
    folders without one, their marker's mtime) is older than the run's start."""
    skipped = []
    for path in layout.marker_paths(out):
        n = layout.shard_number(path)
        timing = layout.read_json(layout.timing_path(out, n)) or {}
        begun = timing.get("start_time")
        if not isinstance(begun, (int, float)):
            try:
                begun = os.path.getmtime(path)
            except OSError:
                continue
        if begun < started - 1e-3:
            skipped.append(n)
    return skipped


def candidate_lines(counts: dict | None) -> list[str]:
    """The candidates funnel (OUT/candidate_counts.json) in two lines."""
    if not counts:
        return ["candidates: no candidate_counts.json in OUT (a build from before it existed)"]
    inputs = counts.get("inputs") or {}
    bad = int(inputs.get("bad_files") or 0)
    files = _plural(inputs.get("files"), "input file") + (f" ({bad} bad, see the warnings)" if bad else "")
    steps = [f"{_n(counts.get('records_read'))} records read", f"{_n(counts.get('extracted'))} extracted",
             f"{_n(counts.get('unique'))} unique", f"{_n(counts.get('matched'))} matched a query",
             f"{_n(counts.get('kept'))} kept by balancing"]
    if counts.get("limit"):
        steps.append(f"{_n(int(counts['kept']) - int(counts.get('over_limit', 0)))} taken (--limit {counts['limit']})")
    lines = [f"candidates: {files}, " + " → ".join(steps)]
    drops = sorted((counts.get("extract_drops") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    parts = []
    if drops:
        parts.append("at extraction " + ", ".join(f"{k} {_n(v)}" for k, v in drops if v))
    for key, words in (("duplicates", "duplicate (url, caption)"), ("no_match", "no query matched"),
                       ("balanced_out", "balanced out"), ("over_limit", "over --limit")):
        if counts.get(key):
            parts.append(f"{words} {_n(counts[key])}")
    if parts:
        lines.append("  dropped: " + "; ".join(parts))
    return lines


def summary_lines(out: str, options, result, started: float, stage: str, totals: dict,
                  tokenizer: str | None, report_file: str | None, report: bool = True,
                  tokenizer_vocab_size: int = 0) -> list[str]:
    """openwit-build's last words: what it did, how long it took, and what to open first (last line)."""
    from openwit.pipeline.shards import NS
    from openwit.pipeline.stats.units import duration

    local = is_local(options)
    lines = [f"openwit-build: done in {duration(time.time() - started)} → {display_path(out)}"]
    try:  # a remote OUT without credentials here must not spoil the end of a run that succeeded
        counts = layout.read_json(layout.join(out, layout.CANDIDATE_COUNTS))
    except Exception as e:  # noqa: BLE001
        log.warning("could not read %s: %s", layout.join(out, layout.CANDIDATE_COUNTS), e)
        counts = None
    lines += candidate_lines(counts)
    if stage == "candidates":
        lines.append("shards: none (--stage candidates); the same command without it downloads them")
        lines.append("candidates (Parquet):")
        lines.append(display_path(layout.candidates_dir(out)) + "/")
        return lines
    shard_counts = counters(result, NS) if result is not None else {}
    written, retried = shard_counts.get("shards_written", 0), shard_counts.get("shards_retried", 0)
    skipped_n = shard_counts.get("shards_skipped", 0)
    shards = f"shards: {_n(written)} written"
    if local:
        skipped = skipped_shards(out, started)
        skipped_n = max(skipped_n, len(skipped))
        shards += f", {_n(skipped_n)} skipped"
        if skipped:
            shards += f" (resumed: {shard_ranges(skipped)} were committed by an earlier run with these settings)"
    else:
        shards += f", {_n(skipped_n)} skipped" + (" (committed by an earlier run: resumed)" if skipped_n else "")
    if retried:
        shards += f", {_n(retried)} retried (--retry-failed)"
    failed = layout.list_shards(out)[1] if local else []
    shards += f", {len(failed)} failed" + (f" ({shard_ranges(failed)} not committed: rerun the same command to "
                                            f"build them)" if failed else "")
    if local:
        shards += f"; {_n(totals.get('shards'))} in OUT"
    lines.append(shards)
    if local and totals.get("shards"):
        attempted, ok = int(totals["count"]), int(totals["successes"])
        share = f" ({100 * ok / attempted:.1f}%)" if attempted else ""
        fails = ", ".join(f"{k} {_n(totals[k])}" for k in TOTALS[2:])
        lines.append(f"samples: {_n(attempted)} attempted, {_n(ok)} in the dataset{share}; {fails}")
        lines += reason_lines(attempted, ok, totals.get("reasons") or {})
    elif not local:
        ok = shard_counts.get("success", 0)
        fails = ", ".join(f"{k} {_n(shard_counts.get(k, 0))}" for k in TOTALS[2:])
        lines.append(f"samples downloaded by this run: {_n(ok)} in the dataset; {fails}")
    if tokenizer:
        lines.append(f"tokenizer: {display_path(tokenizer)} ({tokenizer_vocab_size:,} tokens)")
    elif local and totals.get("shards"):
        lines.append("tokenizer: none (" + ("--tokenizer-vocab-size 0)" if not tokenizer_vocab_size
                                            else "no sample in the dataset to train it on)"))
    if not local:
        lines.append(f"report and tokenizer: not made for a remote run; make them with: openwit-stats {out}  and  "
                     f"openwit-loader tokenizer train --shards '{layout.join(out, '{00000..NNNNN}.tar')}'")
    elif report_file:
        lines.append("report (open this first):")
        lines.append(display_path(report_file))
    elif not totals.get("shards"):
        lines.append("report: none (no shards: no candidate was kept, see the candidates line)")
    else:
        lines.append(f"report: none (--no-report); make it with: openwit-stats {display_path(out)}")
    return lines
