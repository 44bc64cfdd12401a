"""`make demo` end to end: every stage on generated data, offline (the default run's full path)."""
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from openwit.demo import run as demo


def test_demo_runs_the_whole_road(tmp_path, wordnet_dir, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--wordnet-dir", str(wordnet_dir)]) == 0
    summary = json.loads((out / "queries" / "summary.json").read_text())
    assert set(summary["entries_per_source"]) >= {"numeral", "wordnet", "unigram", "bigram", "title"}

    dataset = out / "dataset"
    rows = [r for f in sorted(dataset.glob("[0-9]" * 5 + ".parquet")) for r in pq.read_table(f).to_pylist()]
    by_url = {r["url"].rsplit("/", 1)[1]: r for r in rows}
    # the three broken-on-purpose URLs end with their own reasons, the rest succeed
    assert by_url["missing.jpg"]["status"] == "failed_to_download" and "404" in by_url["missing.jpg"]["error_message"]
    assert by_url["not-really.jpg"]["error_message"].startswith("not_an_image")
    assert by_url["truncated.jpg"]["status"] == "failed_to_resize"
    ok = [r for r in rows if r["status"] == "success"]
    assert len(ok) == len(rows) - 3 and len(ok) > 100
    # every success is in a tar with its caption, and the tokenizer + loader consumed them
    with tarfile.open(dataset / "00000.tar") as tar:
        names = tar.getnames()
    assert names and all(n.split(".", 1)[1] in ("jpg", "txt", "json") for n in names)
    assert (dataset / "tokenizer.json").exists() and (dataset / "report" / "report.html").exists()
    assert "batches: images (16, 3, 128, 128)" in capsys.readouterr().out
    # the report marks the cap the demo balanced with (OUT/queries_meta.json), not the 20,000 default
    report = json.loads((dataset / "report" / "stats.json").read_text())
    assert report["queries"]["t"] == 20 and report["queries"]["balance"]["entries_head"] > 0
    assert (out / demo.MARKER).is_file()  # a later run may clear this folder


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
