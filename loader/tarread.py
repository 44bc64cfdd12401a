"""A lean reader of tar streams: the regular files of a shard as (name, bytes), grouped into samples.

It stands in for webdataset's `tar_file_iterator` (Python's `tarfile` in stream mode), which spends
~0.06 ms a member in header objects this loader never uses — a fifth of a device-path sample's
CPU. It reads what WebDataset shards hold: ustar, GNU (`L`/`K` long names) and pax (`x`: path and
size; `g` ignored) headers, checksums checked, base-256 sizes; other entry types (directories,
links, devices) are skipped. It behaves as `tarfile` does where the two could differ on a damaged
stream, so the loader's fault reasons do not change:

- an empty stream, or a first header that is short or fails its checksum: `tarfile.ReadError`;
- a later header that is short, all zeros or invalid: the archive ends there (the caller judges a
  missing end-of-archive block, as before);
- a member whose data ends early: `tarfile.ReadError("unexpected end of data")`, passed to
  `handler` like webdataset's member errors (`handler(exn)` true: go on; false: stop);
- errors of the underlying stream (a truncated gzip's `EOFError`, `zlib.error`, `OSError`) while
  reading a header propagate; while reading a member's data they go to `handler`.

Names are decoded as `tarfile` does (UTF-8, surrogateescape); WebDataset's meta entries
(`__*__`) are skipped as its own iterator skips them. `group_by_key` groups consecutive members
by WebDataset's key rule, as its `group_by_keys` does.
"""
from __future__ import annotations

import re
import tarfile
from typing import Any, Callable, Iterable, Iterator

BLOCK = 512
_REGULAR = (b"0", b"\x00", b"7")  # regular file, old regular file, contiguous file
_SKIP_META = re.compile(r"__[^/]*__($|/)")
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")


class _BadHeader(Exception):
    pass


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    """tarfile's `nti`: octal digits, or GNU base-256 when the first byte has its top bit set."""
    if field[:1] in (b"\x80", b"\xff"):
        n = int.from_bytes(field[1:], "big")
        return n - (256 ** (len(field) - 1)) if field[:1] == b"\xff" else n
    text = field.split(b"\x00", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise _BadHeader(f"invalid number field {field!r}") from None


def _checked(header: bytes) -> None:
    """tarfile's rule: the stored checksum equals the header's byte sum (the field read as spaces),
    unsigned or, for old writers, signed."""
    field = header[148:156]
    stored = _number(field)
    if stored != 256 + sum(header) - sum(field):
        rest = header[:148] + header[156:]
        if stored != 256 + sum(b - 256 if b > 127 else b for b in rest):
            raise _BadHeader("bad checksum")


def _pax_records(data: bytes) -> dict[str, str]:
    """`path`/`size` (and the rest) of a pax extended header: "LEN key=value\\n" records."""
    out, pos = {}, 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        key, _, value = data[space + 1: pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _read_exact(stream, n: int) -> bytes:
    """n bytes, or fewer only at the end of the stream (streams may return less than asked before it)."""
    data = stream.read(n)
    if len(data) == n or not data:
        return data
    parts, got = [data], len(data)
    while got < n:
        more = stream.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def tar_members(stream, handler: Callable[[Exception], bool]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each regular file of the tar `stream`, in stored order."""
    first, padding_lost = True, False
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        if padding_lost:  # tarfile seeks past the last member's padding before the next header
            raise tarfile.ReadError("unexpected end of data")
        header = _read_exact(stream, BLOCK)
        extended = long_name is not None or bool(pax)
        try:
            if len(header) < BLOCK:
                raise _BadHeader("empty file" if not header else "truncated header")
            if not any(header):
                raise _BadHeader("end of archive")
            _checked(header)
            size = _number(header[124:136])
        except _BadHeader as e:
            if first or extended:  # a bad first header, or the header an extension header announced
                raise tarfile.ReadError(str(e)) from None
            return  # tarfile ends the archive here too; the caller checks the end-of-archive block
        first = False
        kind = header[156:157]
        if kind in (b"L", b"K", b"x", b"g"):  # extension headers: they describe the next header
            data = _read_exact(stream, _padded(size))
            if len(data) < _padded(size):
                raise tarfile.ReadError("unexpected end of data")
            if kind == b"L":
                long_name = _text(data[:size])
            elif kind == b"x":
                pax = _pax_records(data[:size])
            continue
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise tarfile.ReadError("invalid pax size") from None
        name = pax.get("path") or long_name
        if name is None:
            name = _text(header[0:100])
            prefix = _text(header[345:500]) if header[257:262] == b"ustar" else ""
            if prefix:
                name = f"{prefix}/{name}"
        long_name, pax = None, {}
        wanted = kind in _REGULAR and not (
            "/" not in name and name.startswith("__") and name.endswith("__") or _SKIP_META.match(name))
        try:
            data = _read_exact(stream, _padded(size)) if size else b""
            if len(data) < size:
                if wanted:
                    raise tarfile.ReadError("unexpected end of data")
                padding_lost = True
                continue
        except Exception as exn:  # noqa: BLE001  (the stream's own errors count as the member's)
            if handler(exn):
                continue
            return
        padding_lost = len(data) < _padded(size)
        if not wanted:
            continue
        yield name, (data if len(data) == size else data[:size])


def group_by_key(members: Iterable[tuple[str, bytes]], on_duplicate: Callable[[Exception], Any]
                 ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Consecutive members with the same key → (key, {extension: bytes}). The key is the name up to
    the first dot of its last path part, the extension the rest, lower-cased (WebDataset's rule);
    names without a dot are left out; a repeated extension within a key goes to `on_duplicate`
    (the first one stays)."""
    key, parts = None, {}
    for name, data in members:
        match = _KEY.match(name)
        if match is None:
            continue
        prefix, ext = match.group(1), match.group(2).lower()
        if prefix != key:
            if parts:
                yield key, parts
            key, parts = prefix, {}
        if ext in parts:
            on_duplicate(ValueError(f"{name}: duplicate file name in tar file"))
            continue
        parts[ext] = data
    if parts:
        yield key, parts
