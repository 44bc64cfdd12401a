"""A shard's image bytes past a memory budget wait in an unnamed temporary file until the shard is written.

A shard is written in key order once every one of its candidates has been attempted, so its images
wait until then. At 256 px (~25 kB each) 10,000 of them are ~0.25 GB; kept originals (`--resize-mode
no`: web photos are 0.1-0.5 MB) would be several GB per shard, three shards in flight per worker. Past
`HELD_BYTES` per shard the images go to a temporary file (unnamed: nothing is left behind, even after
kill -9) and the writer reads them back; the shard's bytes do not change. A file that cannot be
written (a full disk) keeps the images in memory, as before, with a warning.
"""
from __future__ import annotations

import logging
import tempfile

log = logging.getLogger(__name__)
HELD_BYTES = 256 << 20  # per shard


class Parked:
    """Image bytes in a Spool's file; `bytes(parked)` reads them back (`bytes(b)` of bytes is `b`)."""

    __slots__ = ("spool", "offset", "size")

    def __init__(self, spool: "Spool", offset: int, size: int):
        self.spool, self.offset, self.size = spool, offset, size

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return self.spool.read(self.offset, self.size)


class Spool:
    """One shard's images: the first `held_bytes` kept as they are, the rest parked in a file.
    `keep` is called by the download loop while the shard is attempted, `bytes(Parked)` by the writer
    afterwards; `close` drops the file."""

    def __init__(self, held_bytes: int | None = None):
        self.held_bytes = HELD_BYTES if held_bytes is None else held_bytes
        self.held = self.parked = 0
        self._file = None
        self._unwritable = False

    def keep(self, data: bytes) -> bytes | Parked:
        if self.held + len(data) <= self.held_bytes or self._unwritable:
            self.held += len(data)
            return data
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="openwit-shard-")
            self._file.seek(self.parked)
            self._file.write(data)
        except OSError as e:
            log.warning("cannot park images in a temporary file (%s): keeping them in memory", e)
            self._unwritable = True
            self.held += len(data)
            return data
        parked = Parked(self, self.parked, len(data))
        self.parked += len(data)
        return parked

    def read(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        data = self._file.read(size)
        if len(data) != size:
            raise OSError(f"temporary image file: {len(data)} of {size} bytes at {offset}")
        return data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
