"""Does a WARC file end with a whole record? FastWARC stops without a word at a gzip member or a
record header cut short, so after it has read a file `end_problem` re-reads the last record it saw
(a seek, not a second pass over the file) and checks that the record is whole and nothing follows.

Common Crawl style files (one gzip member per record) and plain files are checked that way; a file
that is one gzip stream over many records is inflated once more, to its end.
"""
from __future__ import annotations

import re
import zlib
from typing import IO

GZIP_MAGIC = b"\x1f\x8b"
SLACK = 1 << 20        # read this much beyond the last record's declared length
OUT_CHUNK = 1 << 20    # inflate at most this much at a time (a compression bomb costs no memory)
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$")


def record_length(data: bytes) -> int | None:
    """Length of the plain WARC record at the start of `data` (header, body, closing blank line);
    None when its header is cut."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    m = _CONTENT_LENGTH.search(data[:end + 2])
    return end + 4 + (int(m.group(1)) if m else 0) + 4


def inflate_member(data, pos: int = 0) -> tuple[bytes, int, bytes, int | None]:
    """Inflate the gzip member at data[pos:]: (first 64 KiB, length, last 4 bytes, end offset in
    `data` or None when the member is cut short). Raises zlib.error on corrupt data."""
    d = zlib.decompressobj(47)
    buf, head, total, tail = memoryview(data)[pos:], b"", 0, b""
    while True:
        out = d.decompress(buf, OUT_CHUNK)
        if len(head) < 65536:
            head += out[: 65536 - len(head)]
        total, tail = total + len(out), (tail + out[-4:])[-4:]
        if d.eof:
            return head, total, tail, len(data) - len(d.unused_data)
        buf = d.unconsumed_tail
        if not buf and not out:
            return head, total, tail, None


def _whole_gzip_problem(raw: IO[bytes]) -> tuple[int, str] | None:
    """Inflate every member of the file: each must end, and the data must end with a blank line."""
    raw.seek(0)
    data, offset, tail = raw.read(), 0, b""
    while offset < len(data):
        try:
            _, _, member_tail, end = inflate_member(data, offset)
        except zlib.error as e:
            return offset, f"corrupt gzip data: {e}"
        if end is None:
            return offset, "truncated: gzip member cut short"
        tail = (tail + member_tail)[-4:] if member_tail else tail
        offset = end
    return None if tail == b"\r\n\r\n" else (offset, "truncated: the file ends inside a record")


def end_problem(raw: IO[bytes], last_pos: int | None, last_length: int) -> tuple[int, str] | None:
    """(file offset, what is wrong) when the file does not end with the whole record that starts at
    `last_pos` (the last one read; None: none was), else None. Needs a seekable stream."""
    start = last_pos or 0
    try:
        raw.seek(0)
        magic = raw.read(2)
        raw.seek(start)
        data = raw.read(last_length + SLACK)
        more = bool(raw.read(1))
    except (OSError, ValueError):  # not seekable: cannot check
        return None
    if magic == GZIP_MAGIC:
        if data[:2] != GZIP_MAGIC:  # record positions are not member starts: one gzip stream
            return _whole_gzip_problem(raw)
        try:
            head, total, tail, end = inflate_member(data)
        except zlib.error as e:
            return start, f"corrupt gzip data: {e}"
        if end is None:
            return start, "unreadable data (no whole record)" if more else "truncated: gzip member cut short"
        if not head.startswith(b"WARC/") or record_length(head) != total or tail != b"\r\n\r\n":
            return _whole_gzip_problem(raw)  # not one record per member
        if end < len(data) or more:
            return start + end, "unreadable data after the last record"
        return None
    if not data.startswith(b"WARC/"):
        return None  # zstd, lz4, ...: FastWARC's own checks only
    length = record_length(data)
    if length is None or len(data) < length:
        return start, "truncated: the file ends inside a record"
    if data[length - 4:length] != b"\r\n\r\n":
        return start, "record does not end with a blank line"
    if data[length:].strip() or more:
        return start + length, "unreadable data after the last record"
    return None
