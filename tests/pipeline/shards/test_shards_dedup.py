"""--dedup-sha256 across the whole run: the same real images under many URLs, spread over several shards.

Real loopback server, real Beam pipeline (FnApiRunner), real tar/Parquet. Also: interrupted before and
during the dedup pass (an exception where a kill -9 would be: the files are left the same way), then
rerun → byte-identical to an uninterrupted run; a failed attempt retried in place converges too.
"""
import argparse
import hashlib
import json
import shutil
import tarfile
from collections import defaultdict
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from loopback_server import LoopbackServer

from openwit.common.beamrun import new_pipeline, pipeline_options
from openwit.common.hashing import blake_hex
from openwit.pipeline.shards import dedup as shard_dedup
from openwit.pipeline.shards import writer as sw
from openwit.pipeline.shards import FetchShards, run_shards, shard_config

COPIES = 5  # each of the first 3 images under 5 URLs; 4 per shard → copies land in several shards


def _args(dedup: bool = True) -> argparse.Namespace:
    return argparse.Namespace(image_size=32, allow_private_addresses=True, retries=0, timeout=5,
                              samples_per_shard=4, dedup_sha256=dedup, report=False)


@pytest.fixture(scope="module")
def setup(shared_data, tmp_path_factory):
    with LoopbackServer() as srv:
        paths = srv.image_paths()
        urls = [srv.url(f"{p}?copy={i}") for p in paths[:3] for i in range(COPIES)]
        urls += [srv.url(p) for p in paths[3:6]] + [srv.url("/status/404")]
        # uids from the URL without the server's (random) port: the same shard placement in every run
        rows = [{"url": u, "caption": f"c{i}", "uid": blake_hex(u.split("/", 3)[3]), "query_ids": [i]}
                for i, u in enumerate(urls)]
        tmp = tmp_path_factory.mktemp("dedup")
        totals = run_shards(rows, str(tmp / "ref"), _args(), [])
        yield rows, tmp, totals


def _rows(out: Path) -> list[dict]:
    return pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("*.parquet"))]).to_pylist()


def _digest(out: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())
            if p.is_file() and p.name[0].isdigit()}


def _by_sha(rows: list[dict]) -> dict[str, list[dict]]:
    groups = defaultdict(list)
    for r in rows:
        if r["sha256"] and r["status"] in ("success", "filtered"):
            groups[r["sha256"]].append(r)
    return groups


def test_one_success_per_sha256_across_the_run(setup):
    rows, tmp, totals = setup
    out = _rows(tmp / "ref")
    assert len(out) == len(rows) and totals["shards"] >= 4
    groups = _by_sha(out)
    assert len(groups) == 6  # 3 duplicated images + 3 unique ones
    removed, rewritten, spread = 0, set(), []
    for sha, group in groups.items():
        successes = [r["key"] for r in group if r["status"] == "success"]
        first = min(r["key"] for r in group)  # keys sort like (shard, index)
        assert successes == [first], sha
        shards = {r["key"][:5] for r in group}
        spread.append(len(shards))
        removed += len(shards) - 1  # the per-shard pass left one success in each shard
        rewritten |= shards - {first[:5]}
        for r in group:
            if r["key"] != first:
                assert r["status"] == "filtered" and r["error_message"] == f"duplicate_sha256: same image as {first}"
                assert r["width"] is None and r["height"] is None and r["original_width"] > 0
    assert max(spread) >= 3  # an image spread over ≥3 shards
    # some shard holds ≥2 copies of an image whose first is elsewhere: in-shard duplicates re-pointed
    assert any(sum(r["key"][:5] == s for r in g) >= 2 for g in groups.values()
               for s in {r["key"][:5] for r in g} - {min(r["key"] for r in g)[:5]})
    counters = totals["counters"]
    assert counters["reason_duplicate_sha256"] == removed and counters["shards_deduped"] == len(rewritten)
    assert totals["successes"] == 6 and totals["filtered"] == len(rows) - 7


def test_tars_hold_exactly_the_successes(setup):
    _, tmp, _ = setup
    out = tmp / "ref"
    ok = sorted(r["key"] for r in _rows(out) if r["status"] == "success")
    tars = sorted(str(p) for p in out.glob("*.tar"))
    samples = list(wds.WebDataset(tars, shardshuffle=False))
    assert [s["__key__"] for s in samples] == ok
    assert all({"jpg", "txt", "json"} <= set(s) and json.loads(s["json"])["status"] == "success" for s in samples)
    for path in tars:  # rewritten tars keep shard_writer's fixed member metadata
        with tarfile.open(path) as tar:
            assert all((m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)
                       for m in tar.getmembers())


def test_stats_agree_with_parquet(setup):
    _, tmp, _ = setup
    for path in sorted((tmp / "ref").glob("*_stats.json")):
        stats = json.loads(path.read_text())
        rows = pq.read_table(str(path).replace("_stats.json", ".parquet")).to_pylist()
        status = [r["status"] for r in rows]
        assert (stats["count"], stats["successes"], stats["filtered"]) == \
            (len(rows), status.count("success"), status.count("filtered"))
        dups = sum((r["error_message"] or "").startswith("duplicate_sha256:") for r in rows)
        assert stats["status_dict"].get("duplicate_sha256", 0) == dups


def test_rerun_is_byte_identical_and_finds_nothing(setup):
    rows, tmp, totals = setup
    again = tmp / "again"
    shutil.copytree(tmp / "ref", again)
    before = _digest(again)
    assert run_shards(rows, str(again), _args(), [])["counters"] == {"shards_skipped": totals["shards"]}
    assert _digest(again) == before


def test_interrupted_before_and_during_the_pass_converges(setup, monkeypatch):
    rows, tmp, totals = setup
    ref = _digest(tmp / "ref")

    def boom(*a, **k):
        raise RuntimeError("killed")

    # 1. killed after the shards were written, before any rewrite: committed but duplicated
    between = tmp / "between"
    with monkeypatch.context() as m:
        m.setattr(shard_dedup, "rewrite_shard", boom)
        with pytest.raises(Exception, match="killed"):
            run_shards(rows, str(between), _args(), [])
    assert len(list(between.glob("*_stats.json"))) == totals["shards"]
    assert sum(r["status"] == "success" for r in _rows(between)) > 6
    during, retried = tmp / "during", tmp / "retried"
    shutil.copytree(between, during)
    shutil.copytree(between, retried)
    again = run_shards(rows, str(between), _args(), [])
    assert _digest(between) == ref
    assert again["counters"]["reason_duplicate_sha256"] == totals["counters"]["reason_duplicate_sha256"]

    # 2. killed inside a rewrite (tar replaced, Parquet not yet): the shard is left uncommitted
    with monkeypatch.context() as m:
        m.setattr(sw, "parquet_bytes", boom)
        with pytest.raises(Exception, match="killed"):
            run_shards(rows, str(during), _args(), [])
    assert len(list(during.glob("*_stats.json"))) < totals["shards"]
    run_shards(rows, str(during), _args(), [])  # rebuilds the uncommitted shard, then dedups it again
    assert _digest(during) == ref

    # 3. Beam retries the failed rewrite in place (no marker, tar already rewritten): same bytes
    recs = [rec for p in sorted(retried.glob("*_stats.json"))
            for rec in shard_dedup.shard_records(json.loads(p.read_text()), str(retried))]
    groups = defaultdict(list)
    for sha, rec in recs:
        groups[sha].append(rec)
    marks = defaultdict(dict)
    for sha, group in groups.items():
        for shard, (key, first) in shard_dedup.plan_group(sha, group):
            marks[shard][key] = first
    for shard, shard_marks in marks.items():
        stats = sw.read_stats(str(retried), shard)
        with monkeypatch.context() as m:
            m.setattr(sw, "parquet_bytes", boom)
            with pytest.raises(RuntimeError, match="killed"):
                shard_dedup.rewrite_shard(str(retried), shard, stats, shard_marks)
        assert sw.read_stats(str(retried), shard) is None
        shard_dedup.rewrite_shard(str(retried), shard, stats, shard_marks)
    assert _digest(retried) == ref


def test_without_the_flag_nothing_changes(setup, tmp_path):
    rows, _, _ = setup

    def labels(dedup: bool) -> set[str]:
        cfg = shard_config(argparse.Namespace(**vars(_args(dedup)), out=str(tmp_path / "x")), local=True)
        with new_pipeline(pipeline_options([])) as p:  # built, never run
            _ = p | beam.Create(rows) | FetchShards(cfg)
        labels, todo = set(), list(p.transforms_stack[0].parts)
        while todo:  # the stage's transforms are nested: FetchShards/Dedup/...
            t = todo.pop()
            labels.add(t.full_label)
            todo.extend(t.parts)
        return labels

    assert not any("Dedup" in name for name in labels(False))
    assert any("Dedup" in name for name in labels(True))
    totals = run_shards(rows, str(tmp_path / "plain"), _args(dedup=False), [])
    assert totals["successes"] == len(rows) - 1 and totals["filtered"] == 0
    assert not any(k.startswith(("shards_deduped", "reason_duplicate")) for k in totals["counters"])
