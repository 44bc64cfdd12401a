"""report.html: one static page (inline CSS, no JavaScript) drawn from the stats dict alone.

Tables and the PNGs beside the page; the gallery's thumbnails are embedded (data: URIs), so the
folder works offline. Every number on the page is in stats.json; labels come from stats.units.
Funnel rows carry `data-step` / `data-count` attributes so a browser test can compare the page
with stats.json.
"""
from __future__ import annotations

import datetime as dt
import os
from html import escape

from openwit.pipeline.stats.units import count, duration, label, number, pct, rate, short, size

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1120px;margin:1.5em auto;
 padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.1em}h2{margin-top:2em;border-bottom:2px solid #ddd;padding-bottom:.2em}
h3{margin:1.2em 0 .3em}.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:14px}
th,td{border:1px solid #d8d8d8;padding:.25em .6em;vertical-align:top}th{background:#f3f3f3;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.group td{background:#fafafa;font-weight:600}
img.plot{max-width:100%;border:1px solid #eee;margin:.4em 0}
.warn{color:#a40}.note{color:#555;font-size:14px;max-width:70em}
.cards{display:flex;flex-wrap:wrap;gap:.6em;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5em .9em;min-width:9em;background:#fcfcfc}
.card b{display:block;font-size:22px}.card span{color:#666;font-size:13px}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:.15em 1em;margin:.6em 0}
dl.meta dt{color:#666}dl.meta dd{margin:0}
pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap;word-break:break-all;font-size:13px}
nav{font-size:14px;margin:1em 0}nav a{margin-right:.8em}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.8em}
.gallery figure{margin:0;border:1px solid #e3e3e3;padding:.3em;font-size:12px;background:#fff}
.gallery img{display:block;margin:0 auto .3em;width:100%;height:150px;object-fit:contain}
.gallery .q{color:#666}
details summary{cursor:pointer;font-weight:600;margin:.5em 0}
"""


class _Raw(str):
    """Already-escaped cell text."""


def _cell(c) -> str:
    if isinstance(c, _Raw):
        return f"<td>{c}</td>"
    if isinstance(c, tuple):  # (shown text, css class)
        return f'<td class="{c[1]}">{escape(str(c[0]))}</td>'
    if isinstance(c, bool) or c is None:
        return f"<td>{'—' if c is None else escape(str(c))}</td>"
    if isinstance(c, int):
        return f'<td class="n">{c:,}</td>'
    if isinstance(c, float):
        return f'<td class="n">{number(c)}</td>'
    return f"<td>{escape(str(c))}</td>"


def _num(text: str) -> tuple[str, str]:
    """A formatted number, right-aligned."""
    return text, "n"


def _is_numeric(c) -> bool:
    return (isinstance(c, (int, float)) and not isinstance(c, bool)) or (isinstance(c, tuple) and c[1] == "n")


def _table(head: list[str], rows: list[list], row_attrs: list[str] | None = None) -> str:
    """A table; a column's header is right-aligned when its first cell is a number."""
    first = rows[0] if rows else []
    th = "".join(f'<th class="n">{escape(h)}</th>' if i < len(first) and _is_numeric(first[i])
                 else f"<th>{escape(h)}</th>" for i, h in enumerate(head))
    body = "".join(f"<tr{(row_attrs or [''] * len(rows))[i]}>" + "".join(_cell(c) for c in row) + "</tr>"
                   for i, row in enumerate(rows))
    return f"<table><tr>{th}</tr>{body}</table>"


def _img(name: str, plots: list[str], alt: str) -> str:
    return f'<img class="plot" src="{escape(name)}" alt="{escape(alt)}">' if name in plots else ""


def _n(n: int, word: str, plural: str | None = None) -> str:
    """"1 domain", "3 domains"."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _generated() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch and epoch.isdigit() \
        else dt.datetime.now(dt.timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


# --- header ------------------------------------------------------------------------------------
def _header(s: dict) -> str:
    b, sm, disk, dom = s["build"], s["samples"], s["disk"], s["domains"]
    cov = s["queries"]["coverage"]
    cards = [(short(sm["successes"]), "samples in the dataset"), (pct(sm["success_rate"]), "of attempted downloaded"),
             (size(disk["total"]), "on disk"), (short(s["duplicates"]["sha256"]["distinct"]), "distinct images"),
             (short(dom["distinct"]), "domains"),
             (short(cov.get("entries_with_success", cov["queries_with_success"])), "query entries with a sample")]
    card_html = "".join(f"<div class=card><b>{escape(v)}</b><span>{escape(t)}</span></div>" for v, t in cards)
    inputs = b.get("inputs") or {}
    listed = inputs.get("listed") or []
    inputs_text = (f"{inputs.get('files', 0):,} file(s)" + (f": {', '.join(listed[:3])}" if listed else "")
                   + (" …" if len(listed) > 3 or inputs.get("files", 0) > len(listed) else "")) if inputs else \
        "not recorded (candidate_counts.json is missing: a build before it existed)"
    built = (f"{b['shard_stage_started']} → {b['shard_stage_ended']} (shard stage)"
             if b.get("shard_stage_started") else "not recorded (no OUT/timing/)")
    meta = [("output", b["out"]), ("built", built), ("inputs", inputs_text),
            ("query list", b.get("queries") or "not recorded"),
            ("balancing", ", ".join(f"{k} {v}" for k, v in sorted((b.get("balance") or {}).items())) or "—"),
            *([("candidate settings", ", ".join(f"{k} {v}" for k, v in sorted(b["candidate_settings"].items())))]
              if b.get("candidate_settings") else []),
            ("openwit", b["openwit_version"]), ("report generated", _generated())]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in meta)
    settings = s["shards"].get("settings") or {}
    rows = [["honour X-Robots-Tag" if k == "respect_x_robots_tag" else "--" + k.replace("_", "-"),
             "—" if v is None else str(v)] for k, v in sorted(settings.items())]
    return (f"<h1>openwit dataset report</h1><p class=sub>{escape(b['out'])}</p>"
            f'<div class=cards>{card_html}</div><dl class=meta>{dl}</dl>'
            "<h3>Command</h3>" + _note("An <code>openwit-build</code> line that gives these shards, rebuilt from what the "
                                       "build recorded (shard settings, queries_meta.json, candidate_counts.json); "
                                       "Beam options, timeouts and concurrency are not recorded.")
            + f"<pre>{escape(b['command'])}</pre>"
            + (f"<details><summary>Shard settings (the fingerprinted subset, {len(rows)})</summary>"
               + _table(["setting (openwit-build flag)", "value"], rows) + "</details>" if rows else ""))


def _notes(s: dict) -> str:
    sh, sm = s["shards"], s["samples"]
    notes = []
    if sh["uncommitted"]:
        notes.append(f"{len(sh['uncommitted'])} shard(s) without a _stats.json marker were skipped.")
    for bad in sh.get("skipped", []):
        notes.append(f"shard {bad['shard']:05d} left out (--skip-bad-shards): {bad['file']}: {bad['error']}")
    if sh["settings_variants"] > 1:
        notes.append(f"shards were built with {sh['settings_variants']} different settings.")
    if sh["count_from_markers"] != sm["attempted"]:
        notes.append(f"markers count {sh['count_from_markers']:,} samples, Parquet files hold {sm['attempted']:,}.")
    if sh.get("missing_in_range"):
        notes.append(f"shard numbers missing between {sh['first']} and {sh['last']}: "
                     f"{', '.join(map(str, sh['missing_in_range'][:20]))}")
    return "".join(f'<p class="warn">{escape(n)}</p>' for n in notes)


# --- sections ----------------------------------------------------------------------------------
def _funnel(s: dict, plots: list[str]) -> str:
    f = s["funnel"]
    rows, attrs = [], []
    for st in f["steps"]:
        drops = "; ".join(f"{label(r.split(': ')[-1])}{' (' + label(r.split(': ')[0]) + ')' if ': ' in r else ''} "
                          f"{n:,}" for r, n in list(st["dropped"].items())[:8])
        if len(st["dropped"]) > 8:
            drops += f"; {len(st['dropped']) - 8} more reasons"
        rows.append([label(st["step"]), st["count"], _num(pct(st["share_of_previous"])),
                     _num(pct(st["share_of_first"])), _num(count(st["dropped_total"]) if st["dropped"] else ""), drops])
        attrs.append(f' data-step="{escape(st["step"])}" data-count="{st["count"]}"')
    html = _img("funnel.png", plots, "funnel") + _table(
        ["step", "records", "of the step above", "of the first step", "dropped", "dropped because"], rows, row_attrs=attrs)
    if not f["has_candidate_counts"]:
        html += _note("No candidate_counts.json in the output folder (a build from before it was recorded, or "
                      "shards built from candidate files alone): the funnel starts at the attempted downloads.")
    elif f.get("bad_input_files"):
        html += f'<p class="warn">{f["bad_input_files"]:,} of {f["input_files"]:,} input files were damaged: ' \
                "read up to the damage (see the build's warnings).</p>"
    return html


def _statuses(s: dict, plots: list[str]) -> str:
    total = s["samples"]["attempted"] or 1
    rows = [[label(st), n, _num(pct(n / total, 2))] for st, n in
            sorted(s["status_counts"].items(), key=lambda kv: (kv[0] != "success", -kv[1], kv[0]))]
    html = _img("status.png", plots, "status") + _table(["status", "samples", "share of attempted"], rows)
    reasons = sorted(((r, st, n) for st, by in s["reason_counts"].items() for r, n in by.items()),
                     key=lambda x: (-x[2], x[0]))
    if reasons:
        html += "<h3>Failure reasons</h3>" + _table(
            ["reason", "status", "samples", "share of attempted"],
            [[label(r), label(st), n, _num(pct(n / total, 2))] for r, st, n in reasons])
    return html


def _sources(q: dict, plots: list[str]) -> str:
    rows = q.get("by_source") or []
    if not rows:
        return _note("The query list's sources are not recorded (query_counts.parquet without a source column and "
                     "no readable queries.parquet): no per-source numbers.")
    t = q["t"]
    table = _table(
        ["source", "entries", "matched ≥1", "head (> t)", "tail (1..t)", "matches", "share in head", "kept",
         "downloaded", "samples", "coverage"],
        [[r["source"], r["entries"], r["entries_matched"], r["entries_head"], r["entries_tail"], r["matches"],
          _num(pct(r["head_match_share"])), r["kept"], r["successes"], r["samples"], _num(pct(r["coverage"], 2))]
         for r in rows])
    return (_img("sources.png", plots, "query sources") + table + _note(
        f"Head: entries matched more than t = {t:,} times; tail: 1 to t. <i>matches</i>, <i>kept</i> and "
        "<i>downloaded</i> count (pair, entry) links — a caption matching three entries counts three times; "
        "<i>samples</i> counts each sample in the dataset once per source it matches; <i>coverage</i> is the share of "
        "the source's entries with at least one sample in the dataset."))


def _balance(q: dict, s: dict, plots: list[str]) -> str:
    parts = []
    b = q.get("balance")
    if b:
        parts.append(_table(
            ["t", "entries", "0 matches", "tail (1..t)", "head (> t)", "matches", "share in head",
             "kept (sum over entries)", "entries kept > t"],
            [[q["t"], b["entries"], b["entries_zero_match"], b["entries_tail"], b["entries_head"], b["matches"],
              _num(pct(b["head_match_share"])), b["kept_sum"], b["entries_kept_above_t"]]]))
    else:
        parts.append(_note("No query_counts.parquet in the output folder: the head/tail table is skipped."))
    cov = q["coverage"]
    rows = [["samples matching at least one entry", cov["successes_with_query"],
             _num(pct(cov["successes_with_query_share"]))],
            ["entries matched per sample (mean)", cov["mean_queries_per_success"], ""],
            ["entries with at least one sample", cov.get("entries_with_success", cov["queries_with_success"]),
             _num(pct(cov.get("entries_with_success_share")))]]
    if "kept_entries_with_success_share" in cov:
        rows.append(["kept entries that got at least one sample", "", _num(pct(cov["kept_entries_with_success_share"]))])
    parts.append(_table(["coverage", "count", "share"], rows))
    parts.append(_img("balance.png", plots, "balance curve"))
    if q.get("top"):
        t = q["t"]
        parts.append("<h3>Most matched entries</h3>" + _note(
            f"MetaCLIP's balancing keeps a pair with probability 1 − Π(1 − min(1, t/count)) over <i>every</i> entry its "
            f"caption matches, so a head entry such as “{escape(str(q['top'][0]['query']))}” also keeps the pairs "
            f"drawn in for the tail entries they match: its <i>kept</i> can exceed t = {t:,} (this is MetaCLIP's "
            "behaviour, not a bug; <code>--balance exact</code> caps every entry at t).") + _table(
            ["query", "source", "matched", "kept", "kept / t", "downloaded"],
            [[r["query"] or "", r.get("source") or "—", r["matched"], r["kept"], _num(f"{r['kept'] / t:.1f}×"),
              r["successes"]] for r in q["top"]]))
    return "".join(parts)


def _domains(d: dict, s: dict, plots: list[str]) -> str:
    if not d["distinct"]:
        return _note("The shards have no url column: no per-domain numbers.")
    html = _img("domains.png", plots, "domains") + _note(
        f"{_n(d['distinct'], 'domain')} (URL host without <code>www.</code>), {d['with_success']:,} with at least one "
        f"sample in the dataset; the top 10 hold {pct(d['top10_success_share'])} of the samples.")

    def rows(items):
        return [[r["domain"], r["attempted"], r["successes"], _num(pct(r["failure_rate"])), r["robots_txt"],
                 r["x_robots_tag"]] for r in items]
    head = ["domain", "attempted", "in the dataset", "failure rate", "robots.txt", "X-Robots-Tag"]
    html += "<h3>Top domains by samples</h3>" + _table(head, rows(d["top_by_samples"]))
    if d["top_by_failure_rate"]:
        html += (f"<h3>Highest failure rates (domains with ≥ {_n(d['min_attempts_for_rate'], 'attempt')})</h3>"
                 + _table(head, rows(d["top_by_failure_rate"])))
    o = d["opt_outs"]
    html += "<h3>Opt-outs by domain</h3>"
    if d["top_opt_outs"]:
        html += _note(f"{_n(o['robots_txt'], 'sample')} refused by robots.txt and {o['x_robots_tag']:,} by an "
                      f"X-Robots-Tag (noai, noimageai, noindex, …) header, on {_n(o['domains'], 'domain')}.") + _table(
            head, rows(d["top_opt_outs"]))
    else:
        robots = (s["shards"].get("settings") or {}).get("robots_txt")
        html += _note("No sample was refused by robots.txt or an X-Robots-Tag header"
                      + (" (robots.txt was not checked: <code>--robots-txt</code> is off)." if robots is False else "."))
    return html


def _duplicates(d: dict) -> str:
    names = (("url", "URL", "attempted samples"), ("sha256", "image (sha256)", "downloaded images"),
             ("caption", "caption", "samples in the dataset"))
    headings = {"url": "Most repeated URLs", "sha256": "Most repeated images (same sha256)",
                "caption": "Most repeated captions"}
    rows = [[what, d[k]["values"], d[k]["distinct"], d[k]["duplicates"], _num(pct(d[k]["duplicate_share"], 2)),
             d[k]["repeated_values"], over] for k, what, over in names]
    html = _table(["by", "values", "distinct", "repeats", "repeat share", "values repeated", "counted over"], rows)
    notes = ["A repeat is a value seen again after its first occurrence. Image hashes are counted whether or not "
             "the build de-duplicated them"]
    if d["removed_by_dedup_sha256"]:
        notes.append(f"; <code>--dedup-sha256</code> filtered {d['removed_by_dedup_sha256']:,} copies "
                     "(they stay in the counts above)")
    if any(d[k]["sampled_1_in"] > 1 for k, _, _ in names):
        notes.append("; counts marked by a hash sample of 1 in k are estimates")
    html += _note("".join(notes) + ".")
    for k, what, _ in names:
        top = d[k]["top"]
        if top:
            html += f"<h3>{headings[k]}</h3>" + _table(
                ["times", "example" if k != "sha256" else "an URL of the image"],
                [[r["count"], r["example"] if r["example"] is not None else "—"] for r in top[:10]])
    return html


def _dist_rows(items: list[tuple[str, dict]]) -> list[list]:
    out = []
    for name, h in items:
        p = h.get("percentiles") or {}
        out.append([name, h["count"]] + [_num(number(p.get(k))) for k in ("p1", "p5", "p50", "p95", "p99")]
                   + [_num(number(h["mean"])), _num(number(h["min"])), _num(number(h["max"]))])
    return out


_PCT_HEAD = ["p1", "p5", "median", "p95", "p99", "mean", "min", "max"]


def _images(s: dict, plots: list[str]) -> str:
    sizes = s["image_sizes"]
    html = _table(["measure", "images"] + _PCT_HEAD, _dist_rows([(label(k), h) for k, h in sizes.items()]))
    final = sizes["width"], sizes["height"]
    if final[0]["count"] and final[0]["min"] == final[0]["max"] and final[1]["min"] == final[1]["max"]:
        html += _note(f"Every final image is {final[0]['min']:,}×{final[1]['min']:,} px "
                      f"({(s['shards'].get('settings') or {}).get('resize_mode', '?')} resize).")
    disk = s["disk"]
    fmt = (s["shards"].get("settings") or {}).get("output_format")
    if disk.get("tar_bytes_per_success"):
        html += _note(f"Stored as {escape(str(fmt or '?'))}: {size(disk['tar'])} of tar files, "
                      f"{size(disk['tar_bytes_per_success'])} per sample (image, caption and JSON with tar headers).")
    html += _files(s.get("files") or {})
    return html + _img("sizes.png", plots, "image sizes") + _img("aspect.png", plots, "aspect ratios")


def _files(f: dict) -> str:
    """Downloaded files by format and bytes, next to the written images' bytes."""
    formats, raw = f.get("original_formats") or {}, f.get("original_bytes") or {}
    if not raw.get("count"):
        return _note("These shards do not record original file formats or byte sizes (written before openwit "
                     "kept them; rebuild to see them).")
    n = sum(formats.values())
    html = _table(["downloaded as", "files", "share"], [[k, v, _num(pct(v / n))]
                                                         for k, v in formats.items()])
    rows = [("downloaded file (bytes)", raw), ("written image (bytes)", f.get("image_bytes") or {})]
    return html + _table(["size of", "files"] + _PCT_HEAD, _dist_rows([r for r in rows if r[1].get("count")]))


def _captions(c: dict, plots: list[str]) -> str:
    items = [("characters", c["chars"]), ("words", c["words"])]
    t = c.get("tokens") or {}
    if t.get("lengths"):
        items.append((f"tokens ({t['tokenizer']})", t["lengths"]))
    html = _table(["length in", "captions"] + _PCT_HEAD, _dist_rows(items))
    html += _note(f"Empty captions: {c['empty']:,}.")
    if t.get("lengths"):
        html += _note(f"Tokens counted with {escape(t['tokenizer'])} ({t['vocab_size']:,} tokens, the tokenizer the "
                      f"loader uses for these shards) on {t['sampled']:,} of {t['sampled_of']:,} captions (every "
                      f"k-th), start and end tokens included: <b>{pct(t['truncated_share'], 2)}</b> "
                      f"({t['truncated']:,}) are longer than the {t['context_length']}-token context and are cut.")
    else:
        html += _note("No tokenizer found (no tokenizer.json beside the shards, no $OPENWIT_TOKENIZER or CLIP BPE "
                      "file): token lengths skipped.")
    return html + _img("captions.png", plots, "caption lengths")


def _gallery(items: list[dict], thumbs: list[str | None]) -> str:
    if not items:
        return _note("No tar files to draw samples from.")
    figs = []
    for item, uri in zip(items, thumbs):
        img = f'<img src="{uri}" alt="sample {escape(item["key"])}">' if uri else "<p>(no thumbnail)</p>"
        queries = ", ".join(item["query_ids"][:8]) + (" …" if len(item["query_ids"]) > 8 else "")
        figs.append(f"<figure>{img}<figcaption>{escape(item['caption'])}<br><span class=q>"
                    f"{escape(item['key'])} · {escape(queries) or 'no query'}</span></figcaption></figure>")
    return (_note(f"The first samples of {len({i['shard'] for i in items})} shards spread over the run "
                  "(caption, then key · matched entries).") + f"<div class=gallery>{''.join(figs)}</div>")


def _storage(d: dict) -> str:
    keys = ("tar", "parquet", "markers", "candidates", "query_counts", "tokenizer", "other", "total")
    rows = [[label(k), _num(size(d[k])), d[k]] for k in keys if d.get(k)]
    return _table(["files", "size", "bytes"], rows)


def _throughput(tp: dict, plots: list[str]) -> str:
    if not tp.get("shards_timed"):
        return _note("No shard has start and end times (OUT/timing/): no throughput curve.")
    rows = [["shards timed", _num(f"{tp['shards_timed']:,} of {tp['shards_timed'] + tp['shards_untimed']:,}")],
            ["shard stage wall time", _num(duration(tp["wall_seconds"]))],
            ["average", _num(rate(tp["successes_per_second"]))],
            ["peak", _num(rate(tp["peak_successes_per_second"]))]]
    return (_note("Successful samples per second while the shards were fetched and resized (each shard's samples "
                  "spread over its own run time). The candidates stage before it is not timed.")
            + _table(["", "value"], rows) + _img("throughput.png", plots, "throughput"))


def _per_shard(rows: list[dict]) -> str:
    body = [[f"{r['shard']:05d}", r["attempted"], r["successes"], _num(pct(r["success_rate"])),
             _num(size(r["tar_bytes"])), _num(size(r["parquet_bytes"])), _num(duration(r["seconds"])),
             r.get("action") or "—"] for r in rows[:2000]]
    more = f" (the first 2,000 of {len(rows):,}; all in stats.json)" if len(rows) > 2000 else ""
    return (f"<details><summary>Per-shard table: {len(rows):,} shards{more}</summary>"
            + _table(["shard", "attempted", "in the dataset", "success rate", "tar", "parquet", "fetch time",
                      "last run"], body) + "</details>")


def render_html(stats: dict, plots: list[str], thumbs: list[str | None] | None = None) -> str:
    """The whole page; `plots` are the PNG file names written beside it, `thumbs` the gallery's
    thumbnails (data: URIs, in stats["gallery"] order)."""
    s = stats
    sections = [
        ("funnel", "From input records to the dataset", _funnel(s, plots)),
        ("status", "Download outcome", _statuses(s, plots)),
        ("sources", "Query sources", _sources(s["queries"], plots)),
        ("balance", "Balancing: head and tail", _balance(s["queries"], s, plots)),
        ("domains", "Domains", _domains(s["domains"], s, plots)),
        ("duplicates", "Duplicates", _duplicates(s["duplicates"])),
        ("images", "Images", _images(s, plots)),
        ("captions", "Captions", _captions(s["captions"], plots)),
        ("gallery", "Samples", _gallery(s.get("gallery") or [], thumbs or [None] * len(s.get("gallery") or []))),
        ("storage", "Storage", _storage(s["disk"])),
        ("throughput", "Throughput", _throughput(s["throughput"], plots)),
        ("shards", "Shards", _per_shard(s["per_shard"])),
    ]
    nav = "<nav>" + "".join(f'<a href="#{k}">{escape(title)}</a>' for k, title, _ in sections) + "</nav>"
    body = "".join(f'<h2 id="{k}">{escape(title)}</h2>\n{html}\n' for k, title, html in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>openwit dataset report — {escape(stats['build']['out'])}</title><style>{_CSS}</style></head>\n"
            f"<body>{_header(s)}{_notes(s)}{nav}\n{body}"
            '<p class="note">Every number on this page is in stats.json beside it.</p></body></html>\n')
