"""Raw samples out of shards, fault tolerant: every problem is skipped, counted by reason, logged once.

A raw sample is `(key, url, image_bytes, caption)`; decoding happens later, after shuffling, so
that skipping ahead (resume) costs only reading. Reasons counted here: `unreachable`,
`truncated_tar`, `corrupt_member`, `missing_image`, `missing_caption`, `bad_sample`. A shard gets
at most one stream-level reason (`unreachable`, `truncated_tar` or `bad_sample`): a tar cut short
is `truncated_tar` once, not also a `corrupt_member`. Compressed tars (`.tar.gz`, `.tar.bz2`,
`.tar.xz`, found by their magic bytes) are decompressed before the end-of-archive check.
"""
from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import tarfile
import zlib
from collections import Counter
from typing import Iterator, NamedTuple

from openwit.loader.tarread import group_by_key, tar_members
from openwit.loader.urls import open_url, shard_name

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "webp", "png")
CAPTION_EXTS = ("txt",)
_TRUNCATION = (tarfile.ReadError, EOFError, zlib.error, lzma.LZMAError)


class RawSample(NamedTuple):
    key: str
    url: str
    image: bytes
    caption: str
    padding: bool = False  # read to top up a worker's quota (its faults are counted by the shard's owner)


class FaultLog:
    """Counts failures by reason and logs the first of each (shard, reason) pair."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self._logged: set[tuple[str, str]] = set()

    def record(self, reason: str, url: str, detail: object = "") -> None:
        self.counts[reason] += 1
        if (url, reason) not in self._logged:
            self._logged.add((url, reason))
            log.warning("skipping (%s) in shard %s: %s", reason, shard_name(url), str(detail)[:200])

    def take(self) -> dict[str, int]:
        """The counts since the last call (a delta to send to the main process)."""
        out, self.counts = dict(self.counts), Counter()
        return out


class _TailTracker:
    """Wraps a stream, remembering the bytes read and the last 512 of them: a tar that ends without
    its zero end-of-archive block was cut short (tarfile's stream mode silently stops there)."""

    def __init__(self, stream, url: str) -> None:
        self.stream, self.url, self.total, self.tail = stream, url, 0, b""

    def __str__(self) -> str:  # webdataset appends "@ <stream>" to member errors
        return shard_name(self.url)

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.total += len(data)
        self.tail = data[-512:] if len(data) >= 512 else (self.tail + data)[-512:]  # no copy of big reads
        return data

    def cut_short(self) -> bool:
        return self.total > 0 and (len(self.tail) < 512 or any(self.tail))


class _Prefixed:
    """A stream whose first bytes were already read (to sniff the compression)."""

    def __init__(self, head: bytes, stream) -> None:
        self.head, self.stream = head, stream

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.stream.read(n)
        if n is None or n < 0:
            data, self.head = self.head + self.stream.read(), b""
            return data
        data, self.head = self.head[:n], self.head[n:]
        return data if len(data) == n else data + self.stream.read(n - len(data))


def _decompressed(stream):
    """The tar bytes of `stream`: gzip/bzip2/xz decompressed, plain tars as they are."""
    head = stream.read(6)
    raw = _Prefixed(head, stream)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)
    if head[:3] == b"BZh":
        return bz2.BZ2File(raw)
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw)
    return raw


def _pick(sample: dict, exts: tuple[str, ...]) -> bytes | None:
    return next((sample[e] for e in exts if e in sample), None)


def iter_shard(url: str, faults: FaultLog) -> Iterator[RawSample]:
    """Samples of one shard in stored order; stops quietly (counted) at the first unreadable part.

    The generator's return value is the shard's stream-level fault reason, or None when the shard
    was read cleanly to its end (`outcome = yield from iter_shard(...)`).
    """
    try:
        stream = open_url(url)
    except Exception as e:
        faults.record("unreachable", url, e)
        return "unreachable"
    fault: list = []  # the one stream-level (reason, detail) of this shard

    def member_error(exn: Exception) -> bool:
        if isinstance(exn, _TRUNCATION):  # the data ends mid-member: nothing after it is readable
            fault.append(("truncated_tar", exn))
            return False
        faults.record("corrupt_member", url, exn)
        return True

    tracked = None
    try:
        tracked = _TailTracker(_decompressed(stream), url)

        def members():  # judged at the archive's end, before the last sample is grouped
            yield from tar_members(tracked, member_error)
            if not fault and tracked.cut_short():
                fault.append(("truncated_tar", f"no end-of-archive block after {tracked.total} bytes"))

        for key, sample in group_by_key(members(), member_error):
            image, caption = _pick(sample, IMAGE_EXTS), _pick(sample, CAPTION_EXTS)
            if fault and (image is None or caption is None):
                break  # the member list was cut by the truncation: already counted as truncated_tar
            if image is None or len(image) == 0:
                faults.record("missing_image", url, key)
            elif caption is None:
                faults.record("missing_caption", url, key)
            else:
                yield RawSample(key, url, image, caption.decode("utf-8", errors="replace"))
    except (tarfile.TarError, OSError, ValueError, *_TRUNCATION) as e:
        truncated = tracked is not None and tracked.total > 0 and isinstance(e, _TRUNCATION)
        fault.append(("truncated_tar" if truncated else "unreachable", e))
    except Exception as e:  # anything else a broken stream may raise: never crash the epoch
        fault.append(("bad_sample", e))
    finally:
        try:
            stream.close()
        except Exception as e:  # a pipe: command that failed reports it at close
            fault.append(("unreachable", e))
    if fault:
        faults.record(fault[0][0], url, fault[0][1])
        return fault[0][0]
    return None


def count_samples(url: str) -> int:
    """Count usable samples by reading a shard (fallback when no stats/Parquet sidecar exists)."""
    return sum(1 for _ in iter_shard(url, FaultLog()))
