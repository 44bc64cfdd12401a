"""MediaWiki `pages-articles` XML dumps: reading tasks, format checks, multistream byte ranges
(the XML itself is parsed by `pages`, streamed, with a size limit per page).

A task is `(path, start, end)`: `start is None` reads the whole file (plain XML or bz2, several
concatenated streams allowed); otherwise bytes [start, end) of a multistream dump, a run of whole
bz2 streams of 100 `<page>`s each, as listed by the dump's `…-multistream-index.txt.bz2`.
"""
from __future__ import annotations

import bz2
import io
import re
from typing import IO, Iterator, NamedTuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from openwit.common.errors import UserError
from openwit.queries.pages import CHUNK, MAX_PAGE_CHARS, Page, iter_pages, parse_pages  # noqa: F401 (re-exported)

BZ2_MAGIC = b"BZh"
_BZ2_EOS = 0x177245385090  # bz2 end-of-stream marker (48 bits), followed by a 32-bit CRC
_ROOT = re.compile(rb"<mediawiki[\s>]")


class Task(NamedTuple):
    path: str
    start: int | None = None
    end: int | None = None


class _Counting(io.RawIOBase):
    """Read-through wrapper that counts bytes (compressed position for errors, XML bytes for stats)."""

    def __init__(self, f: IO[bytes]):
        self.f, self.n = f, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.f.read(len(b))
        b[: len(data)] = data
        self.n += len(data)
        return len(data)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _open_raw(path: str) -> IO[bytes]:
    try:
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as e:  # FileSystems wraps every backend's error differently
        raise UserError(f"{path}: cannot open ({e.__class__.__name__}: {str(e).splitlines()[0][:200]})") from None


def read_task(task: Task, stats: dict | None = None, max_chars: int = MAX_PAGE_CHARS) -> Iterator[Page]:
    """Pages of one task; adds `xml_bytes` (uncompressed) to `stats` when given. A page whose
    wikitext is over `max_chars` characters comes with `too_large` set and no text."""
    if task.start is not None:
        yield from _read_range(task, stats, max_chars)
        return
    with _open_raw(task.path) as raw:
        counted = _Counting(raw)
        head = raw.read(3)
        raw.seek(0)
        stream: IO[bytes] = io.BufferedReader(counted)
        if head == BZ2_MAGIC:
            stream = bz2.BZ2File(stream)
        xml = _Counting(stream)
        try:
            yield from iter_pages(xml, task.path, max_chars)
        except EOFError:
            raise UserError(f"{task.path}: truncated bz2 stream after {_mb(counted.n)} — re-download the file") from None
        except OSError as e:
            raise UserError(f"{task.path}: corrupt bz2 data after {_mb(counted.n)} ({e}) — re-download the file") from None
        finally:
            if stats is not None:
                stats["xml_bytes"] = stats.get("xml_bytes", 0) + xml.n


def decompress_streams(data: bytes, name: str) -> bytes:
    """Concatenated whole bz2 streams → their decompressed bytes; a cut-off stream is an error."""
    return b"".join(stream_chunks(data, name))


def stream_chunks(data: bytes, name: str) -> Iterator[bytes]:
    """The decompressed bytes of concatenated whole bz2 streams, at most CHUNK bytes at a time (a
    stream that inflates to a huge page is never held whole); a cut-off stream is an error."""
    while data:
        d = bz2.BZ2Decompressor()
        try:
            out = d.decompress(data, CHUNK)
            while True:
                yield out
                if d.eof or d.needs_input:
                    break
                out = d.decompress(b"", CHUNK)
        except OSError as e:
            raise UserError(f"{name}: corrupt bz2 data ({e}) — re-download the file") from None
        if not d.eof:
            raise UserError(f"{name}: truncated bz2 stream — re-download the file")
        data = d.unused_data


def _read_range(task: Task, stats: dict | None, max_chars: int) -> Iterator[Page]:
    name = f"{task.path}[{task.start}:{task.end}]"
    with _open_raw(task.path) as raw:
        raw.seek(task.start)
        data = raw.read(task.end - task.start if task.end is not None else -1)
    counted = {"n": 0}

    def chunks() -> Iterator[bytes]:
        """`<mediawiki>` + the range's pages, up to the dump's own `</mediawiki>` (if in range)."""
        yield b"<mediawiki>"
        end_tag, pending = b"</mediawiki>", b""
        for out in stream_chunks(data, name):
            pending += out
            end = pending.find(end_tag)
            if end >= 0:
                pending = pending[:end]
                break
            keep = len(pending) - len(end_tag) + 1  # an end tag may start in the last bytes
            if keep > 0:
                counted["n"] += keep
                yield pending[:keep]
                pending = pending[keep:]
        counted["n"] += len(pending)
        yield pending
        yield end_tag

    try:
        yield from parse_pages(chunks(), name, max_chars)
    finally:
        if stats is not None:
            stats["xml_bytes"] = stats.get("xml_bytes", 0) + counted["n"]


def index_path(dump_path: str) -> str | None:
    """The multistream index beside a `…-multistream.xml.bz2` dump, if that is one."""
    if "multistream" not in dump_path or not dump_path.endswith(".xml.bz2"):
        return None
    head, _, tail = dump_path.rpartition("multistream")
    return f"{head}multistream-index{tail[: -len('.xml.bz2')]}.txt.bz2"


def read_index_offsets(path: str) -> list[int]:
    """Sorted distinct stream offsets from an index (`offset:page_id:title` lines, bz2 or plain)."""
    with _open_raw(path) as raw:
        data = raw.read()
    if data[:3] == BZ2_MAGIC:
        data = decompress_streams(data, path)
    offsets = set()
    for n, line in enumerate(data.splitlines(), 1):
        head = line.split(b":", 1)[0]
        if not head.strip():
            continue
        if not head.isdigit():
            raise UserError(f"{path}: line {n} is not `offset:page_id:title` — not a multistream index")
        offsets.add(int(head))
    return sorted(offsets)


def range_tasks(path: str, offsets: list[int], file_size: int, streams_per_task: int = 10) -> list[Task]:
    """Byte-range tasks of `streams_per_task` consecutive page streams; the last runs to the file end."""
    tasks = []
    for i in range(0, len(offsets), streams_per_task):
        end = offsets[i + streams_per_task] if i + streams_per_task < len(offsets) else file_size
        tasks.append(Task(path, offsets[i], end))
    return tasks


def _has_bz2_end(tail: bytes) -> bool:
    """True when the last bytes hold a bz2 end-of-stream marker (+CRC, bit-padded to a byte)."""
    x = int.from_bytes(tail, "big")
    return any(((x >> (32 + pad)) & ((1 << 48) - 1)) == _BZ2_EOS for pad in range(8))


def _bz2_head(raw: IO[bytes], path: str) -> bytes:
    """The first decompressed bytes (a bz2 block is up to 900 kB, so read until output appears)."""
    d = bz2.BZ2Decompressor()
    xml = b""
    try:
        while len(xml) < 1024 and not d.eof:
            chunk = raw.read(1 << 18)
            if not chunk:
                break
            xml += d.decompress(chunk, max_length=1 << 16)
    except OSError as e:
        raise UserError(f"{path}: corrupt bz2 data ({e}) — re-download the file") from None
    return xml


def check_dump(path: str) -> None:
    """Cheap up-front check: readable, bz2 or XML, a `<mediawiki` root, bz2 not cut off at the end."""
    with _open_raw(path) as raw:
        head = raw.read(1 << 16)
        if not head:
            raise UserError(f"{path}: empty file — not a MediaWiki XML dump")
        if head[:3] == BZ2_MAGIC:
            try:
                raw.seek(-11, io.SEEK_END)
                tail = raw.read(11)
            except (OSError, ValueError):
                tail = None
            if tail is not None and not _has_bz2_end(tail):
                size = raw.tell()
                raise UserError(f"{path}: truncated bz2 stream ({_mb(size)}, no end-of-stream marker) "
                                "— re-download the file")
            raw.seek(0)
            xml = _bz2_head(raw, path)
        elif head[:2] in (b"\x1f\x8b", b"PK", b"\xfd7"):
            raise UserError(f"{path}: gzip/zip/xz compressed — openwit reads .bz2 or plain XML dumps")
        else:
            xml = head
    if not _ROOT.search(xml[: 1 << 16]):
        start = xml.lstrip()[:40].decode("utf-8", "replace").replace("\n", " ")
        raise UserError(f"{path}: not a MediaWiki XML dump (no <mediawiki> root; starts with {start!r})")
