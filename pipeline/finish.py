"""After an openwit-build run: the shards' summary, the stats report and the tokenizer, in one place.

Both `openwit-build` and `python -m openwit.pipeline.shards` end here once their pipeline has run.
Local runs only: a remote runner's output is read where it lives (`openwit-stats gs://…`,
`openwit-loader tokenizer train`).
"""
from __future__ import annotations

import logging

from openwit.common import layout
from openwit.common.beamrun import is_local

log = logging.getLogger(__name__)
TOTALS = ("count", "successes", "failed_to_download", "failed_to_resize", "filtered")


def summarize(out: str) -> dict:
    """Totals over the committed shards' markers."""
    from openwit.pipeline.shards import read_marker_file

    totals = {"shards": 0, **{k: 0 for k in TOTALS}}
    for path in layout.marker_paths(out):
        stats = read_marker_file(path)
        totals["shards"] += 1
        for k in TOTALS:
            totals[k] += int(stats.get(k, 0))
    return totals


def finish_run(out: str, options, report: bool = True, tokenizer_vocab_size: int = 0) -> dict:
    """Log the shards' totals, train OUT/tokenizer.json on the captions (`tokenizer_vocab_size`
    tokens, 0 = none), then write OUT/report/ (`report`); returns the totals ({} on remote runners)."""
    if not is_local(options):
        return {}
    totals = summarize(out)
    if not totals["shards"]:
        log.warning("shards: no candidates, no shards written to %s", out)
    else:
        log.info("shards: %s", ", ".join(f"{k}={v}" for k, v in totals.items()))
    if tokenizer_vocab_size:  # before the report: it measures caption lengths in these tokens
        from openwit.loader.dataset_tokenizer import train_dataset_tokenizer

        train_dataset_tokenizer(out, tokenizer_vocab_size)
    if report and totals["shards"]:
        from openwit.pipeline.stats import write_report

        log.info("report: %s", write_report(out))
    return totals
