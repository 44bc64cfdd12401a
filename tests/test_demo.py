"""`make demo` end to end: every stage on generated data, offline (the default run's full path)."""
import json
import tarfile

import pyarrow.parquet as pq

from openwit.pipeline import demo


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
