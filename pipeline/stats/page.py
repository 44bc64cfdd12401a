"""report.html: one static page (inline CSS, no JavaScript) with tables and the PNGs beside it."""
from __future__ import annotations

from html import escape

_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em}th,td{border:1px solid #ccc;padding:.25em .6em}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}.warn{color:#a40}"""


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return escape(str(v))
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return escape(str(v))


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


class _Raw(str):
    """Already-escaped cell text."""


def _table(head: list[str], rows: list[list]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{_fmt(c)}</td>' if isinstance(c, (int, float)) and not isinstance(c, bool)
            else f"<td>{c if isinstance(c, _Raw) else _fmt(c)}</td>" for c in row) + "</tr>"
        for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _img(name: str, plots: list[str], alt: str) -> str:
    return f'<img src="{escape(name)}" alt="{escape(alt)}">' if name in plots else ""


def _overview(s: dict) -> str:
    sh, sm, tp = s["shards"], s["samples"], s["throughput"]
    rows = [["committed shards", sh["committed"]], ["shard numbers", f"{sh['first']}–{sh['last']}"],
            ["attempted samples", sm["attempted"]], ["successes", sm["successes"]],
            ["success rate", _pct(sm["success_rate"])]]
    if tp.get("shards_timed"):
        rows += [["wall time (s)", tp["wall_seconds"]], ["successes per minute", tp["successes_per_minute"]]]
    html = _table(["", "value"], rows)
    notes = []
    if sh["uncommitted"]:
        notes.append(f"{len(sh['uncommitted'])} shard(s) without a _stats.json marker were skipped.")
    for bad in sh.get("skipped", []):
        notes.append(f"shard {bad['shard']:05d} left out (--skip-bad-shards): {bad['file']}: {bad['error']}")
    if sh["settings_variants"] > 1:
        notes.append(f"shards were built with {sh['settings_variants']} different settings.")
    if sh["count_from_markers"] != sm["attempted"]:
        notes.append(f"markers count {sh['count_from_markers']:,} samples, Parquet files hold {sm['attempted']:,}.")
    html += "".join(f'<p class="warn">{escape(n)}</p>' for n in notes)
    if sh.get("settings"):
        rows = [[k, v if isinstance(v, (int, float)) else str(v)] for k, v in sorted(sh["settings"].items())]
        html += "<h3>Build settings (first shard)</h3>" + _table(["setting", "value"], rows)
    return html


def _statuses(s: dict, plots: list[str]) -> str:
    total = s["samples"]["attempted"] or 1
    rows = []
    for status, n in sorted(s["status_counts"].items(), key=lambda kv: (kv[0] != "success", kv[0])):
        rows.append([_Raw(f"<b>{escape(status)}</b>"), "", n, _pct(n / total)])
        for reason, m in s["reason_counts"].get(status, {}).items():
            rows.append(["", reason, m, _pct(m / total)])
    return _table(["status", "reason", "samples", "share"], rows) + _img("status.png", plots, "status")


def _throughput(tp: dict, plots: list[str]) -> str:
    if not tp.get("shards_timed"):
        return "<p>No shard has start_time/end_time in its _stats.json: no throughput curve.</p>"
    rows = [["timed shards", tp["shards_timed"]], ["untimed shards", tp["shards_untimed"]],
            ["successes (timed shards)", tp["successes"]], ["wall time (s)", tp["wall_seconds"]],
            ["successes per minute", tp["successes_per_minute"]],
            ["peak successes per minute", tp["peak_successes_per_minute"]]]
    return _table(["", "value"], rows) + _img("throughput.png", plots, "throughput")


def _sizes(sizes: dict, plots: list[str]) -> str:
    rows = [[name, h["count"], h["mean"], h["min"], h["max"]] for name, h in sizes.items()]
    return (_table(["measure", "images", "mean", "min", "max"], rows)
            + _img("sizes.png", plots, "image sizes") + _img("aspect.png", plots, "aspect ratios"))


def _captions(c: dict, plots: list[str]) -> str:
    rows = [["characters", c["chars"]["mean"], c["chars"]["max"]],
            ["words", c["words"]["mean"], c["words"]["max"]]]
    return (_table(["caption length", "mean", "max"], rows)
            + f"<p>Empty captions: {c['empty']:,}</p>" + _img("captions.png", plots, "captions"))


def _queries(q: dict, s: dict, plots: list[str]) -> str:
    parts = []
    b = q.get("balance")
    if b:
        parts.append(_table(
            ["t", "entries", "entries with 0 matches", "tail (1..t matches)", "head (> t matches)",
             "matches", "share of matches in head", "kept (sum over entries)", "pairs attempted",
             "pairs downloaded"],
            [[q["t"], b["entries"], b["entries_zero_match"], b["entries_tail"], b["entries_head"],
              b["matches"], _pct(b["head_match_share"]), b["kept_sum"], s["samples"]["attempted"],
              s["samples"]["successes"]]]))
    else:
        parts.append("<p>No query_counts.parquet in the output folder: head/tail table skipped.</p>")
    cov = q["coverage"]
    rows = [[k.replace("_", " "), _pct(v) if k.endswith("share") else v] for k, v in sorted(cov.items())]
    parts.append("<h3>Query coverage of successful samples</h3>" + _table(["", "value"], rows))
    parts.append(_img("balance.png", plots, "balance curve"))
    if q.get("top"):
        parts.append("<h3>Most matched entries</h3>" + _table(
            ["query id", "query", "matched", "kept", "downloaded"],
            [[r["query_id"], r["query"] or "", r["matched"], r["kept"], r["successes"]] for r in q["top"]]))
    return "".join(parts)


def render_html(stats: dict, plots: list[str]) -> str:
    """The whole page; `plots` are the PNG file names written beside it."""
    sections = [
        ("Overview", _overview(stats)),
        ("Outcome by status and reason", _statuses(stats, plots)),
        ("Throughput", _throughput(stats["throughput"], plots)),
        ("Image sizes (before / after resizing)", _sizes(stats["image_sizes"], plots)),
        ("Captions (successful samples)", _captions(stats["captions"], plots)),
        ("Queries: balance and coverage", _queries(stats["queries"], stats, plots)),
    ]
    body = "".join(f"<h2>{escape(title)}</h2>\n{html}\n" for title, html in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>openwit dataset report</title><style>{_CSS}</style></head>\n"
            f"<body><h1>openwit dataset report</h1>\n{body}"
            "<p>All numbers are in stats.json beside this page.</p></body></html>\n")
