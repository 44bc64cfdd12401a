"""PNG plots for the stats report, drawn only from the stats dict (so stats.json holds every number).

Uses matplotlib's object API on the Agg canvas (no pyplot global state, no display needed), and
saves without the Software tag so the same stats give byte-identical PNGs. Histograms use the
display bins stats.dist fitted to the data (log axes for pixels, ratios; linear for lengths, with
the top 1% folded into a last "≥ x" bin when the tail is long), with the median marked.
"""
from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from openwit.pipeline.stats.units import duration, label, number, pct, short

_GREY, _BLUE, _RED, _GREEN, _ORANGE = "#8c8c8c", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"
_STATUS_COLORS = {"success": _GREEN, "failed_to_download": _RED, "failed_to_resize": _ORANGE, "filtered": _GREY}
_WIDTH = 11.0  # inches at 100 dpi: the page's width


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _plain(v, _pos=None) -> str:
    if 0 < v < 1 and float(1 / v).is_integer():
        return f"1/{1 / v:g}"  # ratios below 1 as fractions: 1/4, not 0.25 (nor 0.00390625)
    return f"{v:g}" if v < 1e4 else short(v)


def _log_axis(ax, base: int = 2) -> None:
    ax.set_xscale("log", base=base)
    ax.xaxis.set_major_locator(LogLocator(base=base, numticks=8))
    ax.xaxis.set_major_formatter(FuncFormatter(_plain))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _hist(ax, h: dict, title: str, xlabel: str, color: str = _BLUE, marks: dict | None = None,
          also: tuple[str, dict] | None = None) -> None:
    """One fitted histogram with its median (and `marks`: {label: x}) as vertical lines; `also`:
    (name, histogram) drawn over it as an outline (same axis: e.g. heights over widths)."""
    ax.set_title(title, fontsize=10)
    if not h.get("count") or h["min"] == h["max"]:
        text = "no data" if not h.get("count") else f"all {h['count']:,}: {number(h['min'])}"
        if also and also[1].get("count") and also[1]["min"] == also[1]["max"]:
            text += f" × {number(also[1]['min'])}"
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=_GREY, fontsize=12)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    edges, counts = _centred(h)
    ax.stairs(counts, edges, fill=True, color=color, alpha=0.5, label="width" if also else None)
    ax.stairs(counts, edges, color=color, linewidth=1.2)
    if also and also[1].get("count"):
        e2, c2 = _centred(also[1])
        ax.stairs(c2, e2, color="black", linewidth=1.0, label=also[0])
    if h["scale"] == "log":
        _log_axis(ax)
        lo, hi = edges[0], edges[-1]
        if also and also[1].get("count"):
            lo, hi = min(lo, also[1]["edges"][0]), max(hi, also[1]["edges"][-1])
        ax.set_xlim(lo / 1.15, hi * 1.15)
    else:
        lo, hi = min([edges[0], *(marks or {}).values()]), max([edges[-1], *(marks or {}).values()])
        pad = (hi - lo) * 0.02
        ax.set_xlim(lo - pad, hi + pad)
    p = h["percentiles"]
    ax.axvline(p["p50"], color="black", linestyle="--", linewidth=1, label=f"median {number(p['p50'])}")
    for name, x in (marks or {}).items():
        ax.axvline(x, color=_RED, linestyle=":", linewidth=1.5, label=name)
    if h.get("overflow_from") is not None:
        ax.annotate(f"≥ {number(h['overflow_from'])}", (edges[-2], counts[-1]), textcoords="offset points",
                    xytext=(0, 3), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.legend(fontsize=8, loc="best")


def _centred(h: dict) -> tuple[list, list]:
    """Edges for drawing: integer data in bins of 1 are drawn centred on the integers; the "≥ x"
    overflow bin is drawn as wide as the others (its real width is the whole tail)."""
    edges, counts = list(h["edges"]), list(h["counts"])
    if h.get("overflow_from") is not None and len(edges) >= 3:
        edges[-1] = edges[-2] + (edges[-2] - edges[-3])
    widths = {round(b - a, 9) for a, b in zip(edges, edges[1:])}
    if h["scale"] == "linear" and widths == {1}:
        edges = [e - 0.5 for e in edges]
    return edges, counts


def _funnel(stats: dict) -> bytes:
    steps = stats["funnel"]["steps"]
    fig = Figure(figsize=(_WIDTH, 0.9 + 0.5 * len(steps)))
    ax = fig.add_subplot()
    counts = [s["count"] for s in steps]
    top = max(counts) or 1
    ax.barh(range(len(steps)), counts, color=[_GREEN if s["step"] == "success" else _BLUE for s in steps],
            alpha=0.8)
    for i, s in enumerate(steps):
        text = f" {s['count']:,}"
        if s.get("share_of_previous") is not None:
            text += f"  ({pct(s['share_of_previous'])} of the step above"
            if s["dropped"]:
                reason, n = next(iter(s["dropped"].items()))
                text += f"; −{n:,} {label(reason.split(': ')[-1])}" + (", …" if len(s["dropped"]) > 1 else "")
            text += ")"
        ax.text(s["count"] if s["count"] > 0.55 * top else s["count"], i, text, va="center", fontsize=9,
                ha="right" if s["count"] > 0.55 * top else "left",
                color="white" if s["count"] > 0.55 * top else "black")
    ax.set_yticks(range(len(steps)), [label(s["step"]) for s in steps])
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.02)
    ax.xaxis.set_major_formatter(FuncFormatter(_plain))
    ax.set_xlabel("records / samples")
    ax.set_title("From input records to the dataset")
    return _png(fig)


def _statuses(stats: dict) -> bytes:
    total = stats["samples"]["attempted"] or 1
    statuses = sorted(stats["status_counts"].items(), key=lambda kv: (kv[0] != "success", -kv[1], kv[0]))
    failures = sorted(((f"{label(r)} ({label(st)})", n) for st, by in stats["reason_counts"].items()
                       for r, n in by.items()), key=lambda kv: (-kv[1], kv[0]))
    shown = failures[:12]
    if len(failures) > 12:
        shown.append((f"{len(failures) - 12} other reasons", sum(n for _, n in failures[12:])))
    fig = Figure(figsize=(_WIDTH, 1.2 + 0.3 * max(len(statuses), len(shown), 3)))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    left.barh(range(len(statuses)), [n for _, n in statuses],
              color=[_STATUS_COLORS.get(s, _GREY) for s, _ in statuses])
    left.set_xscale("log")
    left.xaxis.set_major_formatter(FuncFormatter(_plain))
    left.set_xlim(0.7, max(n for _, n in statuses) * 8)
    for i, (_, n) in enumerate(statuses):
        left.text(n, i, f" {n:,} ({pct(n / total)})", va="center", fontsize=9)
    left.set_yticks(range(len(statuses)), [label(s) for s, _ in statuses])
    left.invert_yaxis()
    left.set_xlabel("samples (log scale)")
    left.set_title("Attempted samples by status", fontsize=10)
    if shown:
        right.barh(range(len(shown)), [n for _, n in shown], color=_RED, alpha=0.7)
        for i, (_, n) in enumerate(shown):
            right.text(n, i, f" {n:,} ({pct(n / total, 2)})", va="center", fontsize=9)
        right.set_yticks(range(len(shown)), [name for name, _ in shown], fontsize=9)
        right.invert_yaxis()
        right.set_xlim(0, max(n for _, n in shown) * 1.6)
        right.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        right.xaxis.set_major_formatter(FuncFormatter(_plain))
        right.set_xlabel("samples (share of all attempted)")
    else:
        right.text(0.5, 0.5, "no failures", ha="center", va="center", transform=right.transAxes)
        right.set_xticks([])
        right.set_yticks([])
    right.set_title("Why samples failed", fontsize=10)
    return _png(fig)


def _throughput(tp: dict) -> bytes | None:
    if not tp.get("shards_timed"):
        return None
    wall = tp["wall_seconds"]
    unit, div = ("s", 1.0) if wall < 180 else ("min", 60.0) if wall < 3 * 3600 else ("h", 3600.0)
    fig = Figure(figsize=(_WIDTH, 3.4))
    ax = fig.add_subplot()
    x = [m * 60.0 / div for m in tp["step_minutes"]]
    ax.stairs([r / 60.0 for r in tp["step_rates"]], x, fill=True, color=_BLUE, alpha=0.5)
    ax.axhline(tp["successes_per_second"], color=_RED, linestyle="--",
               label=f"average {tp['successes_per_second']:,.3g} samples/s over {duration(wall)}")
    ax.set_xlabel(f"{unit} since the first shard started")
    ax.set_ylabel("successful samples / s")
    ax.set_title("Shard stage throughput (fetch + resize per shard, from OUT/timing/)", fontsize=10)
    ax.legend(loc="upper right", fontsize=9)
    return _png(fig)


def _sizes(sizes: dict) -> bytes:
    fig = Figure(figsize=(_WIDTH, 3.4))
    axes = fig.subplots(1, 3)
    _hist(axes[0], sizes["original_width"], "Original size (successes)", "pixels", _GREY,
          also=("height", sizes["original_height"]))
    _hist(axes[1], sizes["width"], "Final size (successes)", "pixels", _BLUE, also=("height", sizes["height"]))
    _hist(axes[2], sizes["original_min_side_all"], "Original smaller side (all decoded)", "pixels", _ORANGE)
    return _png(fig)


def _aspect(sizes: dict) -> bytes:
    fig = Figure(figsize=(_WIDTH, 3.2))
    axes = fig.subplots(1, 2)
    _hist(axes[0], sizes["original_aspect"], "Original aspect ratio (successes)", "width / height", _GREY)
    _hist(axes[1], sizes["aspect"], "Final aspect ratio (successes)", "width / height", _BLUE)
    return _png(fig)


def _captions(captions: dict) -> bytes:
    tokens = (captions.get("tokens") or {}).get("lengths")
    fig = Figure(figsize=(_WIDTH, 3.2))
    axes = fig.subplots(1, 3 if tokens else 2)
    _hist(axes[0], captions["chars"], "Caption length in characters", "characters")
    _hist(axes[1], captions["words"], "Caption length in words", "words")
    if tokens:
        t = captions["tokens"]
        _hist(axes[2], tokens, f"Caption length in tokens ({t['sampled']:,} sampled)", "tokens incl. start/end",
              marks={f"context {t['context_length']}": t["context_length"]})
    return _png(fig)


def _balance(queries: dict) -> bytes | None:
    curves = queries.get("curves") or {}
    if not curves.get("rank"):
        return None
    fig = Figure(figsize=(_WIDTH, 3.8))
    ax = fig.add_subplot()
    for key, color, name in (("matched", _GREY, "matched (before balancing)"), ("kept", _BLUE, "kept"),
                             ("successes", _GREEN, "downloaded")):
        if key in curves:
            ax.plot(curves["rank"], curves[key], color=color, label=name, linewidth=1.6)
    ax.axhline(queries["t"], color="black", linestyle=":", label=f"t = {queries['t']:,}")
    ax.set_xscale("log")
    ax.set_yscale("log", nonpositive="mask")
    ax.xaxis.set_major_formatter(FuncFormatter(_plain))
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.set_xlabel("metadata entry rank (sorted by count, descending)")
    ax.set_ylabel("pairs per entry")
    ax.set_title("Balance curve: pairs per metadata entry", fontsize=10)
    ax.legend(fontsize=9)
    return _png(fig)


def _sources(queries: dict) -> bytes | None:
    rows = [r for r in queries.get("by_source") or [] if r["entries"]]
    if not rows:
        return None
    fig = Figure(figsize=(_WIDTH, 3.6))
    left, right = fig.subplots(1, 2)
    x = range(len(rows))
    names = [f"{r['source']}\n{short(r['entries'])} entr{'y' if r['entries'] == 1 else 'ies'}" for r in rows]
    for j, (key, color, name) in enumerate((("matches", _GREY, "matched"), ("kept", _BLUE, "kept"),
                                            ("successes", _GREEN, "downloaded"))):
        xs = [i + (j - 1) * 0.27 for i in x]
        left.bar(xs, [r[key] or float("nan") for r in rows], 0.27, color=color, label=name)
    left.set_yscale("log")
    left.set_ylim(bottom=0.7)
    left.yaxis.set_major_formatter(FuncFormatter(_plain))
    left.set_xticks(list(x), names, fontsize=8)
    left.set_ylabel("(pair, entry) links, log scale")
    left.set_title("Pairs by query source", fontsize=10)
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
    coverage = {key: [100.0 * r[key] / r["entries"] for r in rows]
                for key in ("entries_matched", "entries_kept", "entries_with_success")}
    smallest = min((v for vals in coverage.values() for v in vals if v), default=100.0)
    log = smallest < 1.0  # tiny shares (MetaCLIP: most WordNet entries never match) need a log axis
    for j, (key, color, name) in enumerate((("entries_matched", _GREY, "≥1 match"), ("entries_kept", _BLUE, "≥1 kept"),
                                            ("entries_with_success", _GREEN, "≥1 downloaded"))):
        xs = [i + (j - 1) * 0.27 for i in x]
        vals = coverage[key]
        right.bar(xs, [v or float("nan") for v in vals], 0.27, color=color, label=name)
        for xi, v in zip(xs, vals):
            right.text(xi, v if v else (0.001 if log else 0), " " + pct(v / 100.0), ha="center", va="bottom",
                       fontsize=6.5, rotation=90)
    if log:
        right.set_yscale("log")
        right.set_ylim(0.001, 3000)
        right.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}%" if v <= 100 else ""))
    else:
        right.set_ylim(0, 140)
        right.set_yticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
    right.set_xticks(list(x), names, fontsize=8)
    right.set_ylabel("% of the source's entries" + (", log scale" if log else ""))
    right.set_title("Coverage: entries with at least one pair", fontsize=10)
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
    return _png(fig)


def _domains(domains: dict) -> bytes | None:
    rows = [r for r in domains.get("top_by_samples") or [] if r["attempted"]][:15]
    if not rows:
        return None
    fig = Figure(figsize=(_WIDTH, 1.0 + 0.28 * len(rows)))
    ax = fig.add_subplot()
    y = range(len(rows))
    ax.barh(y, [r["successes"] for r in rows], color=_GREEN, label="in the dataset")
    ax.barh(y, [r["failures"] for r in rows], left=[r["successes"] for r in rows], color=_RED, alpha=0.6,
            label="failed")
    for i, r in enumerate(rows):
        ax.text(r["attempted"], i, f" {r['successes']:,} ok, {pct(r['failure_rate'])} failed", va="center", fontsize=8)
    ax.set_yticks(list(y), [r["domain"] for r in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(r["attempted"] for r in rows) * 1.3)
    ax.xaxis.set_major_formatter(FuncFormatter(_plain))
    ax.set_xlabel("attempted samples")
    ax.set_title("Top domains by samples in the dataset", fontsize=10)
    fig.legend(fontsize=8, loc="upper right", ncol=2)
    return _png(fig)


def render_plots(stats: dict) -> dict[str, bytes]:
    """{file name: PNG bytes}; plots without data (no timing, no queries) are left out."""
    plots = {
        "funnel.png": _funnel(stats),
        "status.png": _statuses(stats),
        "throughput.png": _throughput(stats["throughput"]),
        "sizes.png": _sizes(stats["image_sizes"]),
        "aspect.png": _aspect(stats["image_sizes"]),
        "captions.png": _captions(stats["captions"]),
        "balance.png": _balance(stats["queries"]),
        "sources.png": _sources(stats["queries"]),
        "domains.png": _domains(stats["domains"]),
    }
    return {name: png for name, png in plots.items() if png is not None}
