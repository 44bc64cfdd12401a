"""Image workers started first thing by a local build, for its ImagePool to adopt.

An image worker needs ~0.5 s of CPU before it can take an image (Pillow, NumPy, numba and the area
kernel's machine code). Started with the pool, when the first shard begins, every worker would keep
the first downloads waiting that long, after a start-up in which the main process imports Beam on
one core while the others sit idle. So `openwit-build` and the shard stage start their workers
before that import (`common.launch`): they load on the idle cores, and the pool takes them ready
(`adopt`). The flags are only glanced at, from the command line, before anything is parsed: how
many workers (`--workers N`, else one per usable core) and whether this process will run the
shards at all (not for a remote runner, Beam's multi-processing mode, `--help` or `--dry_run`). A
wrong guess costs idle workers, never results: the pool starts whatever it lacks, and workers
nobody adopted end when the command does. `OPENWIT_NO_PRESTART=1` turns it off.
"""
from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading

try:
    import fcntl
except ImportError:  # not a Unix: pipes keep their default size
    fcntl = None

WORKER_MODULE = "openwit.pipeline.images.worker"  # never imported here: it runs as __main__
PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux's value; Python ≥ 3.10 names it
_LOCAL_RUNNERS = ("", "FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner",
                  "PrismRunner")
_lock = threading.Lock()
_parked: list[subprocess.Popen] = []


def _widen(pipe) -> None:
    """Let a pipe hold a typical image at once (Linux: 64 KiB by default → up to 1 MiB), so an
    image crosses it in one write and one read instead of a ping-pong of 64 KiB pieces."""
    if fcntl is None:
        return
    try:
        fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
    except (OSError, ValueError):  # not Linux, or above /proc/sys/fs/pipe-max-size: keep the default
        pass


def worker_command(warm: bool = False) -> list[str]:
    return [sys.executable, "-m", WORKER_MODULE] + (["--warm"] if warm else [])


def spawn_worker(warm: bool = False) -> subprocess.Popen:
    """An image worker process (images/worker.py) with widened stdin/stdout pipes; `warm`: it loads
    the area kernel before its first frame instead of at its first image."""
    proc = subprocess.Popen(worker_command(warm), stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
    for pipe in (proc.stdin, proc.stdout):
        _widen(pipe)
    return proc


def _flag(argv: list[str], name: str) -> str | None:
    """The value of `--name V` or `--name=V` (the last one given), else None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value


def planned_workers(argv: list[str]) -> int:
    """How many image workers this command line will want in this process (0: none, or unsure)."""
    if any(a in ("-h", "--help") or a.startswith("--dry_run") for a in argv):
        return 0
    runner = (_flag(argv, "--runner") or "").split(".")[-1]
    if runner not in _LOCAL_RUNNERS or (_flag(argv, "--direct_running_mode") or "in_memory") != "in_memory":
        return 0  # the shards are built elsewhere, or by other processes with pools of their own
    try:
        n = int(_flag(argv, "--workers") or 0)  # 0: the default, one per usable core
    except ValueError:
        return 0  # the parser will say what is wrong
    if n == 0:
        from openwit.common.cores import usable_cores

        n = usable_cores()
    return n if n > 1 else 0  # 1: images are decoded in the build's own process


def prestart(count: int) -> None:
    """Start `count` image workers that warm up at once and wait for a pool to adopt them."""
    for _ in range(count):
        try:
            proc = spawn_worker(warm=True)
        except OSError:  # no interpreter to start: the pool will say so and decode in-process
            break
        with _lock:
            _parked.append(proc)
    if count:
        atexit.register(release)


def adopt(count: int) -> list[subprocess.Popen]:
    """Up to `count` started workers that are still alive, now the caller's."""
    with _lock:
        alive = [p for p in _parked if p.poll() is None]
        dead = [p for p in _parked if p not in alive]
        taken, _parked[:] = alive[:count], alive[count:]
    _close_pipes(dead)
    return taken


def _close_pipes(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


def release() -> None:
    """End the workers nobody adopted and reap them (at exit). They hold nothing but warm caches,
    so they are killed: a command that stops early (a typo in a flag) does not wait for their start."""
    with _lock:
        procs, _parked[:] = list(_parked), []
    for proc in procs:
        proc.kill()
        proc.wait()
    _close_pipes(procs)


def prestart_for(argv: list[str] | None = None) -> None:
    """`prestart` as many workers as the command line `argv` (default: sys.argv) will use here."""
    if os.environ.get("OPENWIT_NO_PRESTART"):
        return
    prestart(planned_workers(sys.argv[1:] if argv is None else argv))
