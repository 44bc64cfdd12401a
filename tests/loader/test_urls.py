"""loader/urls.py directly: URL expansion, openers, short names, sidecar files and their counts."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openwit.common.errors import UserError
from openwit.loader import urls


def test_expand_urls():
    assert urls.expand_urls("s/{00000..00002}.tar") == ["s/00000.tar", "s/00001.tar", "s/00002.tar"]
    assert urls.expand_urls("a/{0..1}.tar::b/x.tar") == ["a/0.tar", "a/1.tar", "b/x.tar"]
    assert urls.expand_urls(["a.tar", "gs://b/{7..8}.tar"]) == ["a.tar", "gs://b/7.tar", "gs://b/8.tar"]
    with pytest.raises(UserError, match="no shard URLs"):
        urls.expand_urls([])


def test_check_openers():
    urls.check_openers(["local.tar", "file:///x.tar", "pipe:cat x.tar", "http://h/x.tar", "memory://x.tar"])
    with pytest.raises(UserError, match="cannot read nosuchscheme://"):
        urls.check_openers(["nosuchscheme://bucket/x.tar"])


def test_shard_name_and_sidecar():
    assert urls.shard_name("gs://b/out/00007.tar") == "00007.tar" and urls.shard_name("pipe:cat x") == "pipe:cat x"
    assert urls.sidecar("gs://b/out/00007.tar", "_stats.json") == "gs://b/out/00007_stats.json"
    assert urls.sidecar("out/00007.tar", ".parquet") == "out/00007.parquet"
    assert urls.sidecar("pipe:cat out/00007.tar", ".parquet") is None
    assert urls.sidecar("out/00007.tar.gz", ".parquet") is None


def _parquet(path, statuses):
    pq.write_table(pa.table({"status": statuses}), path)


def test_known_sample_count(tmp_path, caplog):
    shard = str(tmp_path / "00000.tar")
    assert urls.known_sample_count(shard) is None  # no sidecar at all: the loader counts by reading
    _parquet(tmp_path / "00000.parquet", ["success", "failed_to_download", "success"])
    assert urls.known_sample_count(shard) == 2  # from the Parquet's success rows
    (tmp_path / "00000_stats.json").write_text(json.dumps({"successes": 5, "count": 9}))
    assert urls.known_sample_count(shard) == 5  # the marker comes first
    (tmp_path / "00000_stats.json").write_text(json.dumps({"count_success": 4}))  # older img2dataset field
    assert urls.known_sample_count(shard) == 4
    (tmp_path / "00000_stats.json").write_text(json.dumps({"successes": -3}))
    assert urls.known_sample_count(shard) == 2 and "ignoring 00000_stats.json" in caplog.text  # bad: next source
    (tmp_path / "00000_stats.json").write_text("[1, 2]")  # not a marker object: passed over
    assert urls.known_sample_count(shard) == 2
    assert urls.known_sample_count("pipe:cat " + shard) is None


def test_open_url_reads_local_and_pipe(tmp_path):
    path = tmp_path / "x.tar"
    path.write_bytes(b"abc")
    with urls.open_url(str(path)) as f:
        assert f.read() == b"abc"
    with urls.open_url(f"pipe:cat {path}") as f:
        assert f.read() == b"abc"


def test_globs_and_folders_expand_sorted(tmp_path):
    for name in ("00002.tar", "00000.tar", "00001.tar", "00000.parquet"):
        (tmp_path / name).write_bytes(b"x")
    want = [str(tmp_path / f"0000{i}.tar") for i in range(3)]
    assert urls.expand_urls(str(tmp_path / "*.tar")) == want
    assert urls.expand_urls(str(tmp_path)) == want  # a folder: its shards
    assert urls.expand_urls(f"file://{tmp_path}/0000[01].tar::{tmp_path}/00002.tar") == want
    (tmp_path / "odd[1].tar").write_bytes(b"x")
    assert urls.expand_urls(str(tmp_path / "odd[1].tar")) == [str(tmp_path / "odd[1].tar")]  # a file, not a glob
    with pytest.raises(UserError, match=r"no shards match .*\*\.tgz"):
        urls.expand_urls(str(tmp_path / "*.tgz"))
    # http(s): `?` starts a query, nothing is listed; pipe: commands are the shell's
    assert urls.expand_urls("http://h/s.tar?sig=a*b") == ["http://h/s.tar?sig=a*b"]
    assert urls.expand_urls("pipe:cat s/*.tar") == ["pipe:cat s/*.tar"]


def test_globs_on_a_remote_store():
    import fsspec

    fs = fsspec.filesystem("memory")
    for name in ("b/out/00001.tar", "b/out/00000.tar", "b/out/00000_stats.json"):
        fs.pipe(f"/{name}", b"x")
    try:
        found = urls.expand_urls("memory://b/out/*.tar")
        assert [urls.shard_name(u) for u in found] == ["00000.tar", "00001.tar"]
        assert all(u.startswith("memory://") and urls.open_url(u).read() == b"x" for u in found)
        with pytest.raises(UserError, match="no shards match memory://b/none/"):
            urls.expand_urls("memory://b/none/*.tar")
    finally:
        fs.rm("/b", recursive=True)
