"""openwit-build's --out (issue 10): checked up front, refused reruns and locked-out runs leave it
byte-identical, one writer at a time (a lock naming its holder, stale locks taken over)."""
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
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
    cands = [r for p in sorted(out.glob("candidates/candidates-*.parquet")) for r in pq.read_table(p).to_pylist()]
    rows = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("0*.parquet"))]).to_pylist()
    assert sorted(r["uid"] for r in rows) == sorted(c["uid"] for c in cands)
    kept = pq.read_table(out / "query_counts.parquet").column("kept").to_pylist()
    assert sum(kept) == sum(len(c["query_ids"]) for c in cands)
    assert not list(out.glob(".openwit-staging*")) and not (out / LOCK_NAME).exists()


def test_refused_reruns_leave_out_byte_identical(inputs, tmp_path, capsys, monkeypatch):
    qdir, a, b = inputs
    out = tmp_path / "out"
    system_tmp = tmp_path / "tmp"  # where Beam makes each Pipeline's own temp folder
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
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
    assert not list(system_tmp.iterdir())  # refused runs too: Beam removes its folder only in run()


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


def _stdout_lines(capsys) -> list[str]:
    return capsys.readouterr().out.strip().splitlines()


def test_final_summary_and_a_resumed_run(inputs, tmp_path, capsys, caplog):
    """One summary at the very end: funnel, shards written / skipped / failed, samples, the
    tokenizer, wall time, and report.html's absolute path as the last line; a rerun says what it skipped."""
    qdir, a, _ = inputs
    out = tmp_path / "out"
    i = FLAGS.index("--no-report")
    flags = FLAGS[:i] + FLAGS[i + 3:]  # with the report; the tokenizer below
    assert "--tokenizer-vocab-size" not in flags
    argv = ["--queries", qdir, "--input", a, "--out", str(out), *flags, "--tokenizer-vocab-size", "600"]
    assert cli.main(argv) == 0
    lines = _stdout_lines(capsys)
    assert lines[0].startswith("openwit-build: done in ") and lines[0].endswith(f" s → {out}")
    assert lines[1] == ("candidates: 1 input file, 10 records read → 10 extracted → 10 unique → 10 matched a query "
                        "→ 10 kept by balancing")
    assert lines[2] == "shards: 3 written, 0 skipped, 0 failed; 3 in OUT"
    assert lines[3] == "samples: 10 attempted, 10 in the dataset (100.0%); failed_to_download 0, " \
                       "failed_to_resize 0, filtered 0"
    assert lines[4] == f"tokenizer: {out / 'tokenizer.json'} (600 tokens)"
    assert lines[-2:] == ["report (open this first):", str(out / "report" / "report.html")]
    assert (out / "report" / "report.html").exists()
    assert any(r.getMessage().startswith("tokenizer: training a 600-token byte-level BPE on 10 captions")
               for r in caplog.records)

    assert _build(qdir, [a], out) == 0  # again (report and tokenizer aside): everything was committed
    lines = _stdout_lines(capsys)
    assert lines[2] == ("shards: 0 written, 3 skipped (resumed: 00000-00002 were committed by an earlier run with "
                        "these settings), 0 failed; 3 in OUT")
    assert lines[-2:] == ["tokenizer: none (--tokenizer-vocab-size 0)",
                          f"report: none (--no-report); make it with: openwit-stats {out}"]


def test_limit_then_overwrite_removes_only_openwit_outputs(inputs, tmp_path, capsys):
    qdir, a, b = inputs
    out = tmp_path / "out"
    assert _build(qdir, [a, b], out) == 0  # 16 candidates → shards 00000-00003
    assert stats_cli.main([str(out)]) == 0  # an openwit report/ too
    first = sorted(pq.read_table(out / "candidates").column("uid").to_pylist())
    mine = {"notes.txt": b"mine", "00009.tar": b"someone else's tar", "data/00000.tar": b"another dataset",
            "candidates/README": b"mine too", "timing/notes.json": b'{"mine": 1}', "report/mine.html": b"<p>",
            ".hidden": b"x"}
    for name, data in mine.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    capsys.readouterr()
    before = _digest(out)

    assert _build(qdir, [a, b], out, "--limit", "6") == 2  # other candidates: refused, as any other setting
    assert "write to a new --out, or start over with --overwrite" in _one_line(capsys)
    assert _build(qdir, [a, str(tmp_path / "typo.parquet")], out, "--overwrite", "--limit", "6") == 2
    assert "typo.parquet: no such input file" in _one_line(capsys)  # a mistake removes nothing
    assert _digest(out) == before

    assert _build(qdir, [a, b], out, "--overwrite", "--limit", "6") == 0
    after = _digest(out)
    assert {name: after.get(name) for name in mine} == {name: before[name] for name in mine}
    ours = {n for n in after if n not in mine}
    assert ours == {"00000.tar", "00000.parquet", "00000_stats.json", "00001.tar", "00001.parquet",
                    "00001_stats.json", "timing/00000.json", "timing/00001.json", "candidates/candidates-00000-of-00001.parquet",
                    "query_counts.parquet", "queries_meta.json", "candidate_counts.json"}
    taken = pq.read_table(out / "candidates" / "candidates-00000-of-00001.parquet").column("uid").to_pylist()
    assert sorted(taken) == first[:6]  # the first 6 by uid
    _consistent(out)
    counts = json.loads((out / "candidate_counts.json").read_text())
    assert (counts["kept"], counts["limit"], counts["over_limit"]) == (16, 6, 10)
    assert json.loads((out / "queries_meta.json").read_text())["limit"] == 6
    assert "→ 16 kept by balancing → 6 taken (--limit 6)" in capsys.readouterr().out


def test_overwrite_without_openwit_outputs_removes_nothing(tmp_path):
    """Names alone are no proof: img2dataset's shards, a stray tokenizer.json, someone's report/."""
    from openwit.common.outdir import clear_outputs

    out = tmp_path / "out"
    (out / "report").mkdir(parents=True)
    pq.write_table(pa.table({"key": ["000000000"], "status": ["success"]}), out / "00000.parquet")
    (out / "00000_stats.json").write_text('{"count": 1, "successes": 1, "status_dict": {}}')  # img2dataset's
    (out / "00000.tar").write_bytes(b"tar")
    for name in ("tokenizer.json", "queries_meta.json", "report/stats.json", "report/report.html"):
        (out / name).write_text("{}")
    before = _digest(out)
    removed, left = clear_outputs(str(out))
    assert removed == [] and _digest(out) == before
    assert "00000.tar" in left and "report/" in left


def test_candidate_settings_caption_bounds_and_domains(inputs, tmp_path, capsys):
    """--min/--max-caption-chars and --exclude-domains drop at extraction, counted, and are recorded."""
    qdir, _, _ = inputs
    rows = [{"url": "http://img.blocked.example/1.png", "caption": "a red photo from a blocked host"},
            {"url": "http://blocked.example/2.png", "caption": "a blue photo from a blocked host"},
            {"url": "http://fine.example/3.png", "caption": "a red photo"},  # 11 chars
            {"url": "http://fine.example/4.png", "caption": "a green photo that is rather long"},  # 33 chars
            {"url": "http://fine.example/5.png", "caption": "a blue photo, kept"}]
    table = tmp_path / "hosts.parquet"
    pq.write_table(pa.Table.from_pylist(rows), table)
    block = tmp_path / "block.txt"
    block.write_text("# our block list\nhttps://Blocked.Example/\n")
    out = tmp_path / "out"
    assert cli.main(["--queries", qdir, "--input", str(table), "--out", str(out), "--stage", "candidates",
                     "--min-caption-chars", "12", "--max-caption-chars", "30", "--exclude-domains", str(block),
                     "--runner", "FnApiRunner"]) == 0
    assert [r["url"] for r in pq.read_table(out / "candidates").to_pylist()] == ["http://fine.example/5.png"]
    counts = json.loads((out / "candidate_counts.json").read_text())
    assert counts["extract_drops"] == {"excluded_domain": 2, "too_short": 1, "too_long": 1}
    meta = json.loads((out / "queries_meta.json").read_text())
    assert {k: meta[k] for k in ("min_caption_chars", "max_caption_chars", "exclude_domains",
                                 "exclude_domains_count")} == {"min_caption_chars": 12, "max_caption_chars": 30,
                                                               "exclude_domains": str(block),
                                                               "exclude_domains_count": 1}
    assert "dropped: at extraction excluded_domain 2, too_long 1, too_short 1" in capsys.readouterr().out
    block.write_text("blocked.example\nnot a domain\n")
    assert cli.main(["--queries", qdir, "--input", str(table), "--out", str(out), "--stage", "candidates",
                     "--exclude-domains", str(block), "--runner", "FnApiRunner"]) == 2
    assert "line 2: 'not a domain' is not a domain" in _one_line(capsys)


def test_summary_names_why_samples_were_not_kept(inputs, server, tmp_path, capsys, caplog, monkeypatch):
    """The summary names the failure reasons; when nothing downloads because the network itself
    fails (here: a loopback port nobody listens on), a warning says so early, and the summary says
    what to check and how to resume."""
    monkeypatch.setattr("openwit.pipeline.fetch.offline.FIRST_ATTEMPTS", 3)
    qdir, a, _ = inputs
    with socket.socket() as s:  # a port that refuses connections
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    rows = [{"url": f"http://127.0.0.1:{dead}/{i}.png", "caption": f"a red photo number {i}"} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "dead.parquet")
    assert _build(qdir, [str(tmp_path / "dead.parquet")], tmp_path / "offline") == 0
    early = [r.getMessage() for r in caplog.records if "downloads all failed on the network" in r.getMessage()]
    assert early == ["the first 3 downloads all failed on the network (connection_error 3): is this machine "
                     "offline, or does it reach the web through a proxy (--proxy URL, or HTTP_PROXY / "
                     "HTTPS_PROXY)? The run goes on and records every failure; rerun the same command with "
                     "--retry-failed once it is online"]
    lines = _stdout_lines(capsys)
    i = next(n for n, line in enumerate(lines) if line.startswith("samples: "))
    assert lines[i + 1] == "  why not kept: connection_error 5"
    assert lines[i + 2].startswith("  nothing was downloaded and every attempt failed on the network "
                                   "(connection_error): is this machine offline")
    assert "--retry-failed" in lines[i + 2]

    mixed = [{"url": server.url(f"/status/{404 if i % 2 else 503}?n={i}"), "caption": f"a blue photo number {i}"}
             for i in range(5)] + rows[:1]
    pq.write_table(pa.Table.from_pylist(mixed), tmp_path / "mixed.parquet")
    assert _build(qdir, [a, str(tmp_path / "mixed.parquet")], tmp_path / "mixed") == 0
    lines = _stdout_lines(capsys)
    i = next(n for n, line in enumerate(lines) if line.startswith("samples: "))
    assert lines[i] == ("samples: 16 attempted, 10 in the dataset (62.5%); failed_to_download 6, "
                        "failed_to_resize 0, filtered 0")
    assert lines[i + 1] == "  why not kept: http_503 3, http_404 2, connection_error 1"  # most first
    assert not lines[i + 2].startswith("  nothing was downloaded")
    assert len([r for r in caplog.records if "downloads all failed" in r.getMessage()]) == 1  # not again


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_unwind_the_build(inputs, server, tmp_path, sig):
    """A build stopped by SIGTERM (a scheduler, `kill`) or Ctrl-C ends with one line and 143 / 130,
    and leaves no lock and no staging behind (SIGTERM used to end it on the spot, leaving both)."""
    qdir, _, _ = inputs
    rows = [{"url": server.url(f"/trickle/1/30?i={i}"), "caption": f"a red photo number {i}"} for i in range(8)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "slow.parquet")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "openwit.pipeline", "--queries", qdir, "--input", str(tmp_path / "slow.parquet"),
           "--out", str(out), *FLAGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / LOCK_NAME).exists() and time.time() < deadline:  # the run holds OUT: it is fetching
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-2000:]
    word = "stopped by SIGTERM" if sig == signal.SIGTERM else "interrupted"
    assert err.strip().splitlines()[-1] == f"{word}: committed shards are kept; the same command resumes"
    assert "Traceback" not in err
    assert not (out / LOCK_NAME).exists() and not list(out.glob(".openwit-staging*"))
