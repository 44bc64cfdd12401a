"""Human units and labels for the page and the plots: 14,980 · 1.2 M · 98.7% · 3.4 MB · 2 min 05 s.

Every label the report shows for a key of stats.json lives here, so no raw key reaches the page.
"""
from __future__ import annotations

LABELS = {
    # funnel steps
    "records_read": "records read", "extracted": "extracted (url + caption)", "unique": "unique (url, caption)",
    "matched": "matched a query", "kept": "kept by balancing", "attempted": "attempted downloads",
    "success": "in the dataset (success)",
    # funnel drops
    "duplicate_url_caption": "duplicate (url, caption)", "no_match": "no query matched",
    "balanced_out": "balanced out (head queries)", "not_in_committed_shards": "not in a committed shard yet",
    "robots_txt": "disallowed by robots.txt", "limited": "first N (--limit)", "over_limit": "over --limit",
    "excluded_domain": "domain on the --exclude-domains list",
    # statuses
    "failed_to_download": "failed to download", "failed_to_resize": "failed to decode / resize",
    "filtered": "filtered", "unknown": "unknown",
    # image sizes
    "original_width": "original width", "original_height": "original height", "width": "final width",
    "height": "final height", "original_aspect": "original aspect (w/h)", "aspect": "final aspect (w/h)",
    "original_min_side_all": "original smaller side, every decoded image",
    # disk
    "tar": "images (.tar)", "parquet": "sample tables (.parquet)", "markers": "shard markers (_stats.json)",
    "candidates": "candidates/", "query_counts": "query_counts.parquet", "tokenizer": "tokenizer.json",
    "other": "other files", "total": "total",
}


def label(key: str) -> str:
    """The words for a stats.json key; failure reasons read as their words (http_404 → HTTP 404)."""
    if key in LABELS:
        return LABELS[key]
    if key.startswith("http_") and key[5:].isdigit():
        return f"HTTP {key[5:]}"
    if key.startswith("opt_out_"):
        return f"opted out (X-Robots-Tag {key[8:]})"
    return key.replace("_", " ")


def count(n) -> str:
    """14,980 (exact, with separators)."""
    return "—" if n is None else f"{int(n):,}"


def short(n) -> str:
    """1.2 k, 3.4 M, 2.1 B above 10,000; exact below."""
    if n is None:
        return "—"
    n = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= max(size, 1e4):
            return f"{n / size:.3g} {unit}"
    return f"{n:,.0f}" if n == int(n) else f"{n:,.3g}"


def pct(x, digits: int = 1) -> str:
    """98.7% · 0.86% · 0.0031% (shares under 1% keep two significant digits) · 99.996%; None → —."""
    if x is None:
        return "—"
    p = 100.0 * float(x)
    if p == 0:
        return "0%"
    if p == 100:
        return "100%"
    if abs(p) < 1:
        return f"{p:.2g}%" if abs(p) >= 0.0001 else "<0.0001%"
    if 100 - 10 ** -digits < p < 100:  # 99.996%, never a rounded 100%
        return f"{p:.{digits + 3}f}".rstrip("0") + "%" if p < 99.9995 else ">99.999%"
    return f"{p:.{digits}f}%"


def size(nbytes) -> str:
    """3.4 MB (decimal units, as disks and buckets are billed)."""
    if nbytes is None:
        return "—"
    n = float(nbytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000.0
    return f"{n:.3g} PB"


def duration(seconds) -> str:
    """0.93 s · 42 s · 3 min 05 s · 2 h 04 min."""
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 10:
        return f"{s:.2g} s" if s < 1 else f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    if s < 86400:
        return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"
    return f"{int(s // 86400)} d {int(s % 86400 // 3600):02d} h"


def rate(per_second) -> str:
    """249/s · 1,234/s · 15.2 k/s; slow rates per minute or hour (4.2/min)."""
    if per_second is None:
        return "—"
    r = float(per_second)
    if r >= 1e4:
        return f"{short(r)}/s"
    if r >= 100 or r == 0:
        return f"{r:,.0f}/s"
    if r >= 1:
        return f"{r:.3g}/s"
    return f"{r * 60:.3g}/min" if r * 60 >= 1 else f"{r * 3600:.3g}/h"


def number(x) -> str:
    """A measured value (pixels, ratios, lengths): ints with separators, floats to 3–4 digits."""
    if x is None:
        return "—"
    if isinstance(x, int) or float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:,.0f}"
