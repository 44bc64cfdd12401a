"""common/layout.py: the names under OUT/, listing committed shards, reading markers."""
import json

import pytest

from openwit.common import layout


def test_shard_names_and_paths():
    assert layout.shard_name(12, layout.TAR) == "00012.tar"
    assert layout.shard_path("gs://b/out/", 3, layout.MARKER) == "gs://b/out/00003_stats.json"
    assert layout.shard_path("out", 123456, layout.PARQUET) == "out/123456.parquet"  # more than 5 digits
    assert [layout.shard_number(p) for p in ("a/00007.tar", "00007_stats.json", "x/00012.parquet/",
                                              "a/0007.tar", "a/00007.json", "a/query_counts.parquet")] == [
        7, 7, 12, None, None, None]
    assert layout.timing_path("out", 4) == "out/timing/00004.json"
    assert layout.shard_temp_glob("out/", 4) == "out/.00004*.tmp-*"


def test_other_outputs():
    assert layout.candidate_file("o", 3, 10) == "o/candidates/candidates-00003-of-00010.parquet"
    assert layout.candidates_glob("s3://b/o") == "s3://b/o/candidates/*.parquet"
    assert layout.join("o", layout.QUERY_COUNTS) == "o/query_counts.parquet"
    assert layout.tokenizer_path("o/") == "o/tokenizer.json" and layout.report_dir("o") == "o/report"
    assert layout.lock_path("o") == "o/.openwit.lock"
    run = layout.staging_dir("o", "abc")
    assert run == "o/.openwit-staging-abc" and layout.is_staging_name(run.rsplit("/", 1)[1])
    assert not layout.is_staging_name(".openwit-staging") and not layout.is_staging_name("candidates")
    assert layout.queries_file("q") == "q/queries.parquet" and layout.queries_file("x/my.parquet") == "x/my.parquet"


def test_list_shards_committed_and_uncommitted(tmp_path):
    for n in (0, 1, 2):
        (tmp_path / f"{n:05d}.parquet").write_bytes(b"p")
        (tmp_path / f"{n:05d}.tar").write_bytes(b"t")
    for n in (0, 2, 5):  # 5: a marker without Parquet is neither
        (tmp_path / f"{n:05d}_stats.json").write_text("{}")
    (tmp_path / "query_counts.parquet").write_bytes(b"q")
    (tmp_path / "notes_stats.json").write_text("{}")
    committed, uncommitted = layout.list_shards(str(tmp_path))
    assert [s.shard for s in committed] == [0, 2] and uncommitted == [1]
    assert committed[1].parquet.endswith("00002.parquet") and committed[1].stats.endswith("00002_stats.json")
    assert [p.rsplit("/", 1)[1] for p in layout.marker_paths(str(tmp_path))] == [
        "00000_stats.json", "00002_stats.json", "00005_stats.json"]
    assert layout.list_shards(str(tmp_path / "empty")) == ([], [])


def test_markers(tmp_path):
    good = tmp_path / "00000_stats.json"
    good.write_text(json.dumps({"successes": 3}))
    assert layout.read_marker(str(good)) == {"successes": 3}
    assert layout.parse_marker(b'{"count": 1}', "x") == {"count": 1}
    for data, what in ((b"[1]", "a JSON list, not an object"), (b"{", "JSONDecodeError"), (b"\xff", "UnicodeDecodeError")):
        with pytest.raises(layout.BadShardFile) as e:
            layout.parse_marker(data, "s/00001_stats.json")
        assert e.value.path == "s/00001_stats.json" and what in e.value.detail
    with pytest.raises(layout.BadShardFile):
        layout.read_marker(str(tmp_path / "missing_stats.json"))
    assert layout.read_json(str(tmp_path / "missing.json")) is None and layout.read_json(str(good)) == {"successes": 3}


def test_names_import_without_beam():
    """The loader reads markers over http: the names and the parser must not pull Beam in."""
    import subprocess
    import sys

    code = "import sys, openwit.common.layout; print('apache_beam' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
