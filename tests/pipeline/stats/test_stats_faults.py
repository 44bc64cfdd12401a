"""openwit-stats and the shard stage on damaged output folders (issue 10): a corrupt shard Parquet,
a corrupt `_stats.json` or `query_counts.parquet` is one line naming the file, or with
`--skip-bad-shards` a shard left out and reported — never a traceback, never counted as committed."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openwit.pipeline import shards
from openwit.pipeline.stats.cli import main


def _shard(out, n: int, statuses: list[str]) -> None:
    rows = [{"key": f"{n:05d}{i:04d}", "url": f"http://x/{n}/{i}", "caption": "a cat", "status": s,
             "error_message": None if s == "success" else "http_404: Not Found", "width": 8, "height": 8,
             "original_width": 8, "original_height": 8, "uid": f"{n}-{i}", "query_ids": [0]}
            for i, s in enumerate(statuses)]
    pq.write_table(pa.Table.from_pylist(rows), out / f"{n:05d}.parquet")
    (out / f"{n:05d}_stats.json").write_text(json.dumps({"shard": n, "count": len(rows), "successes":
                                                         statuses.count("success"), "settings": {"image_size": 8}}))


@pytest.fixture
def out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for n in range(3):
        _shard(out, n, ["success"] * (n + 2) + ["failed_to_download"])
    pq.write_table(pa.table({"query_id": [0], "query": ["cat"], "matched": [9], "kept": [9]}),
                   out / "query_counts.parquet")
    return out


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_corrupt_shard_parquet_names_the_file(out, capsys):
    (out / "00001.parquet").write_bytes(b"PAR1 this is not parquet")
    assert main([str(out)]) == 2
    line = _one_line(capsys)
    assert "00001.parquet" in line and "--skip-bad-shards" in line
    assert not (out / "report").exists()


@pytest.mark.parametrize("marker", [b'{"shard": 1, "count"', b"[1, 2]", b"\xff\xfe"])
def test_corrupt_marker_is_not_a_committed_shard(out, capsys, marker):
    (out / "00001_stats.json").write_bytes(marker)
    assert main([str(out)]) == 2
    line = _one_line(capsys)
    assert "00001_stats.json: corrupt shard marker" in line
    assert not (out / "report").exists()


def test_skip_bad_shards_reports_without_them(out, capsys, caplog):
    (out / "00001.parquet").write_bytes(b"PAR1 this is not parquet")
    (out / "00002_stats.json").write_text("{")
    assert main([str(out), "--skip-bad-shards"]) == 0
    stats = json.loads((out / "report" / "stats.json").read_text())
    assert [s["shard"] for s in stats["shards"]["skipped"]] == [1, 2]
    assert stats["shards"]["skipped"][0]["file"].endswith("00001.parquet")
    assert stats["shards"]["committed"] == 1 and stats["samples"]["attempted"] == 3  # shard 0 only
    assert "left out (--skip-bad-shards)" in (out / "report" / "report.html").read_text()
    assert sum("skipping shard" in r.getMessage() for r in caplog.records) == 2
    (out / "00000.parquet").write_bytes(b"")
    assert main([str(out), "--skip-bad-shards"]) == 2
    assert "no readable shard" in _one_line(capsys)


def test_corrupt_query_counts_names_the_file(out, capsys):
    (out / "query_counts.parquet").write_bytes(b"garbage")
    assert main([str(out)]) == 2
    assert "query_counts.parquet: cannot read it" in _one_line(capsys)


def test_shard_stage_refuses_a_corrupt_marker(out, tmp_path, capsys):
    (out / "00000_stats.json").write_text('{"shard": 0,')
    cands = tmp_path / "c.parquet"
    pq.write_table(pa.table({"url": ["http://127.0.0.1:9/a.jpg"], "caption": ["a cat"], "uid": ["u"],
                             "query_ids": [[0]]}), cands)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert shards.main(["--candidates", str(cands), "--out", str(out), "--image-size", "8"]) == 2
    line = _one_line(capsys)
    assert "00000_stats.json: corrupt shard marker" in line and "delete it to rebuild" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
