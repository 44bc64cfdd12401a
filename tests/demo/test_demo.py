"""`make demo` end to end on a small site (the default run's every step, fewer pictures, one epoch),
the site's failure accounting, the crawl's determinism, and the folder-safety rules."""
import json
import os
import re
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from openwit.demo import crawl, site, web
from openwit.demo import run as demo
from openwit.pipeline.extract import extract_file

FETCH_FAILURES = {"opt_out_noai", "timeout", "http_404", "http_500", "http_502", "private_address", "not_an_image"}


def test_demo_runs_the_whole_road(tmp_path, wordnet_dir, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--wordnet-dir", str(wordnet_dir), "--pictures", "90", "--epochs", "1",
                      "--held-out-per-class", "3", "--samples-per-shard", "40"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "queries" / "summary.json").read_text())
    assert set(summary["entries_per_source"]) >= {"numeral", "wordnet", "unigram", "bigram", "title"}

    # the crawl: a WARC the pipeline reads, holding every page of the site
    pages = site.write_site(str(tmp_path / "again"), 90)
    warc = out / "inputs" / "crawl.warc.gz"
    assert {r["page_url"] for r, _ in extract_file(str(warc)) if r} == set(pages.pages)

    # every <img> ended as the site says: dropped at extraction, a duplicate, failed, or in a shard
    dataset = out / "dataset"
    counts = json.loads((dataset / "candidate_counts.json").read_text())
    expect = Counter(i.expect for i in pages.images)
    assert counts["extract_drops"] == {k: expect[k] for k in ("no_text", "data_uri", "bad_scheme", "filename_like")}
    assert counts["duplicates"] == expect["duplicate"] and counts["no_match"] == expect["no_match"] == 2
    assert counts["balanced_out"] == 0
    rows = {r["url"]: r for f in sorted(dataset.glob("[0-9]" * 5 + ".parquet")) for r in pq.read_table(f).to_pylist()}
    for img in pages.images:
        if img.expect == "ok":
            assert rows[img.url]["status"] == "success", rows[img.url]
        elif img.expect in FETCH_FAILURES:
            assert rows[img.url]["status"] == "failed_to_download", rows[img.url]
            assert rows[img.url]["error_message"].startswith(img.expect), rows[img.url]
        elif img.expect in ("failed_to_resize", "filtered"):
            assert rows[img.url]["status"] == img.expect, rows[img.url]
    assert sum(r["status"] == "success" for r in rows.values()) == expect["ok"]
    with tarfile.open(dataset / "00000.tar") as tar:
        names = tar.getnames()
    assert names and all(n.split(".", 1)[1] in ("jpg", "txt", "json") for n in names)
    assert (dataset / "tokenizer.json").exists() and (dataset / "report" / "report.html").exists()

    # trained, evaluated, and the last lines say what to open first and where the checkpoint is
    tail = printed[printed.index("demo done in"):]
    assert f"Open first: {dataset / 'report' / 'report.html'}\n" in tail and os.path.isabs(str(dataset))
    checkpoint = re.search(r"checkpoint: (\S+) \(step (\d+)", tail)
    assert Path(checkpoint.group(1)).is_file() and checkpoint.group(2) == "2"  # 80 of 115 samples, batch 64
    for task, classes in (("shape", 6), ("colour", 6)):
        assert re.search(rf"{task} +{classes} +{3 * classes} +[\d.]+% +16\.7%", tail), tail
    assert re.search(r"image → text +R@1 +[\d.]+% +R@5", tail)
    assert (out / demo.MARKER).is_file()  # a later run may clear this folder


def test_site_and_crawl_are_deterministic(tmp_path):
    warcs = []
    for name in ("a", "b"):
        pages = site.write_site(str(tmp_path / name / "www"), 35)
        with web.DemoWeb(str(tmp_path / name / "www")) as net:
            warcs.append(Path(crawl.crawl_to_warc(net.proxy, pages.pages, str(tmp_path / name / "crawl.warc.gz"))).read_bytes())
    assert warcs[0] == warcs[1] and len(pages.pages) == 4  # 2 gallery pages, the museum, the odd ones


def test_demo_out_is_only_cleared_when_an_earlier_demo_wrote_it(tmp_path, capsys):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("irreplaceable")
    assert demo.main(["--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {mine} is not empty and not an earlier demo output") and err.count("\n") == 1
    assert (mine / "chapter1.tex").read_text() == "irreplaceable"
    (tmp_path / "a-file").write_text("x")
    os.symlink(mine, tmp_path / "a-link")
    for bad in ("a-file", "a-link"):
        assert demo.main(["--out", str(tmp_path / bad)]) == 2
        assert "is not a folder" in capsys.readouterr().err
    assert (mine / "chapter1.tex").exists() and (tmp_path / "a-file").read_text() == "x"
    earlier = tmp_path / "earlier"  # an earlier demo's output: cleared, marked again
    demo.prepare_out(str(earlier))
    (earlier / "dataset").mkdir()
    (earlier / "dataset" / "00000.tar").write_bytes(b"old")
    demo.prepare_out(str(earlier))
    assert sorted(p.name for p in earlier.iterdir()) == [demo.MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    demo.prepare_out(str(empty))
    assert (empty / demo.MARKER).is_file()


def test_makefile_never_deletes_an_unmarked_demo_out(tmp_path):
    if subprocess.run(["make", "--version"], capture_output=True).returncode != 0:
        pytest.skip("make not installed")
    makefile = Path(__file__).resolve().parents[2] / "Makefile"
    dry = subprocess.run(["make", "-n", "-f", str(makefile), "-C", str(makefile.parent), "demo",
                          f"DEMO_OUT={tmp_path / 'x'}"], capture_output=True, text=True)
    assert "-m openwit.demo --out" in dry.stdout and "rm -rf" not in dry.stdout  # the demo clears, checked
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    clean = ["make", "-s", "-f", str(makefile), "-C", str(tmp_path), "clean"]  # relative paths under tmp_path
    refused = subprocess.run(clean + [f"DEMO_OUT={mine}"], capture_output=True, text=True)
    assert refused.returncode != 0 and (mine / "notes.txt").read_text() == "keep"
    assert refused.stderr.startswith(f"error: {mine} is not an earlier demo output")
    (mine / demo.MARKER).write_text("")
    assert subprocess.run(clean + [f"DEMO_OUT={mine}"], capture_output=True).returncode == 0 and not mine.exists()
