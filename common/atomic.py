"""Atomic writes: write to a temporary name beside the target, then rename (works through Beam FileSystems)."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import IO, Iterator


def _tmp_name(path: str) -> str:
    head, tail = path.rsplit("/", 1) if "/" in path else ("", path)
    tmp = f".{tail}.tmp-{uuid.uuid4().hex[:12]}"
    return f"{head}/{tmp}" if head else tmp


@contextmanager
def atomic_open(path: str, mime_type: str = "application/octet-stream") -> Iterator[IO[bytes]]:
    """Open `path` for binary writing; it appears under its final name only if the block succeeds.

    Local paths use os.replace (atomic on POSIX); gs:// and s3:// use FileSystems.rename (an object
    only becomes visible when its upload completes, so no partial object is ever under the final name).
    """
    if "://" not in path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = _tmp_name(path)
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    from apache_beam.io.filesystems import FileSystems  # only for gs:// / s3:// (keeps local writers light)

    tmp = _tmp_name(path)
    ok = False
    try:
        with FileSystems.create(tmp, mime_type=mime_type) as f:
            yield f
        if FileSystems.exists(path):
            FileSystems.delete([path])
        FileSystems.rename([tmp], [path])
        ok = True
    finally:
        if not ok and FileSystems.exists(tmp):
            FileSystems.delete([tmp])


def atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def move_file(src: str, dst: str) -> None:
    """Put `src` under the name `dst` (replacing it): one rename locally; copy + delete on object
    stores, where the object appears whole at once."""
    if "://" not in dst:
        os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        os.replace(src, dst)
        return
    from apache_beam.io.filesystems import FileSystems

    if FileSystems.exists(dst):
        FileSystems.delete([dst])
    FileSystems.rename([src], [dst])


def remove_tree(path: str) -> None:
    """Delete a folder and everything in it (nothing when it does not exist)."""
    if "://" not in path:
        if os.path.isdir(path):
            import shutil

            shutil.rmtree(path)
        return
    from apache_beam.io.filesystems import FileSystems

    from openwit.common.files import match_files

    found = match_files(f"{path.rstrip('/')}/**")
    if found:
        FileSystems.delete(found)
