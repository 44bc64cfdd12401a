"""PNG plots for the stats report, drawn only from the stats dict (so stats.json holds every number).

Uses matplotlib's object API on the Agg canvas (no pyplot global state, no display needed), and
saves without the Software tag so the same stats give byte-identical PNGs.
"""
from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_BEFORE, _AFTER, _THIRD = "#8c8c8c", "#1f77b4", "#d62728"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _stairs(ax, hist: dict, label: str, color: str, fill: bool) -> None:
    if hist.get("count"):
        ax.stairs(hist["counts"], hist["edges"], label=f"{label} (n={hist['count']:,})",
                  color=color, fill=fill, alpha=0.45 if fill else 1.0, linewidth=1.5)


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _statuses(stats: dict) -> bytes:
    labels, values = [], []
    for status, n in sorted(stats["status_counts"].items(), key=lambda kv: (kv[0] != "success", kv[0])):
        labels.append(status)
        values.append(n)
        for reason, m in stats["reason_counts"].get(status, {}).items():
            labels.append(f"  {status}: {reason}")
            values.append(m)
    fig = Figure(figsize=(8, 0.9 + 0.32 * len(labels)))
    ax = fig.add_subplot()
    ax.barh(range(len(labels)), values, color=[_AFTER if not l.startswith(" ") else _BEFORE for l in labels])
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:,}", va="center", fontsize=8)
    ax.set_xlabel("samples")
    ax.set_title("Samples by status and reason")
    return _png(fig)


def _throughput(tp: dict) -> bytes | None:
    if not tp.get("shards_timed"):
        return None
    fig = Figure(figsize=(8, 3.5))
    ax = fig.add_subplot()
    ax.stairs(tp["step_rates"], tp["step_minutes"], fill=True, color=_AFTER, alpha=0.5)
    ax.axhline(tp["successes_per_minute"], color=_THIRD, linestyle="--",
               label=f"overall {tp['successes_per_minute']:,.1f}/min")
    ax.set_xlabel("minutes since the first shard started")
    ax.set_ylabel("successes per minute")
    ax.set_title("Throughput (each shard's successes spread over its own run time)")
    ax.legend(loc="upper right")
    return _png(fig)


def _sizes(sizes: dict) -> bytes:
    fig = Figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 3)
    for ax, dim in zip(axes[:2], ("width", "height")):
        _stairs(ax, sizes[f"original_{dim}"], "original", _BEFORE, True)
        _stairs(ax, sizes[dim], "final", _AFTER, False)
        ax.set_title(f"{dim} of successful samples")
    _stairs(axes[2], sizes["original_min_side_all"], "all decoded", _THIRD, True)
    axes[2].set_title("smaller side, every decoded image")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("pixels")
        _legend(ax, fontsize=8)
    axes[0].set_ylabel("samples")
    return _png(fig)


def _aspect(sizes: dict) -> bytes:
    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    _stairs(ax, sizes["original_aspect"], "original", _BEFORE, True)
    _stairs(ax, sizes["aspect"], "final", _AFTER, False)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("aspect ratio width / height")
    ax.set_ylabel("samples")
    ax.set_title("Aspect ratio of successful samples")
    _legend(ax, fontsize=8)
    return _png(fig)


def _captions(captions: dict) -> bytes:
    fig = Figure(figsize=(10, 3.6))
    for ax, key, unit in zip(fig.subplots(1, 2), ("chars", "words"), ("characters", "words")):
        _stairs(ax, captions[key], "captions", _AFTER, True)
        ax.set_xlabel(f"{unit} (last bin: and more)")
        ax.set_title(f"Caption length in {unit}")
    return _png(fig)


def _balance(queries: dict) -> bytes | None:
    curves = queries.get("curves") or {}
    if not curves.get("rank"):
        return None
    fig = Figure(figsize=(8, 4.2))
    ax = fig.add_subplot()
    for key, color in (("matched", _BEFORE), ("kept", _AFTER), ("successes", _THIRD)):
        if key in curves:
            ax.plot(curves["rank"], curves[key], color=color, label=key, linewidth=1.6)
    ax.axhline(queries["t"], color="black", linestyle=":", label=f"t = {queries['t']:,}")
    ax.set_xscale("log")
    ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("entry rank (sorted by count, descending)")
    ax.set_ylabel("pairs per entry")
    ax.set_title("Balance curve: pairs per metadata entry")
    ax.legend()
    return _png(fig)


def render_plots(stats: dict) -> dict[str, bytes]:
    """{file name: PNG bytes}; plots without data (no timing, no queries) are left out."""
    plots = {
        "status.png": _statuses(stats),
        "throughput.png": _throughput(stats["throughput"]),
        "sizes.png": _sizes(stats["image_sizes"]),
        "aspect.png": _aspect(stats["image_sizes"]),
        "captions.png": _captions(stats["captions"]),
        "balance.png": _balance(stats["queries"]),
    }
    return {name: png for name, png in plots.items() if png is not None}
