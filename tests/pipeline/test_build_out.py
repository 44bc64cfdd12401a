"""openwit-build's --out (issue 10): checked up front, refused reruns and locked-out runs leave it
byte-identical, one writer at a time (a lock naming its holder, stale locks taken over)."""
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loopback_server import LoopbackServer

from openwit.common.layout import LOCK as LOCK_NAME
from openwit.common.outdir import out_lock
from openwit.pipeline import cli
from openwit.pipeline import shards as shards_cli
from openwit.pipeline.stats import cli as stats_cli
from openwit.queries import cli as queries_cli

QUERIES = ["red", "blue", "green", "photo"]
FLAGS = ["--stage", "all", "--samples-per-shard", "4", "--image-size", "16", "--allow-private-addresses",
         "--no-report", "--tokenizer-vocab-size", "0", "--timeout", "5", "--retries", "0", "--runner", "FnApiRunner"]


@pytest.fixture(scope="module")
def server():
    with LoopbackServer() as srv:
        yield srv


def _table(path: Path, srv, colours, n: int, route: str = "") -> str:
    rows = [{"url": srv.url(f"{route}/gen/{8 + i}x8.png"), "caption": f"a {c} photo number {i}"}
            for i in range(n) for c in colours]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


@pytest.fixture
def inputs(tmp_path, server):
    qdir = tmp_path / "queries"
    qdir.mkdir()
    pq.write_table(pa.table({"query": QUERIES}), qdir / "queries.parquet")
    a = _table(tmp_path / "a.parquet", server, ["red", "blue"], 5)
    b = _table(tmp_path / "b.parquet", server, ["green"], 6)
    return str(qdir), a, b


def _digest(out: Path) -> dict:
    """Every file under OUT (hidden ones and subfolders too) → sha256."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


def _build(qdir, inputs, out, *extra) -> int:
    return cli.main(["--queries", qdir, "--input", *inputs, "--out", str(out), *FLAGS, *extra])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _consistent(out: Path) -> None:
    """Shards, candidates and query counts describe one and the same run."""
    cands = pq.read_table(out / "candidates").to_pylist()
    rows = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("0*.parquet"))]).to_pylist()
    assert sorted(r["uid"] for r in rows) == sorted(c["uid"] for c in cands)
    kept = pq.read_table(out / "query_counts.parquet").column("kept").to_pylist()
    assert sum(kept) == sum(len(c["query_ids"]) for c in cands)
    assert not list(out.glob(".openwit-staging*")) and not (out / LOCK_NAME).exists()


def test_refused_reruns_leave_out_byte_identical(inputs, tmp_path, capsys):
    qdir, a, b = inputs
    out = tmp_path / "out"
    assert _build(qdir, [a], out) == 0
    capsys.readouterr()
    _consistent(out)
    committed = _digest(out)
    assert any(name.startswith("candidates/") for name in committed) and "00000.tar" in committed
    killed = out / ".openwit-staging-0123456789ab" / "candidates"  # what a killed run leaves
    killed.mkdir(parents=True)
    (killed / "candidates-00000-of-00001.parquet").write_bytes(b"half")
    before = _digest(out)

    assert _build(qdir, [b], out) == 2  # other input → other candidates in shard 00000
    assert "different input" in _one_line(capsys)
    assert _digest(out) == before
    assert _build(qdir, [a], out, "--max-per-query", "1") == 2  # fewer candidates kept
    assert "write to a new --out" in _one_line(capsys)
    assert _digest(out) == before
    assert cli.main(["--queries", qdir, "--input", b, "--out", str(out), "--stage", "candidates",
                     "--runner", "FnApiRunner"]) == 2  # candidates only, but the shards hold others
    assert "built from other candidates" in _one_line(capsys)
    assert _digest(out) == before

    with out_lock(str(out), command="another run"):  # a second writer holds OUT
        assert _build(qdir, [a], out) == 2
        line = _one_line(capsys)
        assert f"pid {os.getpid()}" in line and "command: another run" in line and "in use" in line
    assert _digest(out) == before

    assert _build(qdir, [a], out) == 0  # the same command again: resumes, same bytes
    assert _digest(out) == committed  # and the killed run's staging folder is gone
    assert cli.main(["--queries", qdir, "--input", a, "--out", str(out), "--stage", "candidates",
                     "--runner", "FnApiRunner"]) == 0  # the shards' own candidates: accepted
    assert _digest(out) == committed


def test_stale_lock_is_taken_over_other_host_is_not(inputs, tmp_path, capsys, caplog):
    qdir, a, _ = inputs
    out = tmp_path / "out"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = {"host": socket.gethostname(), "pid": gone.pid, "started": "2024-01-01T00:00:00", "command": "killed"}
    (out / LOCK_NAME).write_text(json.dumps(stale))
    assert _build(qdir, [a], out, "--stage", "candidates") == 0
    assert any("taking over the stale lock" in r.getMessage() and f"pid {gone.pid}" in r.getMessage()
               for r in caplog.records)
    assert not (out / LOCK_NAME).exists()
    capsys.readouterr()

    elsewhere = {**stale, "host": "some-other-machine"}
    (out / LOCK_NAME).write_text(json.dumps(elsewhere))
    before = _digest(out)
    assert _build(qdir, [a], out, "--stage", "candidates") == 2
    line = _one_line(capsys)
    assert "some-other-machine" in line and LOCK_NAME in line
    assert _digest(out) == before


def test_two_concurrent_builds_one_is_locked_out(inputs, tmp_path, server):
    qdir, _, b = inputs
    slow = _table(tmp_path / "slow.parquet", server, ["red", "blue"], 5, route="/slow-headers/0.4")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "openwit.pipeline", "--queries", qdir, "--out", str(out), *FLAGS,
           "--per-host-connections", "1"]
    first = subprocess.Popen(cmd + ["--input", slow], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ((out / LOCK_NAME).exists() and f'"pid": {first.pid}' in (out / LOCK_NAME).read_text()):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = subprocess.run(cmd + ["--input", b], capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first build ended before the second one was refused"
    assert second.returncode == 2, second.stderr[-2000:]
    err = second.stderr.strip().splitlines()
    assert len(err) == 1 and f"pid {first.pid}" in err[0] and "in use by another openwit run" in err[0]
    stdout, stderr = first.communicate(timeout=180)
    assert first.returncode == 0, stderr[-2000:]
    _consistent(out)
    assert {r["caption"].split()[1] for r in pq.read_table(out / "candidates").to_pylist()} == {"red", "blue"}


def _shard_files(folder: Path) -> None:
    pq.write_table(pa.table({"key": ["000000000"], "status": ["success"]}), folder / "00000.parquet")
    (folder / "00000_stats.json").write_text('{"shard": 0, "count": 1, "successes": 1}')


def test_bad_out_is_one_line_before_any_work(inputs, tmp_path, capsys, caplog):
    qdir, a, _ = inputs
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    assert _build(qdir, [a], a_file) == 2
    assert "is a file, not a folder" in _one_line(capsys)
    assert _build(qdir, [a], a_file / "sub") == 2
    assert "is a file, not a folder" in _one_line(capsys)
    assert shards_cli.main(["--candidates", a, "--out", str(a_file)]) == 2
    assert "is a file" in _one_line(capsys)
    assert queries_cli.main(["--out", str(a_file), "--sources", "numeral"]) == 2
    assert "is a file" in _one_line(capsys)

    locked = tmp_path / "locked"
    locked.mkdir()
    _shard_files(locked)  # a built folder that cannot take its report either
    if os.geteuid() == 0:  # root writes through permission bits: make the folder immutable instead
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
            pytest.skip("running as root without chattr: cannot make an unwritable folder")
    else:
        locked.chmod(0o555)
    try:
        assert _build(qdir, [a], locked / "out") == 2
        line = _one_line(capsys)
        assert "cannot write to" in line and str(locked) in line
        assert _build(qdir, [a], locked) == 2
        assert "cannot write to the folder" in _one_line(capsys)
        assert stats_cli.main([str(locked)]) == 2
        assert "cannot write to" in _one_line(capsys)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        else:
            locked.chmod(0o755)
    assert sorted(p.name for p in locked.iterdir()) == ["00000.parquet", "00000_stats.json"]
    assert not any("candidates" in r.getMessage() for r in caplog.records)  # stopped before extraction
