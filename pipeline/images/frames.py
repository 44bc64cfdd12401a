"""The pipe protocol between `ImagePool` and its worker processes: frames of an 8-byte little-endian
length and a payload (the worker reads and writes them with blocking files, the pool on its event loop)."""
from __future__ import annotations

import struct

HEADER = struct.Struct("<Q")


def read_frame(f) -> bytes | None:
    """One frame's payload, or None at a clean end of stream; EOFError when cut inside a frame."""
    head = f.read(HEADER.size)
    if not head:
        return None
    if len(head) < HEADER.size:
        raise EOFError("stream ended inside a frame header")
    (n,) = HEADER.unpack(head)
    data = f.read(n)
    if len(data) < n:
        raise EOFError(f"stream ended inside a frame ({len(data)} of {n} bytes)")
    return data


def write_frame(f, payload: bytes) -> None:
    f.write(HEADER.pack(len(payload)))
    f.write(payload)
    f.flush()
