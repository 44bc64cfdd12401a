"""Stats: numbers and the report for a built shard folder (`openwit-stats OUT` → OUT/report/).

`compute_stats(OUT)` gives every number (JSON-ready, deterministic); `write_report(OUT)` writes
stats.json, report.html and the PNG plots. Modules: report (compute + write), aggregate (streaming
per-batch counters and histograms), per_query (MetaCLIP head/tail table, balance curves, coverage),
plots (PNGs), page (report.html), cli (openwit-stats).
"""
from openwit.pipeline.stats.report import compute_stats, write_report

__all__ = ["compute_stats", "write_report"]
