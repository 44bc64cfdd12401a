"""The report of a real build (issue 13): openwit-build on a loopback web → candidate_counts.json,
stats.json and report.html checked against the build's own files, recounted here independently;
and the page opened in a real browser (Debian's chromium, headless; skipped where it is absent).

The web has what a dataset engineer looks for: a damaged input line and a too-short caption (drop
reasons), a repeated (url, caption) pair, captions matching nothing, a head query ("a") over t,
queries from four sources, a 404, an HTML page served as an image, a robots.txt refusal and an
X-Robots-Tag noai opt-out, one URL with two captions, one image behind two URLs, one caption on
two images, and a caption longer than the 77-token context.
"""
import html
import json
import re
import shlex
import shutil
import subprocess
import tempfile
from collections import Counter

import pyarrow.parquet as pq
import pytest
from loopback_server import LoopbackServer

from openwit.pipeline import cli
from openwit.pipeline.shards import shard_config
from openwit.pipeline.stats import compute_stats

QUERIES = [("a", "wordnet"), ("red", "wordnet"), ("blue", "wordnet"), ("cat", "wordnet"), ("zebra", "wordnet"),
           ("gone", "wordnet"), ("page", "wordnet"), ("opted", "wordnet"), ("behind", "wordnet"),
           ("photo", "unigram"), ("one", "unigram"), ("two", "unigram"), ("word5", "unigram"),
           ("red cat", "bigram"), ("Blue Planet", "title")]  # entries matched ≤ t times keep their captions
T = 3
LONG = "a red photo of " + " ".join(f"word{i}" for i in range(90))


def _records(srv) -> list:
    recs = []
    for i in range(14):
        recs.append({"url": srv.url(f"/gen/{40 + 9 * i}x{30 + 5 * (i % 7)}.jpg?i={i}"),
                     "caption": f"a red cat photo number {i}" if i % 2 else f"a blue photo number {i}"})
    recs += [
        {"url": srv.url("/gen/64x48.jpg?same=1"), "caption": "a photo of the Blue Planet"},
        {"url": srv.url("/gen/64x48.jpg?same=2"), "caption": "a photo of the Blue Planet"},  # same image, same caption
        {"url": srv.url("/gen/50x50.png"), "caption": "a red photo one"},  # one URL, two captions
        {"url": srv.url("/gen/50x50.png"), "caption": "a red photo two"},
        {"url": srv.url("/gen/50x50.png"), "caption": "a red photo two"},  # a repeated (url, caption) pair
        {"url": srv.url("/gen/60x40.jpg?long"), "caption": LONG},
        {"url": srv.url("/status/404"), "caption": "a red photo that is gone"},
        {"url": srv.url("/html-as-jpeg"), "caption": "a blue photo that is a page"},
        {"url": srv.url("/robots-tag/gen/32x32.png?v=noai"), "caption": "a blue cat opted out"},
        {"url": srv.url("/private/gen/8x8.png"), "caption": "a red cat behind robots.txt"},
        {"url": srv.url("/gen/20x20.jpg?nomatch"), "caption": "nothing here is wanted"},
        {"url": srv.url("/gen/20x20.jpg?short"), "caption": "ab"},
    ]
    return recs


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stats_build")
    qdir = tmp / "queries"
    qdir.mkdir()
    import pyarrow as pa

    pq.write_table(pa.table({"query": [q for q, _ in QUERIES], "source": [s for _, s in QUERIES]}),
                   qdir / "queries.parquet")
    with LoopbackServer() as srv:
        srv.robots_txt = "User-agent: *\nDisallow: /private/\n"
        recs = _records(srv)
        lines = [json.dumps(r) for r in recs] + ['{"url": broken']
        (tmp / "pool.jsonl").write_text("\n".join(lines) + "\n")
        out = tmp / "out"
        rc = cli.main(["--queries", str(qdir), "--input", str(tmp / "pool.jsonl"), "--out", str(out),
                       "--samples-per-shard", "8", "--image-size", "32", "--max-per-query", str(T),
                       "--allow-private-addresses", "--robots-txt", "--tokenizer-vocab-size", "600",
                       "--timeout", "5", "--retries", "0", "--runner", "FnApiRunner"])
    assert rc == 0
    stats = json.loads((out / "report" / "stats.json").read_text())
    rows = [r for p in sorted(out.glob("0*.parquet")) for r in pq.read_table(p).to_pylist()]
    return out, recs, len(lines), stats, rows


def test_candidate_counts_file(build):
    out, recs, n_lines, stats, rows = build
    counts = json.loads((out / "candidate_counts.json").read_text())
    cands = pq.read_table(out / "candidates").to_pylist()
    assert counts["format"] == "openwit candidate counts 1"
    assert counts["inputs"] == {"files": 1, "bad_files": 0, "listed": [str(out.parent / "pool.jsonl")]}
    assert counts["records_read"] == n_lines
    assert counts["extract_drops"] == {"bad_json_line": 1, "too_short": 1}
    assert counts["extracted"] == n_lines - 2 and counts["duplicates"] == 1
    assert counts["unique"] == counts["extracted"] - 1 == len({(r["url"], r["caption"]) for r in recs}) - 1
    assert counts["no_match"] == 1 and counts["matched"] == counts["unique"] - 1
    assert counts["kept"] == len(cands) == len(rows) and counts["balanced_out"] == counts["matched"] - counts["kept"]
    assert not list(out.glob(".openwit-staging*"))  # staged, then committed with the candidates


def test_stats_recounted_from_the_shards(build):
    out, recs, n_lines, s, rows = build
    ok = [r for r in rows if r["status"] == "success"]
    steps = {st["step"]: st for st in s["funnel"]["steps"]}
    assert [st["step"] for st in s["funnel"]["steps"]] == [
        "records_read", "extracted", "unique", "matched", "kept", "attempted", "success"]
    assert steps["records_read"]["count"] == n_lines and steps["success"]["count"] == len(ok)
    assert steps["extracted"]["dropped"] == {"bad_json_line": 1, "too_short": 1}
    failures = Counter(f"{r['status']}: {r['error_message'].split(':')[0]}" for r in rows if r["status"] != "success")
    assert steps["success"]["dropped"] == dict(failures) and steps["attempted"]["count"] == len(rows)
    assert {"failed_to_download: http_404", "failed_to_download: not_an_image", "failed_to_download: robots_txt",
            "failed_to_download: opt_out_noai"} <= set(failures)

    qc = pq.read_table(out / "query_counts.parquet").to_pylist()
    assert [(r["query"], r["source"]) for r in qc] == QUERIES
    hits = Counter(q for r in ok for q in r["query_ids"])
    by_source = {r["source"]: r for r in s["queries"]["by_source"]}
    assert list(by_source) == ["wordnet", "unigram", "bigram", "title"]
    for src in by_source:
        ids = [i for i, (_, so) in enumerate(QUERIES) if so == src]
        row = by_source[src]
        assert row["entries"] == len(ids) and row["matches"] == sum(qc[i]["matched"] for i in ids)
        assert row["kept"] == sum(qc[i]["kept"] for i in ids) and row["successes"] == sum(hits[i] for i in ids)
        assert row["entries_head"] == sum(qc[i]["matched"] > T for i in ids)
        assert row["entries_with_success"] == sum(hits[i] > 0 for i in ids)
        assert row["samples"] == sum(any(QUERIES[q][1] == src for q in r["query_ids"]) for r in ok)
    top = s["queries"]["top"][0]
    assert (top["query"], top["source"]) == ("a", "wordnet") and top["kept"] > T and top["kept_over_t"]

    dom = s["domains"]
    assert dom["distinct"] == 1 and dom["opt_outs"] == {"robots_txt": 1, "x_robots_tag": 1, "domains": 1}
    assert dom["top_by_samples"][0] == {**dom["top_by_samples"][0], "domain": "127.0.0.1", "attempted": len(rows),
                                        "successes": len(ok)}
    dup = s["duplicates"]
    for key, values in (("url", [r["url"] for r in rows]), ("caption", [r["caption"] for r in ok]),
                        ("sha256", [r["sha256"] for r in rows if r["sha256"]])):
        assert dup[key]["values"] == len(values) and dup[key]["distinct"] == len(set(values)), key
        assert dup[key]["duplicates"] == len(values) - len(set(values)) >= 1, key
    assert dup["url"]["top"][0]["example"].endswith("/gen/50x50.png")

    heights = sorted(r["original_height"] for r in ok)
    h = s["image_sizes"]["original_height"]
    assert h["percentiles"]["p50"] == heights[(len(heights) + 1) // 2 - 1] and h["max"] == heights[-1]
    assert sum(h["counts"]) == len(ok) and h["edges"][0] <= heights[0] and h["edges"][-1] > heights[-1]

    tok = s["captions"]["tokens"]
    assert (tok["tokenizer"], tok["sampled"], tok["context_length"]) == ("tokenizer.json", len(ok), 77)
    from openwit.loader.tokenizer import CaptionTokenizer  # the loader's own count, at a longer context

    ct = CaptionTokenizer.from_file(str(out / "tokenizer.json"), context_length=1024)
    ids = ct([r["caption"] for r in ok])
    lengths = [row.tolist().index(ct.eot_id) + 1 for row in ids]
    assert tok["truncated"] == sum(n > 77 for n in lengths) >= 1 and tok["lengths"]["max"] == max(lengths)

    assert s["disk"]["tar"] == sum(p.stat().st_size for p in out.glob("0*.tar"))
    assert [r["shard"] for r in s["per_shard"]] == sorted({int(r["key"][:5]) for r in rows})
    keys = {r["key"] for r in ok}
    assert s["gallery"] and all(g["key"] in keys for g in s["gallery"])
    assert all(isinstance(q, str) for g in s["gallery"] for q in g["query_ids"])


def test_command_rebuilds_the_settings(build):
    out, _, _, s, rows = build
    argv = shlex.split(s["build"]["command"])
    assert argv[0] == "openwit-build" and argv[argv.index("--out") + 1] == str(out)
    args, beam_args = cli.parse_args(argv[1:])
    assert beam_args == [] and (args.max_per_query, args.balance, args.robots_txt) == (T, "metaclip", True)
    marker = json.loads(next(out.glob("0*_stats.json")).read_text())
    assert shard_config(args, local=True).settings == marker["settings"]
    assert compute_stats(str(out)) == s  # stats.json is the data's alone: recomputed, the same


def test_page_reads_as_words(build):
    out, _, _, s, _ = build
    page = (out / "report" / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|pre)>.*?</\1>", " ", page, flags=re.S))  # what one reads
    text = html.unescape(re.sub(r"\s+", " ", text))
    for raw in ("original_min_side_all", "failed_to_download", "entries_with_success", "success_rate",
                "opt_out_noai", "robots_txt", "e+0", "e-0"):
        assert raw not in text, raw  # labels, not keys; no scientific notation
    assert "<pre>openwit-build --queries " in page
    for words in ("From input records to the dataset", "HTTP 404", "robots.txt",
                  "opted out (X-Robots-Tag noai)", "kept can exceed t = 3", "longer than the 77-token context",
                  "Most repeated captions", "report generated", "Per-shard table"):
        assert words in text, words
    assert page.count("data:image/jpeg;base64,") == len(s["gallery"])
    assert len(page) < 5_000_000


CHECK = """<script>
var openwitErrors = [];
window.addEventListener("error", function (e) {
  openwitErrors.push(String(e.message || (e.target && (e.target.src || e.target.href)) || "error"));
}, true);
window.addEventListener("load", function () {
  var imgs = [].map.call(document.images, function (i) {
    return [i.getAttribute("src").slice(0, 40), i.complete && i.naturalWidth > 0]; });
  var funnel = [].map.call(document.querySelectorAll("tr[data-step]"), function (tr) {
    return [tr.getAttribute("data-step"), tr.cells[1].textContent]; });
  var pre = document.createElement("pre");
  pre.id = "openwit-check";
  pre.textContent = JSON.stringify({imgs: imgs, funnel: funnel, errors: openwitErrors});
  document.body.appendChild(pre);
});
</script>"""


def test_page_in_a_real_browser(build, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium): no browser check")
    out, _, _, s, _ = build
    report = tmp_path / "report"
    shutil.copytree(out / "report", report)
    page = (report / "report.html").read_text()
    (report / "check.html").write_text(page.replace("<head>", "<head>" + CHECK, 1))
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom",
             (report / "check.html").as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="openwit-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    check = json.loads(html.unescape(found.group(1)))
    assert check["errors"] == [] and not re.findall(r":CONSOLE[^\n]*", proc.stderr)
    plots = sorted(p.name for p in report.glob("*.png"))
    assert len(check["imgs"]) == len(plots) + len(s["gallery"]) and all(ok for _, ok in check["imgs"]), check["imgs"]
    shown = {step: int(text.replace(",", "")) for step, text in check["funnel"]}
    assert shown == {st["step"]: st["count"] for st in s["funnel"]["steps"]}
