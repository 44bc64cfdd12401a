"""Both Beam pipelines in worker processes (`--direct_num_workers 2 --direct_running_mode
multi_processing`): every DoFn, side input and counter crosses a process boundary pickled, as on
Dataflow, so a pickling mistake (a lambda, a lock, a session made in __init__) fails here. The
outputs equal the in-process run's, byte for byte where openwit promises it."""
import json
import os
import re

import pyarrow.parquet as pq
import pytest

from openwit.demo import crawl, site, web, wiki
from openwit.pipeline import cli as build_cli
from openwit.queries import cli as queries_cli

pytestmark = pytest.mark.slow  # ~45 s: worker processes start, and each pipeline runs twice
WORKERS = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]


def _rows(folder, pattern, columns):
    return sorted(tuple(r[c] for c in columns) for f in sorted(folder.glob(pattern))
                  for r in pq.read_table(f, columns=list(columns)).to_pylist())


def test_queries_and_build_in_worker_processes(tmp_path, wordnet_dir, capsys):
    dump = wiki.write_demo_dump(str(tmp_path / "in" / "wiki-pages-articles.xml.bz2"), str(wordnet_dir), 300)
    views = wiki.write_demo_pageviews(str(tmp_path / "in" / "pageviews-20240101-000000"), str(wordnet_dir), 300)
    for name, extra in (("procs", WORKERS), ("inproc", [])):
        assert queries_cli.main(["--out", str(tmp_path / name / "queries"), "--wiki-dump", dump, "--pageviews", views,
                                 "--wordnet-dir", str(wordnet_dir), "--min-unigram-count", "5", *extra]) == 0
    for f in ("queries.parquet", "queries.txt"):
        assert (tmp_path / "procs" / "queries" / f).read_bytes() == (tmp_path / "inproc" / "queries" / f).read_bytes()

    summaries = {}
    pages = site.write_site(str(tmp_path / "www"), n_pictures=40)
    with web.DemoWeb(str(tmp_path / "www")) as net:
        warc = crawl.crawl_to_warc(net.proxy, pages.pages, str(tmp_path / "in" / "crawl.warc.gz"))
        for name, extra in (("procs", WORKERS), ("inproc", [])):
            capsys.readouterr()
            assert build_cli.main(["--queries", str(tmp_path / name / "queries"), "--input", warc,
                                   "--out", str(tmp_path / name / "dataset"), "--proxy", net.proxy,
                                   "--samples-per-shard", "20", "--image-size", "32", "--timeout", "2",
                                   "--retries", "0", "--min-image-size", "16", "--no-report",
                                   "--tokenizer-vocab-size", "0", *extra]) == 0
            printed = capsys.readouterr().out.replace(str(tmp_path / name), "OUT")
            summaries[name] = re.sub(r"done in [^→]+→", "done in T →", printed)
    assert summaries["procs"] == summaries["inproc"]  # what the run printed (but the wall time), counters included
    procs, inproc = tmp_path / "procs" / "dataset", tmp_path / "inproc" / "dataset"
    cols = ("url", "caption", "status", "error_message", "sha256")
    assert _rows(procs, "[0-9]" * 5 + ".parquet", cols) == _rows(inproc, "[0-9]" * 5 + ".parquet", cols)
    assert len(_rows(procs, "[0-9]" * 5 + ".parquet", cols)) > 40
    funnel = json.loads((procs / "candidate_counts.json").read_text())
    assert funnel == json.loads((inproc / "candidate_counts.json").read_text()) and funnel["extracted"] == 63
    assert sorted(os.listdir(procs / "candidates")) == sorted(os.listdir(inproc / "candidates"))
    for f in os.listdir(inproc / "candidates"):
        assert (procs / "candidates" / f).read_bytes() == (inproc / "candidates" / f).read_bytes()
