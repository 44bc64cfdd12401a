"""Image workers started first thing by a local build, for its ImagePool to adopt.

An image worker needs ~0.5 s of CPU before it can take an image (Pillow, NumPy, numba and the area
kernel's machine code). Started with the pool, when the first shard begins, every worker kept the
first downloads waiting that long. So `openwit-build` and the shard stage start their workers
before they import Beam (`common.launch`), and the pool takes them ready (`adopt`). On Linux the
command forks a zygote first thing: it loads the worker's modules and the kernel once (~0.5 s, on a
core the Beam import leaves idle), forks the workers from itself and exits; the command is their
subreaper meanwhile, so they become its own children (they share what the zygote loaded instead
of each loading it again, N × 0.5 s of CPU). Where fork exists without a subreaper, the command
loads all that itself and forks the workers; elsewhere each is a fresh
`python -m openwit.pipeline.images.worker --warm`, loading on the cores the Beam import leaves idle.
The flags are only glanced at, from the command line, before anything is parsed: how many workers
(`--workers N`, else one per usable core) and whether this process will build the shards at all
(not for a remote runner, Beam's multi-processing mode, `--help`, `--dry_run`, `--stage
candidates`). A wrong guess costs idle workers, never results: the pool starts whatever it lacks,
and workers nobody adopted are ended when the command ends.
`OPENWIT_NO_PRESTART=1` turns it off.
"""
from __future__ import annotations

import atexit
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback

from openwit.common.local import flag_value, is_local_runner, usable_cores

try:
    import fcntl
except ImportError:  # not a Unix: pipes keep their default size
    fcntl = None

WORKER_MODULE = "openwit.pipeline.images.worker"  # never imported here: it runs as __main__
PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux's value; Python ≥ 3.10 names it
_lock = threading.Lock()
_parked: list = []  # subprocess.Popen or Forked
_zygotes: list = []  # Zygote, until a pool adopts (or release ends) what it forked


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


def _pipes() -> tuple[int, int, int, int]:
    """A worker's two pipes: (stdin read, stdin write, stdout read, stdout write)."""
    return (*os.pipe(), *os.pipe())


def _become_worker(in_r: int, out_w: int) -> None:
    """In a forked child: serve images on these pipes as stdin/stdout, every other descriptor
    closed, and leave without the parent's atexit handlers or buffers. Never returns."""
    code = 1
    try:
        from openwit.pipeline.images import worker

        os.dup2(in_r, 0)
        os.dup2(out_w, 1)
        os.closerange(3, _max_fd())
        code = worker.main([])
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _parent_ends(pid: int, in_w: int, out_r: int) -> Forked:
    proc = Forked(pid, os.fdopen(in_w, "wb"), os.fdopen(out_r, "rb"))
    for pipe in (proc.stdin, proc.stdout):
        _widen(pipe)
    return proc


def _fork_worker() -> Forked:
    """One image worker forked from this (single-threaded, warmed) process, on its own two pipes."""
    in_r, in_w, out_r, out_w = _pipes()
    pid = os.fork()
    if pid == 0:
        _become_worker(in_r, out_w)
    os.close(in_r)
    os.close(out_w)
    return _parent_ends(pid, in_w, out_r)


_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def _subreaper(on: bool) -> bool:
    """Linux: make this process (or no longer) the one that orphaned descendants are re-parented to,
    so that the workers a zygote forked become its own children when the zygote exits."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class Zygote:
    """A child forked first thing that loads the workers' modules and the kernel while this process
    goes on with its own imports, forks `count` workers from itself and exits. This process is their
    subreaper meanwhile, so they become its children (waited for, their CPU counted, as if forked
    here). `settle` (when a pool adopts them, or at exit) collects them as `Forked`."""

    SETTLE_SECONDS = 120.0  # a zygote still loading after this is ended (a fresh install compiles ~2 s)
    STOP_SECONDS = 5.0  # when the command ends before adopting: its usual ~0.5 s, not minutes

    def __init__(self, count: int):
        self.pipes = [_pipes() for _ in range(count)]
        pid_r, pid_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            self.pid = os.fork()
        except OSError:
            for fd in (pid_r, pid_w, *(fd for fds in self.pipes for fd in fds)):
                os.close(fd)
            raise
        if self.pid == 0:
            self._hatch(pid_w)
        os.close(pid_w)
        self.pids = os.fdopen(pid_r, "rb")
        for in_r, _, _, out_w in self.pipes:
            os.close(in_r)
            os.close(out_w)

    def _hatch(self, pid_w: int) -> None:
        """In the zygote: warm up, fork the workers, write their pids, exit. Never returns."""
        code = 1
        try:
            for stop in (signal.SIGINT, signal.SIGTERM):  # the command ends it (release): no traceback on Ctrl-C
                signal.signal(stop, signal.SIG_IGN)
            for _, in_w, out_r, _ in self.pipes:
                os.close(in_w)
                os.close(out_r)
            from openwit.pipeline.images import worker

            worker.warm()
            for in_r, _, _, out_w in self.pipes:
                pid = os.fork()
                if pid == 0:
                    _become_worker(in_r, out_w)
                os.write(pid_w, b"%d\n" % pid)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)

    def settle(self, stop: bool = False) -> list[Forked]:
        """The workers the zygote started: waits for it to finish (it has had the imports' time; with
        `stop`, the command is ending, at most STOP_SECONDS), else ends it and collects what it forked.
        (Ended, it may have forked a worker without reporting it: that one sees its stdin closed and
        exits, unreaped — so a zygote is ended only when it hangs.)"""
        if not select.select([self.pids], [], [], self.STOP_SECONDS if stop else self.SETTLE_SECONDS)[0]:
            os.kill(self.pid, signal.SIGKILL)
        pids = [int(line) for line in self.pids.read().split()]  # to EOF: the zygote has exited
        self.pids.close()
        try:
            os.waitpid(self.pid, 0)  # after this its workers are this process's children
        except ChildProcessError:  # SIGCHLD ignored: reaped by the kernel
            pass
        procs = []
        for i, (_, in_w, out_r, _) in enumerate(self.pipes):
            if i < len(pids):
                procs.append(_parent_ends(pids[i], in_w, out_r))
            else:  # never forked
                os.close(in_w)
                os.close(out_r)
        return procs


def _max_fd() -> int:
    try:
        return max(256, os.sysconf("SC_OPEN_MAX"))
    except (AttributeError, ValueError, OSError):
        return 65536


def planned_workers(argv: list[str]) -> int:
    """How many image workers this command line will want in this process (0: none, or unsure)."""
    if any(a in ("-h", "--help") or a.startswith("--dry_run") for a in argv):
        return 0
    if flag_value(argv, "--stage") == "candidates":
        return 0  # openwit-build stops before the shards
    in_process = (flag_value(argv, "--direct_running_mode") or "in_memory") == "in_memory"
    if not (is_local_runner(flag_value(argv, "--runner")) and in_process):
        return 0  # the shards are built elsewhere, or by other processes with pools of their own
    try:
        n = int(flag_value(argv, "--workers") or 0)  # 0: the default, one per usable core
    except ValueError:
        return 0  # the parser will say what is wrong
    if n == 0:
        n = usable_cores()
    return n if n > 1 else 0  # 1: images are decoded in the build's own process


def start_mode() -> str:
    """How this process can start workers now: "zygote" (fork a child that loads their modules while
    this process imports Beam, Linux), "fork" (load them here, then fork), "spawn" (fresh interpreters).
    Forking needs a single-threaded process."""
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return "spawn"
    return "zygote" if sys.platform.startswith("linux") else "fork"


def prestart(count: int, mode: str | None = None) -> None:
    """Start `count` image workers, warm, waiting for a pool to adopt them (`mode`: see start_mode)."""
    if count < 1:
        return
    mode = mode or start_mode()
    atexit.register(release)
    if mode == "zygote" and _subreaper(True):
        try:
            zygote = Zygote(count)
        except OSError:  # no process to start: the pool will say so
            _subreaper(False)
            return
        with _lock:
            _zygotes.append(zygote)
        return
    if mode != "spawn":
        from openwit.pipeline.images import worker

        worker.warm()
        sys.stdout.flush()
        sys.stderr.flush()
    for _ in range(count):
        try:
            proc = spawn_worker(warm=True) if mode == "spawn" else _fork_worker()
        except OSError:  # no process to start: the pool will say so and decode in-process
            break
        with _lock:
            _parked.append(proc)


def _settle(stop: bool = False) -> None:
    """Park the workers of any zygote started (call with _lock held; `stop`: see Zygote.settle)."""
    if _zygotes:
        while _zygotes:
            _parked.extend(_zygotes.pop(0).settle(stop))
        _subreaper(False)  # all its workers are children now


def adopt(count: int) -> list:
    """Up to `count` started workers that are still alive, now the caller's."""
    with _lock:
        _settle()
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
    so they are killed: a command that stops early (a typo in a flag) does not wait for their start
    (a zygote still loading is waited for, ≤ Zygote.STOP_SECONDS: see Zygote.settle)."""
    with _lock:
        _settle(stop=True)
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
