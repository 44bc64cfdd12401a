"""Raw samples out of shards, fault tolerant: every problem is skipped, counted by reason, logged once.

A raw sample is `(key, url, image_bytes, caption)`; decoding happens later, after shuffling, so
that skipping ahead (resume) costs only reading. Reasons counted here: `unreachable`,
`truncated_tar`, `corrupt_member`, `missing_image`, `missing_caption`, `bad_sample`.
"""
from __future__ import annotations

import logging
import tarfile
from collections import Counter
from typing import Iterator, NamedTuple

import webdataset as wds

from openwit.loader.urls import open_url, shard_name

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "webp", "png")
CAPTION_EXTS = ("txt",)


class RawSample(NamedTuple):
    key: str
    url: str
    image: bytes
    caption: str


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

    def __init__(self, stream) -> None:
        self.stream, self.total, self.tail = stream, 0, b""

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.total += len(data)
        self.tail = (self.tail + data)[-512:]
        return data

    def cut_short(self) -> bool:
        return self.total > 0 and (len(self.tail) < 512 or any(self.tail))


def _pick(sample: dict, exts: tuple[str, ...]) -> bytes | None:
    return next((sample[e] for e in exts if e in sample), None)


def iter_shard(url: str, faults: FaultLog) -> Iterator[RawSample]:
    """Samples of one shard in stored order; stops quietly (counted) at the first unreadable part."""
    try:
        stream = open_url(url)
    except Exception as e:
        faults.record("unreachable", url, e)
        return

    def member_error(exn: Exception) -> bool:
        faults.record("corrupt_member", url, exn)
        return True

    tracked, failed = _TailTracker(stream), True
    try:
        members = wds.tariterators.tar_file_iterator(tracked, handler=member_error)
        members = ({**m, "__url__": url} for m in members)
        for sample in wds.tariterators.group_by_keys(members, handler=member_error):
            image, caption = _pick(sample, IMAGE_EXTS), _pick(sample, CAPTION_EXTS)
            if image is None or len(image) == 0:
                faults.record("missing_image", url, sample["__key__"])
            elif caption is None:
                faults.record("missing_caption", url, sample["__key__"])
            else:
                yield RawSample(sample["__key__"], url, image, caption.decode("utf-8", errors="replace"))
        if tracked.cut_short():
            faults.record("truncated_tar", url, f"no end-of-archive block after {tracked.total} bytes")
        else:
            failed = False
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        truncated = tracked.total > 0 and isinstance(e, (tarfile.ReadError, EOFError))
        faults.record("truncated_tar" if truncated else "unreachable", url, e)
    except Exception as e:  # anything else a broken stream may raise: never crash the epoch
        faults.record("bad_sample", url, e)
    finally:
        try:
            stream.close()
        except Exception as e:  # a pipe: command that failed reports it at close (count it once)
            if not failed:
                faults.record("unreachable", url, e)


def count_samples(url: str) -> int:
    """Count usable samples by reading a shard (fallback when no stats/Parquet sidecar exists)."""
    return sum(1 for _ in iter_shard(url, FaultLog()))
