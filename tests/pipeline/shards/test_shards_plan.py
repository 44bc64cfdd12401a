"""Shard plan, status decision and shard files (pure parts; no network)."""
import json
import tarfile
from types import SimpleNamespace

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from apache_beam.testing.util import assert_that, equal_to

from openwit.common.beamrun import pipeline_options
from openwit.common.hashing import blake_hex
from openwit.pipeline.shards import plan
from openwit.pipeline.shards import sample as smp
from openwit.pipeline.shards import writer as sw
from openwit.pipeline.shards import PlanShards


def _cands(n):
    return [{"url": f"http://h{i % 7}.test/{i}.jpg", "caption": f"c {i}", "uid": blake_hex(f"u{i}"),
             "query_ids": [i % 3]} for i in range(n)]


def test_plan_full_shards_deterministic_and_order_independent():
    cands = _cands(250)
    a = plan.plan_in_memory(cands, 100, seed=1)
    b = plan.plan_in_memory(list(reversed(cands)), 100, seed=1)
    assert a == b
    assert [len(v) for v in a.values()] == [100, 100, 50]
    assert [i for i, _ in a[0]] == list(range(100))
    hashes = [plan.sort_hash(c["uid"], 1) for s in a.values() for _, c in s]
    assert hashes == sorted(hashes)  # global order is the keyed hash order
    other = plan.plan_in_memory(cands, 100, seed=2)
    assert [c["uid"] for _, c in other[0]] != [c["uid"] for _, c in a[0]]
    # hosts spread: every shard mixes hosts
    assert all(len({c["url"].split("/")[2] for _, c in s}) == 7 for s in a.values())


def test_beam_plan_matches_reference():
    cands = _cands(120)
    ref = plan.plan_in_memory(cands, 50, seed=0)
    expected = [(s, sorted((i, c["uid"]) for i, c in items)) for s, items in ref.items()]
    with beam.Pipeline(options=pipeline_options([])) as p:
        got = (p | beam.Create(cands) | PlanShards(0, 50)
               | beam.Map(lambda kv: (kv[0], sorted((i, c["uid"]) for i, c in kv[1]))))
        assert_that(got, equal_to(expected))


def test_keys_have_no_dots_and_fixed_width():
    assert plan.sample_key(3, 7, 10_000) == "000030007"
    assert plan.sample_key(12, 99, 100) == "0001299"
    assert "." not in plan.sample_key(0, 0, 1)


def test_changed_settings_names_the_setting():
    assert plan.changed_settings({"image_size": 256, "seed": 0}, {"image_size": 128, "seed": 0}) == \
        ["image_size: 256 -> 128"]
    assert plan.changed_settings({"a": (1, 2)}, {"a": [1, 2]}) == []


def _fetch(ok=True, reason=None, error=None, data=b"x"):
    return SimpleNamespace(ok=ok, reason=reason, error=error, data=data)


def _image(status="success", reason=None, error=None, data=b"img", sha="s1"):
    return SimpleNamespace(status=status, reason=reason, error=error, data=data, ext="jpg", width=4,
                           height=3, original_width=8, original_height=6, sha256=sha, exif=None)


def test_one_place_decides_status():
    assert smp.decide(_fetch(False, "timeout", "read timed out"), None) == \
        ("failed_to_download", "timeout", "read timed out")
    assert smp.decide(_fetch(), _image()) == ("success", None, None)
    assert smp.decide(_fetch(), _image("filtered", "too_small", "3x3")) == ("filtered", "too_small", "3x3")
    assert smp.decide(_fetch(), _image("failed_to_resize", "decode_error", "x"))[0] == "failed_to_resize"
    s = smp.make_sample("000000000", _cands(1)[0], _fetch(False, "http_404", "HTTP 404"), None)
    assert s["status"] == "failed_to_download" and s["error_message"] == "http_404: HTTP 404"
    assert "data" not in s


def _samples(jpeg: bytes):
    cands = _cands(4)
    out = []
    for i, c in enumerate(cands):
        key = plan.sample_key(0, i, 10)
        if i == 2:
            out.append(smp.make_sample(key, c, _fetch(False, "http_404", "HTTP 404"), None))
        else:
            out.append(smp.make_sample(key, c, _fetch(), _image(data=jpeg, sha="same" if i else "first")))
    return out


def test_shard_files_are_deterministic_and_readable(tmp_path, shared_data):
    jpeg = (shared_data / "images" / "sklearn" / "china.jpg").read_bytes()
    samples = _samples(jpeg)
    stats = sw.shard_stats(0, samples, "fp", {"image_size": 256}, "ch")
    for d in ("a", "b"):
        sw.write_shard(str(tmp_path / d), 0, list(reversed(samples)) if d == "b" else samples, stats)
    for name in ("00000.tar", "00000.parquet", "00000_stats.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["00000.parquet", "00000.tar", "00000_stats.json"]
    with tarfile.open(tmp_path / "a" / "00000.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members[:3]] == ["000000.jpg", "000000.json", "000000.txt"]
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" and m.mode == 0o644 for m in members)
    assert len(members) == 9  # three successes
    table = pq.read_table(tmp_path / "a" / "00000.parquet")
    assert table.schema.equals(smp.PARQUET_SCHEMA)
    assert table.column("status").to_pylist() == ["success", "success", "failed_to_download", "success"]
    got = list(wds.WebDataset(str(tmp_path / "a" / "00000.tar"), shardshuffle=False))
    assert [g["__key__"] for g in got] == ["000000", "000001", "000003"]
    assert got[0]["jpg"] == jpeg and got[0]["txt"] == b"c 0"
    assert json.loads(got[1]["json"])["query_ids"] == [1]
    stats_back = sw.read_stats(str(tmp_path / "a"), 0)
    assert stats_back["successes"] == 3 and stats_back["status_dict"] == {"http_404": 1}
    back = sw.read_shard(str(tmp_path / "a"), 0)
    assert [s["status"] for s in back] == [s["status"] for s in samples]
    assert back[0]["data"] == jpeg and back[2]["reason"] == "http_404"


def test_dedup_keeps_first_key(shared_data):
    jpeg = (shared_data / "images" / "sklearn" / "china.jpg").read_bytes()
    out = smp.dedup_by_sha256(_samples(jpeg))
    assert [s["status"] for s in out] == ["success", "success", "failed_to_download", "filtered"]
    assert out[3]["error_message"] == "duplicate_sha256: same image as 000001"


def test_stale_temps_removed_and_killed_write_leaves_no_final_name(tmp_path):
    (tmp_path / ".00003.tar.tmp-abc").write_bytes(b"partial")
    (tmp_path / ".00004.tar.tmp-abc").write_bytes(b"other shard")
    assert sw.remove_stale_temps(str(tmp_path), 3) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".00004.tar.tmp-abc"]

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with sw.atomic_open(str(tmp_path / "00005.tar")) as f:
            f.write(b"half")
            raise Boom()
    assert not (tmp_path / "00005.tar").exists()


def test_image_workers_default_to_the_usable_cores(monkeypatch):
    import argparse

    from openwit.pipeline.shards import config, stage

    from openwit.common import local as cores

    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    ns = lambda **kw: argparse.Namespace(out="o", **kw)  # noqa: E731
    assert config.shard_config(ns(), local=True).workers == 8  # taskset / cgroup CPU set honoured
    assert config.shard_config(ns(), local=False).workers == 1  # Dataflow: one SDK process per vCPU
    assert config.shard_config(ns(workers=3), local=False).workers == 3
    assert config.shard_config(ns(workers=0), local=True).workers == 8  # 0 = the default
    assert config.shard_config(ns(), local=True, local_processes=3).workers == 2
    with pytest.raises(Exception, match="--workers"):
        config.shard_config(ns(workers=-1), local=True)
    # Beam's own local parallelism shares the cores: one image pool per SDK worker process/thread
    assert stage.local_shard_workers(pipeline_options([])) == 1
    assert stage.local_shard_workers(pipeline_options(
        ["--direct_num_workers", "4", "--direct_running_mode", "multi_processing"])) == 4
    assert stage.local_shard_workers(pipeline_options(
        ["--direct_num_workers", "0", "--direct_running_mode", "multi_threading"])) == 8
    assert config.ShardConfig(out="o", fetch=None, image=None, workers=4, threads=3).worker_threads == 3
