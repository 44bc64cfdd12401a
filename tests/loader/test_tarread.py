"""The lean tar reader gives what webdataset's tarfile-based iterator gives — on every tar format
Python writes, on odd entries, and on the same archive cut at every offset or with a byte flipped."""
import io
import tarfile

import pytest
import webdataset as wds

from openwit.loader.tarread import group_by_key, tar_members


def _archive(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        def add(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, **extra) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.type = (len(data) if kind == tarfile.REGTYPE else 0), kind
            for k, v in extra.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("000000000.jpg", bytes(range(256)) * 7)
        add("000000000.txt", "a caption, ünïcode".encode())
        add("000000000.json", b"{}")
        add("empty.txt", b"")
        add("dir", kind=tarfile.DIRTYPE)
        add("link.txt", kind=tarfile.SYMTYPE, linkname="000000000.txt")
        add("__meta__", b"skipped")
        add("deep/" * 30 + "000000001.jpg", b"x" * 513)  # > 100 characters: prefix, GNU L or pax path
        big = {} if fmt == tarfile.USTAR_FORMAT else {"uid": 3_000_000, "mtime": 2 ** 34}  # GNU: base-256
        add("000000001.txt", b"y" * 512, **big)
    return buf.getvalue()


FORMATS = [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]


class _Chunky(io.RawIOBase):
    """A stream that returns at most 700 bytes a read (network streams do)."""

    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self.buf.read(700 if n is None or n < 0 else min(n, 700))


def _outcome(reader, data: bytes):
    """(members yielded, handler calls by exception type, exception raised) of one reader."""
    calls = []

    def handler(exn):
        calls.append(type(exn).__name__)
        return False

    got = []
    try:
        for m in reader(_Chunky(data), handler):
            got.append(m if isinstance(m, tuple) else (m["fname"], m["data"]))
    except Exception as e:  # noqa: BLE001
        return got, calls, type(e).__name__
    return got, calls, None


def _reference(stream, handler):
    return wds.tariterators.tar_file_iterator(stream, handler=handler)


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_members_as_tarfile(fmt):
    data = _archive(fmt)
    got, calls, err = _outcome(tar_members, data)
    assert (got, calls, err) == _outcome(_reference, data)
    assert [n.rsplit("/", 1)[-1] for n, _ in got] == ["000000000.jpg", "000000000.txt", "000000000.json",
                                                       "empty.txt", "000000001.jpg", "000000001.txt"]
    assert got[4][0] == "deep/" * 30 + "000000001.jpg"


@pytest.mark.parametrize("fmt", FORMATS)
def test_cut_at_any_offset_or_damaged_like_tarfile(fmt):
    data = _archive(fmt)
    for cut in list(range(0, len(data), 97)) + [512, 1024, 1536, len(data) - 1024]:
        assert _outcome(tar_members, data[:cut]) == _outcome(_reference, data[:cut]), cut
    for pos in range(0, len(data), 131):
        bad = data[:pos] + bytes([data[pos] ^ 0x5A]) + data[pos + 1:]
        mine, ref = _outcome(tar_members, bad), _outcome(_reference, bad)
        assert mine[0] == ref[0] and mine[2] == ref[2], pos


def test_empty_and_garbage_streams_are_read_errors():
    for data in (b"", b"not a tar at all" * 40):
        assert _outcome(tar_members, data) == ([], [], "ReadError")


def test_grouping_follows_webdataset():
    members = [("a/0001.jpg", b"1"), ("a/0001.TXT", b"2"), ("a/0001.seg.png", b"3"), ("nodot", b"x"),
               ("a/0001.jpg", b"dup"), ("a/0002.jpg", b"4"), ("b.c/0002.jpg", b"5"), ("0003.json", b"6")]
    errors = []
    mine = list(group_by_key(iter(members), errors.append))
    ref_errors = []

    def handler(exn):
        ref_errors.append(exn)
        return True

    ref = [(s["__key__"], {k: v for k, v in s.items() if not k.startswith("__")})
           for s in wds.tariterators.group_by_keys(({"fname": n, "data": d, "__url__": "u"} for n, d in members),
                                                   handler=handler)]
    assert mine == ref
    assert [k for k, _ in mine] == ["a/0001", "a/0002", "b.c/0002", "0003"] and mine[0][1]["txt"] == b"2"
    assert len(errors) == len(ref_errors) == 1 and "duplicate" in str(errors[0])
