"""`openwit-build --stage candidates` end to end on the real sample files, and its error paths."""
import json
import os
import subprocess
import sys

import pyarrow as pa
import pytest
import pyarrow.parquet as pq

from openwit.common.errors import UserError
from openwit.pipeline import cli
from openwit.pipeline.shards import shard_config
from openwit.pipeline.candidates.spacing import naive_match

QUERIES = ["Vol", "Artists", "Leather", "black", "cat", "a", "the", "Semantic Scholar", "中国新闻网", "Hovenier",
           "bus station", "wedding", "New York", "dress", "Stratégie"]


def _queries(tmp_path):
    qdir = tmp_path / "queries"
    qdir.mkdir()
    pq.write_table(pa.table({"query": QUERIES, "source": ["unigram"] * len(QUERIES),
                             "score": [1.0] * len(QUERIES)}), qdir / "queries.parquet")
    return qdir


def test_build_candidates_end_to_end(shared_data, tmp_path, capsys, caplog):
    qdir, out = _queries(tmp_path), tmp_path / "out"
    warcs = str(shared_data / "warc" / "*.warc.gz")
    tables = [str(shared_data / "metadata" / "img2dataset_test_10000.parquet"),
              str(shared_data / "metadata" / "cc3m_*.tsv")]
    argv = ["--queries", str(qdir), "--input", warcs, *tables, "--out", str(out), "--stage", "candidates",
            "--max-per-query", "300", "--seed", "1", "--runner", "DirectRunner"]
    assert cli.main(argv) == 0
    summary = capsys.readouterr().out.splitlines()
    assert summary[0].startswith("openwit-build: done in ") and summary[0].endswith(f"→ {out}")
    assert summary[1].startswith("candidates: 7 input files (1 bad, see the warnings), ")
    assert summary[2].startswith("  dropped: at extraction ") and "no_text" in summary[2]
    assert summary[-1] == f"{out / 'candidates'}/"  # the last line: what was made
    assert any("resiliparse-clipped.warc.gz at byte 0" in r.getMessage() for r in caplog.records)

    table = pq.read_table(out / "candidates")
    rows = table.to_pylist()
    assert rows and len({(r["url"], r["caption"]) for r in rows}) == len(rows)
    for r in rows:
        assert r["query_ids"] == naive_match(r["caption"], QUERIES)
    sources = {r["source"].rsplit("/", 1)[-1] for r in rows}
    assert {"img2dataset_test_10000.parquet", "resiliparse-warcfile.warc.gz"} <= sources
    assert any(r["page_url"] for r in rows) and any(r["page_url"] is None for r in rows)
    counts = pq.read_table(out / "query_counts.parquet").to_pylist()
    assert [c["query"] for c in counts] == QUERIES
    by_query = {c["query"]: c for c in counts}
    assert by_query["the"]["matched"] > 300 and by_query["the"]["kept"] < by_query["the"]["matched"]
    assert by_query["中国新闻网"]["matched"] == by_query["中国新闻网"]["kept"] == 1
    kept = {q: 0 for q in range(len(QUERIES))}
    for r in rows:
        for q in r["query_ids"]:
            kept[q] += 1
    assert [kept[i] for i in range(len(QUERIES))] == [c["kept"] for c in counts]
    meta = json.loads((out / "queries_meta.json").read_text())
    assert (meta["max_per_query"], meta["balance"], meta["oversample"], meta["seed"]) == (300, "metaclip", 1.0, 1)


def test_cli_errors(tmp_path, capsys):
    qdir = _queries(tmp_path)
    assert cli.main(["--queries", str(tmp_path / "nope"), "--input", str(qdir / "queries.parquet"),
                     "--out", str(tmp_path / "o"), "--stage", "candidates"]) == 2
    assert "nope/queries.parquet: no such query list file" in capsys.readouterr().err
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert cli.main(["--queries", str(tmp_path / "bad.parquet"), "--input", str(qdir / "queries.parquet"),
                     "--out", str(tmp_path / "o"), "--stage", "candidates"]) == 2
    assert "cannot read the query list" in capsys.readouterr().err
    assert cli.main(["--queries", str(qdir), "--input", str(tmp_path / "missing-*.warc.gz"),
                     "--out", str(tmp_path / "o"), "--stage", "candidates"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing-*.warc.gz'}: no input file matches this pattern\n"
    assert cli.main(["--queries", str(qdir), "--input", str(tmp_path / "missing.warc.gz"),
                     "--out", str(tmp_path / "o"), "--stage", "candidates"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.warc.gz'}: no such input file\n"
    args, beam_args = cli.parse_args(["--queries", "q", "--input", "a", "b", "--out", "o", "--runner", "DataflowRunner",
                                      "--project", "p"])
    assert args.input == ["a", "b"] and beam_args == ["--runner", "DataflowRunner", "--project", "p"]
    cfg = shard_config(args, local=True)
    assert (cfg.samples_per_shard, cfg.image.image_size, cfg.image.resize_mode, cfg.image.output_format,
            cfg.image.quality, cfg.image.max_image_pixels, args.stage) == (10_000, 256, "border", "jpg", 95,
                                                                            89_478_485, "all")
    assert (cfg.fetch.timeout, cfg.fetch.retries, cfg.fetch.respect_x_robots_tag, cfg.fetch.robots_txt) == (
        20.0, 2, True, False)


def test_build_flags_reach_the_shard_settings():
    """Every fetch/image flag of openwit-build lands in the settings the shard workers get."""
    args, beam_args = cli.parse_args([
        "--queries", "q", "--input", "a", "--out", "o", "--seed", "7", "--samples-per-shard", "500",
        "--image-size", "128", "--resize-mode", "center_crop", "--resize-only-if-bigger", "--output-format", "webp",
        "--quality", "80", "--min-image-size", "32", "--max-aspect-ratio", "3", "--max-image-area", "1e7",
        "--max-image-pixels", "1000000", "--user-agent-token", "mybot", "--proxy", "http://127.0.0.1:3128",
        "--allow-private-addresses", "--timeout", "7", "--read-timeout", "2", "--connect-timeout", "1.5",
        "--max-bytes", "1000", "--retries", "0", "--concurrency", "9", "--per-host-connections", "3",
        "--per-host-rps", "0.5", "--max-redirects", "1", "--robots-txt", "--ignore-x-robots-tag",
        "--image-threads", "3", "--dedup-sha256", "--retry-failed", "--no-report", "--runner", "FnApiRunner"])
    assert beam_args == ["--runner", "FnApiRunner"] and args.report is False and args.tokenizer_vocab_size == 32_000
    with pytest.raises(UserError, match="--tokenizer-vocab-size"):
        cli.parse_args(["--queries", "q", "--input", "a", "--out", "o", "--tokenizer-vocab-size", "100"])
    cfg = shard_config(args, local=True)
    assert (cfg.seed, cfg.samples_per_shard, cfg.threads, cfg.dedup_sha256, cfg.retry_failed) == (7, 500, 3, True, True)
    assert (cfg.image.image_size, cfg.image.resize_mode, cfg.image.resize_only_if_bigger, cfg.image.output_format,
            cfg.image.quality, cfg.image.min_image_size, cfg.image.max_aspect_ratio, cfg.image.max_image_area,
            cfg.image.max_image_pixels) == (128, "center_crop", True, "webp", 80, 32, 3.0, 1e7, 1_000_000)
    f = cfg.fetch
    assert (f.user_agent_token, f.proxy, f.allow_private_addresses, f.timeout, f.read_timeout, f.connect_timeout,
            f.max_bytes, f.retries, f.concurrency, f.per_host_connections, f.per_host_rps, f.max_redirects,
            f.robots_txt, f.respect_x_robots_tag) == ("mybot", "http://127.0.0.1:3128", True, 7.0, 2.0, 1.5, 1000,
                                                       0, 9, 3, 0.5, 1, True, False)


# DESIGN.md's "CLI surface" for openwit-build: names users, docs and checks rely on.
PROMISED = {"--queries": None, "--input": None, "--out": None, "--stage": ["candidates", "all"], "--url-col": None,
            "--caption-col": None, "--max-per-query": None, "--balance": ["metaclip", "exact"], "--oversample": None,
            "--seed": None, "--samples-per-shard": None, "--image-size": None,
            "--resize-mode": ["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"],
            "--resize-only-if-bigger": None, "--output-format": ["jpg", "webp", "png"], "--quality": None,
            "--min-image-size": None, "--max-aspect-ratio": None, "--max-image-pixels": None,
            "--user-agent-token": None, "--proxy": None, "--allow-private-addresses": None, "--retry-failed": None}


def test_cli_surface_and_module_entry_point(monkeypatch):
    """Every promised flag (and its choices) is openwit-build's; `python -m openwit.pipeline` is openwit-build."""
    actions = {s: a for a in cli.build_parser()._actions for s in a.option_strings}
    for flag, choices in PROMISED.items():
        assert flag in actions, flag
        assert choices is None or list(actions[flag].choices) == choices, flag
    monkeypatch.setenv("COLUMNS", "100")
    proc = subprocess.run([sys.executable, "-m", "openwit.pipeline", "--help"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "100"})
    assert proc.returncode == 0 and proc.stdout == cli.build_parser().format_help()
