"""openwit-queries as users run it: the offline demo inputs, byte-identical reruns, one-line errors."""
import bz2
import json
import subprocess
import sys

import pyarrow.parquet as pq

from openwit.queries.cli import main
from openwit.demo.wiki import demo_dump_xml, write_demo_dump, write_demo_pageviews


def test_demo_inputs_full_pipeline_and_byte_identical_rerun(tmp_path, wordnet_dir):
    dump = write_demo_dump(str(tmp_path / "demo-pages-articles.xml.bz2"), str(wordnet_dir), n_pages=300)
    pv = write_demo_pageviews(str(tmp_path / "pageviews-20240101-000000"), str(wordnet_dir), n_pages=300)
    assert bz2.decompress(open(dump, "rb").read()).decode() == demo_dump_xml(str(wordnet_dir), 300)
    args = ["--wiki-dump", dump, "--pageviews", pv, "--wordnet-dir", str(wordnet_dir),
            "--min-unigram-count", "3", "--size", "87200"]
    for name in ("a", "b"):
        assert main(["--out", str(tmp_path / name)] + args) == 0
    for f in ("queries.parquet", "queries.txt", "summary.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert all(n > 0 for n in summary["entries_per_source"].values()), summary["entries_per_source"]
    assert summary["entries"] == 87_200 and summary["read"]["skipped_non_article"] == 1
    rows = pq.read_table(tmp_path / "a" / "queries.parquet").to_pylist()
    counted = {r["query"] for r in rows if r["source"] in ("unigram", "bigram")}
    assert "zzyzx" not in counted  # only on the talk page
    assert not counted & {"Infobox", "cite", "thumb", "Category", "ref", "https"}  # markup, not text


def _run(*args):
    proc = subprocess.run([sys.executable, "-m", "openwit.queries", *args], capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stderr


def _one_line_error(rc, stderr, *needles):
    assert rc == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_inputs_give_one_line_errors(tmp_path, wordnet_dir):
    good = bz2.compress(demo_dump_xml(str(wordnet_dir), 200).encode())
    cut = tmp_path / "enwiki-cut.xml.bz2"
    cut.write_bytes(good[: len(good) // 2])
    _one_line_error(*_run("--out", str(tmp_path / "o"), "--wiki-dump", str(cut)), str(cut), "truncated bz2")
    notxml = tmp_path / "notes.xml"
    notxml.write_text("just some notes, not XML\n")
    _one_line_error(*_run("--out", str(tmp_path / "o"), "--wiki-dump", str(notxml)), str(notxml),
                    "not a MediaWiki XML dump")
    missing = tmp_path / "no-wordnet"
    _one_line_error(*_run("--out", str(tmp_path / "o"), "--sources", "numeral,wordnet", "--wordnet-dir",
                          str(missing)), str(missing), "WordNet folder not found")
    _one_line_error(*_run("--out", str(tmp_path / "o"), "--wiki-dump", str(tmp_path / "nope*.bz2")),
                    "nope*.bz2", "no --wiki-dump file matches this pattern")
    # damage in the middle of a plain dump is found inside the pipeline (a DoFn): still one line
    midcut = tmp_path / "enwiki-midcut.xml"
    xml = demo_dump_xml(str(wordnet_dir), 200)
    midcut.write_text(xml[: len(xml) * 2 // 3])
    _one_line_error(*_run("--out", str(tmp_path / "o"), "--wiki-dump", str(midcut), "--sources", "unigram"),
                    "enwiki-midcut.xml", "broken XML")
    assert not (tmp_path / "o").exists()


def test_what_is_missing_is_named(tmp_path, capsys):
    """Without a dump every source that needs one is named (title too); a plain path that does not
    exist is not called a pattern."""
    out = str(tmp_path / "o")
    assert main(["--out", out]) == 2
    assert capsys.readouterr().err == ("error: sources unigram,bigram,title need --wiki-dump (title can also come "
                                       "from --pageviews alone): pass a dump, or use --sources numeral,wordnet\n")
    assert main(["--out", out, "--pageviews", str(tmp_path / "pv")]) == 2
    assert "sources unigram,bigram need --wiki-dump" in capsys.readouterr().err
    assert main(["--out", out, "--wiki-dump", str(tmp_path / "enwiki.xml.bz2"), "--sources", "unigram"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'enwiki.xml.bz2'}: no such --wiki-dump file\n"
    assert not (tmp_path / "o").exists()
