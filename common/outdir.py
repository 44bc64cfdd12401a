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


def display_path(path: str) -> str:
    """How a path is shown to the user: absolute when local, as given when it is a URL."""
    return path if is_remote(path) else os.path.abspath(path)


def check_out(out: str, what: str = "--out") -> None:
    """UserError when `out` is a file, or a local folder that cannot be created or written
    (`what`: how the message names it, e.g. `--report-dir`)."""
    if is_remote(out):
        return
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{what} {out} is a file, not a folder: choose another {what}")
    probe = path
    while not os.path.exists(probe):  # the first existing folder above is where it gets created
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UserError(f"{what} {out}: {probe} is a file, not a folder")
    try:  # a real write: permissions, read-only mounts and immutable folders alike (also as root)
        fd, tmp = tempfile.mkstemp(prefix=".openwit-probe-", dir=probe)
    except OSError as e:
        where = "the folder" if probe == path else f"{probe} (where it would be created)"
        raise UserError(f"{what} {out}: cannot write to {where}: {e.strerror}") from None
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


# --- --overwrite: start over in an OUT that holds an earlier run ------------------------------------
def _list(folder: str) -> tuple[list[str], list[str]]:
    """(file names, sub-folder names) directly in `folder`; ([], []) when it does not exist."""
    if is_remote(folder):
        from openwit.common.files import match_files

        prefix = folder.rstrip("/") + "/"
        return sorted(p[len(prefix):] for p in match_files(prefix + "*") if "/" not in p[len(prefix):]), []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    files = sorted(e.name for e in entries if not e.is_dir(follow_symlinks=False))
    dirs = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    return files, dirs


def _delete(paths: list[str]) -> None:
    if not paths:
        return
    if is_remote(paths[0]):
        from apache_beam.io.filesystems import FileSystems

        FileSystems.delete(paths)
        return
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _is_marker(value: dict | None) -> bool:
    return isinstance(value, dict) and "fingerprint" in value and "count" in value


def _is_timing(value: dict | None) -> bool:
    return isinstance(value, dict) and "action" in value and "start_time" in value


def _temp_of(name: str) -> str | None:
    """`00000.tar` for `.00000.tar.tmp-0123456789ab` (common.atomic's temporary names), else None."""
    m = layout.TEMP_SUFFIX.match(name)
    return m.group(1) if m else None


def openwit_outputs(out: str) -> tuple[list[str], list[str], list[str]]:
    """What `--overwrite` removes from OUT: (files, folders to remove whole, names left alone).

    Only what openwit writes, and only with proof that openwit wrote it: shard files whose number
    has an openwit commit marker or timing record (JSON with openwit's keys), their temporary
    files, candidates/candidates-NNNNN-of-NNNNN.parquet, timing/NNNNN.json records, report/ files
    when report/stats.json is openwit's, staging folders, and query_counts.parquet,
    queries_meta.json, candidate_counts.json, tokenizer.json when the folder holds any of the above.
    Everything else — the user's files and folders, img2dataset's shards, files of unknown names —
    is left alone (the third list names them); so is the lock of the run that is doing this."""
    files, dirs = _list(out)
    timing_dir = layout.join(out, layout.TIMING_DIR)
    timing_files = _list(timing_dir)[0] if layout.TIMING_DIR in dirs or is_remote(out) else []
    timings = {}
    for name in timing_files:
        n = layout.shard_number(name[:-len(".json")] + layout.TAR) if name.endswith(".json") else None
        if n is not None and _is_timing(layout.read_json(layout.join(timing_dir, name))):
            timings[n] = name
    shards = set(timings)
    for name in files:
        n = layout.shard_number(name)
        if n is not None and name.endswith(layout.MARKER) and _is_marker(layout.read_json(layout.join(out, name))):
            shards.add(n)
    cand_dir = layout.candidates_dir(out)
    cand_files = [n for n in (_list(cand_dir)[0] if layout.CANDIDATES_DIR in dirs or is_remote(out) else [])
                  if layout.CANDIDATE_FILE.match(n) or layout.CANDIDATE_FILE.match(_temp_of(n) or "")]
    staging = [d for d in dirs if layout.is_staging_name(d)]
    if is_remote(out):
        from openwit.common.files import match_files

        prefix = out.rstrip("/") + "/"
        staging = sorted({p[len(prefix):].split("/", 1)[0]
                          for p in match_files(layout.join(out, f"{layout.STAGING_PREFIX}-*/**"))})
    counts = layout.read_json(layout.join(out, layout.CANDIDATE_COUNTS)) if layout.CANDIDATE_COUNTS in files else None
    openwit_counts = isinstance(counts, dict) and str(counts.get("format", "")).startswith("openwit candidate counts")
    evidence = bool(shards or cand_files or staging or openwit_counts)

    remove, remove_dirs, left = [], [], []
    for name in files:
        real = _temp_of(name) or name
        n = layout.shard_number(real)
        if name == layout.LOCK:
            continue
        if (n is not None and n in shards) or (evidence and real in layout.BUILD_FILES):
            remove.append(layout.join(out, name))
        else:
            left.append(name)
    remove += [layout.join(cand_dir, n) for n in cand_files]
    remove += [layout.join(timing_dir, name) for name in timings.values()]
    report_dir = layout.report_dir(out)
    if layout.REPORT_DIR in dirs or is_remote(out):
        report_files = _list(report_dir)[0]
        stats = layout.read_json(layout.join(report_dir, "stats.json")) if "stats.json" in report_files else None
        if isinstance(stats, dict) and "build" in stats and "funnel" in stats:
            ours = set(layout.REPORT_FILES) | set(layout.REPORT_PLOTS)
            remove += [layout.join(report_dir, n) for n in report_files if (_temp_of(n) or n) in ours]
    remove_dirs += [layout.join(out, d) for d in staging]
    left += [d + "/" for d in dirs if d not in (layout.CANDIDATES_DIR, layout.TIMING_DIR, layout.REPORT_DIR)
             and not layout.is_staging_name(d)]
    return remove, remove_dirs, sorted(left)


def clear_outputs(out: str) -> tuple[list[str], list[str]]:
    """`openwit-build --overwrite`: remove openwit's outputs from OUT (see `openwit_outputs`), then
    candidates/, timing/ and report/ when that leaves them empty; returns (removed paths, names left
    alone). Run it holding OUT's lock."""
    from openwit.common.atomic import remove_tree

    remove, remove_dirs, left = openwit_outputs(out)
    _delete(remove)
    for path in remove_dirs:
        remove_tree(path)
    if not is_remote(out):
        for sub in (layout.CANDIDATES_DIR, layout.TIMING_DIR, layout.REPORT_DIR):
            path = os.path.join(out, sub)
            if os.path.isdir(path) and not os.path.islink(path):
                if os.listdir(path):
                    left.append(sub + "/")  # holds files that are not openwit's
                else:
                    os.rmdir(path)
    removed = remove + [d + "/" for d in remove_dirs]
    if removed:
        log.warning("--overwrite: removed %d file(s)/folder(s) of earlier openwit runs from %s", len(removed), out)
    if left:
        log.warning("--overwrite: left alone (not openwit's): %s%s", ", ".join(left[:10]),
                 f" and {len(left) - 10} more" if len(left) > 10 else "")
    return removed, sorted(set(left))
