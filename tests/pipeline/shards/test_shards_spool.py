"""A shard's images past the memory budget wait in an unnamed temporary file (spool.py): same shard
bytes, nothing left on disk, and a disk that refuses the file keeps them in memory."""
import argparse
import hashlib
import logging
import os
import tempfile
from pathlib import Path

import pytest
from loopback_server import LoopbackServer

from openwit.common.hashing import blake_hex
from openwit.pipeline.shards import run_shards
from openwit.pipeline.shards import spool as spool_mod
from openwit.pipeline.shards.spool import Parked, Spool


def test_past_the_budget_images_are_parked_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spool = Spool(held_bytes=10)
    small, big, more = b"0123456789", os.urandom(5000), os.urandom(3000)
    assert spool.keep(small) is small  # within the budget: the object itself, no copy
    parked = [spool.keep(big), spool.keep(more)]
    assert all(isinstance(p, Parked) for p in parked) and [len(p) for p in parked] == [5000, 3000]
    assert not os.listdir(tmp_path)  # the file has no name: a kill -9 leaves nothing behind
    assert bytes(parked[1]) == more and bytes(parked[0]) == big and bytes(small) is small
    assert (spool.held, spool.parked) == (10, 8000)
    spool.close()


def test_a_file_that_cannot_be_written_keeps_the_images_in_memory(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    spool = Spool(held_bytes=0)
    data = os.urandom(100)
    with caplog.at_level(logging.WARNING, logger="openwit.pipeline.shards.spool"):
        assert spool.keep(data) is data and spool.keep(b"x") == b"x"
    assert [r.message for r in caplog.records] == [
        "cannot park images in a temporary file ([Errno 28] No space left on device): keeping them in memory"]
    assert (spool.held, spool.parked) == (101, 0)


def _digest(out: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())
            if p.is_file() and p.name[0].isdigit()}


def test_kept_originals_past_the_budget_give_the_same_shards(shared_data, tmp_path, monkeypatch, caplog):
    """`--resize-mode no` (the originals kept), with `--dedup-sha256` (copies in other shards: those
    shards are read back and rewritten) and then `--retry-failed` (each shard read back, its failure
    fetched again, the shard rewritten): a budget of 30 kB per shard parks most images at every step,
    and the shards are byte-identical to those built with every image in memory."""
    args = argparse.Namespace(resize_mode="no", allow_private_addresses=True, retries=0, timeout=5,
                              samples_per_shard=6, report=False, dedup_sha256=True)
    with LoopbackServer() as srv:
        paths = srv.image_paths()[:10]
        urls = [srv.url(p) for p in paths] + [srv.url(f"{p}?copy=1") for p in paths[:4]] + [srv.url("/status/404")]
        # uids not from the URLs (their port changes from run to run): the same shards every run
        rows = [{"url": u, "caption": f"c{i}", "uid": blake_hex(f"row {i}"), "query_ids": [i]}
                for i, u in enumerate(urls)]
        memory = run_shards(rows, str(tmp_path / "memory"), args, [])
        monkeypatch.setattr(spool_mod, "HELD_BYTES", 30_000)
        with caplog.at_level(logging.INFO, logger="openwit.pipeline.shards.builder"):
            parked = run_shards(rows, str(tmp_path / "parked"), args, [])
            built = _digest(tmp_path / "parked")
            retry = argparse.Namespace(**{**vars(args), "retry_failed": True})
            run_shards(rows, str(tmp_path / "parked"), retry, [])
    assert parked["successes"] == memory["successes"] == 10 and parked["filtered"] == 4
    waited = [r.message for r in caplog.records if "waited in a temporary file" in r.message]
    assert len(waited) == 3 + 1 and all("(past the 0.03 MB held in memory per shard)" in m for m in waited), waited
    assert built == _digest(tmp_path / "memory") and {"00000.tar", "00002.tar"} <= set(built)
    assert _digest(tmp_path / "parked") == built  # read back, its 404 fetched again, rewritten: same bytes
