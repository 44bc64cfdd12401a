"""Image workers started first thing by a local build, for its ImagePool to adopt.

An image worker needs ~0.5 s of CPU before it can take an image (Pillow, NumPy, numba and the area
kernel's machine code). Started with the pool, when the first shard begins, every worker kept the
first downloads waiting that long. So `openwit-build` and the shard stage start their workers
before they import Beam (`common.launch`), and the pool takes them ready (`adopt`). Where the OS
can fork and no other thread runs yet, the command loads the worker's modules and the kernel once
(~0.5 s) and forks the workers from itself: they share what it loaded instead of each loading it
again (N × 0.5 s of CPU); elsewhere each is a fresh `python -m openwit.pipeline.images.worker --warm`,
loading on the cores the Beam import leaves idle. The flags are only glanced at, from the command
line, before anything is parsed: how many workers (`--workers N`, else one per usable core) and
whether this process will build the shards at all (not for a remote runner, Beam's multi-processing
mode, `--help` or `--dry_run`). A wrong guess costs idle workers, never results: the pool starts
whatever it lacks, and workers nobody adopted are ended when the command ends.
`OPENWIT_NO_PRESTART=1` turns it off.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

from openwit.common.local import is_local_runner, usable_cores

try:
    import fcntl
except ImportError:  # not a Unix: pipes keep their default size
    fcntl = None

WORKER_MODULE = "openwit.pipeline.images.worker"  # never imported here: it runs as __main__
PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux's value; Python ≥ 3.10 names it
_lock = threading.Lock()
_parked: list = []  # subprocess.Popen or Forked


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


class Forked:
    """A worker forked from this process, with what the pool uses of subprocess.Popen."""

    def __init__(self, pid: int, stdin, stdout):
        self.pid, self.stdin, self.stdout, self.returncode = pid, stdin, stdout, None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it is gone
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(WORKER_MODULE, timeout)
            time.sleep(0.005)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _fork_worker() -> Forked:
    """One image worker forked from this (single-threaded, warmed) process, on its own two pipes."""
    from openwit.pipeline.images import worker

    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: its pipes as stdin/stdout, every other descriptor closed
        code = 1
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.closerange(3, _max_fd())
            code = worker.main([])
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)  # never the parent's atexit handlers or buffers
    os.close(in_r)
    os.close(out_w)
    proc = Forked(pid, os.fdopen(in_w, "wb"), os.fdopen(out_r, "rb"))
    for pipe in (proc.stdin, proc.stdout):
        _widen(pipe)
    return proc


def _max_fd() -> int:
    try:
        return max(256, os.sysconf("SC_OPEN_MAX"))
    except (AttributeError, ValueError, OSError):
        return 65536


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
    in_process = (_flag(argv, "--direct_running_mode") or "in_memory") == "in_memory"
    if not (is_local_runner(_flag(argv, "--runner")) and in_process):
        return 0  # the shards are built elsewhere, or by other processes with pools of their own
    try:
        n = int(_flag(argv, "--workers") or 0)  # 0: the default, one per usable core
    except ValueError:
        return 0  # the parser will say what is wrong
    if n == 0:
        n = usable_cores()
    return n if n > 1 else 0  # 1: images are decoded in the build's own process


def prestart(count: int, fork: bool | None = None) -> None:
    """Start `count` image workers, warm, waiting for a pool to adopt them: forked from this process
    after it loaded what they need (`fork`, by default where the OS can and no other thread runs),
    else spawned, each loading it itself."""
    if count < 1:
        return
    if fork is None:
        fork = hasattr(os, "fork") and threading.active_count() == 1
    if fork:
        from openwit.pipeline.images import worker

        worker.warm()
        sys.stdout.flush()
        sys.stderr.flush()
    for _ in range(count):
        try:
            proc = _fork_worker() if fork else spawn_worker(warm=True)
        except OSError:  # no process to start: the pool will say so and decode in-process
            break
        with _lock:
            _parked.append(proc)
    atexit.register(release)


def adopt(count: int) -> list:
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
