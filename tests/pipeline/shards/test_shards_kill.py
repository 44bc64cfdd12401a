"""kill -9 in the middle of a shard run with image worker processes, rerun → the same bytes as an
uninterrupted run, and no worker outlives the killed run (slow)."""
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loopback_server import LoopbackServer

from openwit.common.hashing import blake_hex

pytestmark = pytest.mark.slow


def _digest(out: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())
            if p.is_file() and p.name[0].isdigit()}


def _cmd(cands: str, out: Path) -> list[str]:
    # one connection per host + 0.25 s before each response: each 8-sample shard takes ~2 s
    return [sys.executable, "-m", "openwit.pipeline.shards", "--candidates", cands, "--out", str(out),
            "--samples-per-shard", "8", "--image-size", "48", "--allow-private-addresses",
            "--per-host-connections", "1", "--timeout", "5", "--workers", "2"]


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_kill_9_then_rerun_is_byte_identical(shared_data, tmp_path):
    with LoopbackServer() as srv:
        paths = srv.image_paths()
        urls = [srv.url(f"/slow-headers/0.25{p}?copy={i}") for i in range(2) for p in paths]
        urls.append(srv.url("/status/404"))
        rows = [{"url": u, "caption": f"c{i}", "uid": blake_hex(u), "query_ids": [i]} for i, u in enumerate(urls)]
        cands = str(tmp_path / "c.parquet")
        pq.write_table(pa.Table.from_pylist(rows), cands)
        ref, killed = tmp_path / "ref", tmp_path / "killed"

        subprocess.run(_cmd(cands, ref), check=True, timeout=240, capture_output=True)

        proc = subprocess.Popen(_cmd(cands, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (killed.exists() and list(killed.glob("*_stats.json"))):
            assert proc.poll() is None and time.monotonic() < deadline, "run ended before the first shard"
            time.sleep(0.05)
        time.sleep(0.5)  # inside the next shard
        workers = _children(proc.pid)
        assert len(workers) == 2, workers  # the image worker processes
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers):  # they end at the end of their stdin
            assert time.monotonic() < deadline, "image workers outlived the killed run"
            time.sleep(0.05)

        ref_digest, partial = _digest(ref), _digest(killed)
        assert 0 < len(partial) < len(ref_digest)
        for name, digest in partial.items():  # nothing truncated or different under a final name
            assert digest == ref_digest[name], name
        committed = {n for n in partial if n.endswith("_stats.json")}
        assert all(n.replace("_stats.json", ".tar") in partial for n in committed)

        done = subprocess.run(_cmd(cands, killed), timeout=240, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    assert _digest(killed) == ref_digest
    assert not list(killed.glob(".*.tmp-*"))  # the killed run's temporaries are cleaned up
