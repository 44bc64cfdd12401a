"""The output folder of a run: checked before any work, and held by one writer at a time.

`check_out(out)` refuses an `--out` that is a file or cannot be written, with one line, before a
pipeline is built. `out_lock(out)` holds `OUT/.openwit.lock` for the run: the file names the holder
(host, pid, start time, command) and is `flock`ed while held, so a second run into the same folder
stops at once with one line naming the holder, and a lock left by a killed run (its flock died with
it) is taken over with a log line. The file is removed when the run ends, so a refused or locked-out
run leaves the folder exactly as it found it. A lock written on another host is never taken over
(that run cannot be checked from here). gs:// and s3:// folders are not locked.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

from openwit.common import layout
from openwit.common.errors import UserError

log = logging.getLogger(__name__)


def is_remote(path: str) -> bool:
    return "://" in path


def check_out(out: str) -> None:
    """UserError when `out` is a file, or a local folder that cannot be created or written."""
    if is_remote(out):
        return
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"--out {out} is a file, not a folder: choose another --out")
    probe = path
    while not os.path.exists(probe):  # the first existing folder above is where it gets created
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UserError(f"--out {out}: {probe} is a file, not a folder")
    try:  # a real write: permissions, read-only mounts and immutable folders alike (also as root)
        fd, tmp = tempfile.mkstemp(prefix=".openwit-probe-", dir=probe)
    except OSError as e:
        what = "the folder" if probe == path else f"{probe} (where it would be created)"
        raise UserError(f"--out {out}: cannot write to {what}: {e.strerror}") from None
    os.close(fd)
    os.unlink(tmp)


def _holder_text(holder: dict) -> str:
    return (f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}, "
            f"command: {holder.get('command')}")


def _read_holder(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 1 << 16)
    if not raw.strip():
        return None
    try:
        holder = json.loads(raw.decode("utf-8"))
    except ValueError:
        return {"host": "?", "pid": "?", "started": "?", "command": raw[:200].decode("utf-8", "replace")}
    return holder if isinstance(holder, dict) else None


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, TypeError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _acquire(path: str, out: str) -> int:
    """Open and flock the lock file (the one at `path` now, not an unlinked old one); returns the fd."""
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = _read_holder(fd) or {}
            os.close(fd)
            raise UserError(f"{out} is in use by another openwit run ({_holder_text(holder)}): wait for it to "
                            f"finish or write to another --out") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file between our open and flock: try again
    raise UserError(f"{out}: could not take the lock {path} (it keeps changing)")


def _take_over(fd: int, path: str, out: str) -> None:
    """The flock is ours; a holder still named in the file is a run that is gone (a killed run's
    flock dies with it) — unless it ran on another machine, which cannot be checked from here."""
    old = _read_holder(fd)
    if old is None:
        return
    host = old.get("host")
    if isinstance(host, str) and host not in (socket.gethostname(), "?", ""):
        raise UserError(f"{out} is locked by a run on another machine ({_holder_text(old)}); if that run "
                        f"is gone, delete {path}")
    reused = _pid_alive(old.get("pid")) and old.get("pid") != os.getpid()
    log.warning("taking over the stale lock %s of a run that is gone (%s)%s", path, _holder_text(old),
                " — that pid now belongs to another process" if reused else "")


@contextmanager
def out_lock(out: str, command: str | None = None) -> Iterator[None]:
    """Hold OUT/.openwit.lock for the block (creating OUT); see the module docstring."""
    if is_remote(out):
        log.info("%s is not local: not locked (do not run two builds into it at once)", out)
        yield
        return
    os.makedirs(out, exist_ok=True)
    path = layout.lock_path(out)
    command = command or " ".join(shlex.quote(a) for a in [os.path.basename(sys.argv[0]), *sys.argv[1:]])
    fd = _acquire(path, out)
    try:
        _take_over(fd, path, out)
    except BaseException:
        os.close(fd)
        raise
    try:
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "command": command[:500]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me, sort_keys=True) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)
