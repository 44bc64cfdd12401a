"""Shard URLs: expansion (braces, `::` joins, globs, folders), opening (local, pipe:, http(s), gs, s3)
and sidecar files.

webdataset's `gopen` handles local paths and `pipe:` commands; everything with a scheme goes
through fsspec (webdataset 1.0 has no s3 opener and shells out to curl/gsutil for http/gs).
"""
from __future__ import annotations

import glob
import logging
import os
import re
from typing import IO, Iterable

import fsspec
import pyarrow.parquet as pq

from openwit.common import layout
from openwit.common.errors import UserError

log = logging.getLogger(__name__)
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_GLOB = re.compile(r"[*?[]")


def expand_urls(urls: str | Iterable[str]) -> list[str]:
    """`a/{00000..00009}.tar::b/x.tar` or a list of such strings → a flat list of shard URLs. A local
    or gs://, s3://… path with `*`, `?` or `[…]` becomes the files it matches, sorted (quoted, so that
    the shell leaves it alone); a local folder becomes its `*.tar`. http(s) and pipe: URLs are kept
    as written (`?` starts a query there)."""
    from webdataset.shardlists import expand_urls as expand  # webdataset imports torch: only when reading shards

    if isinstance(urls, str):
        urls = [urls]
    out: list[str] = []
    for item in urls:
        for url in expand(str(item)):
            if url:
                out.extend(_matching(url))
    if not out:
        raise UserError("no shard URLs given")
    return out


def _matching(url: str) -> list[str]:
    """The shards a glob pattern or a local folder stands for; any other URL as it is."""
    if url.startswith(("pipe:", "http://", "https://")):
        return [url]
    if not _SCHEME.match(url) or url.startswith("file://"):
        path = url.removeprefix("file://")
        pattern = os.path.join(path, "*.tar") if os.path.isdir(path) else path
        if not _GLOB.search(pattern) or os.path.isfile(path):  # a file named "x[1].tar" is itself
            return [url]
        found = sorted(glob.glob(pattern))
    else:
        if not _GLOB.search(url):
            return [url]
        try:
            fs, _, _ = fsspec.get_fs_token_paths(url)
            found = sorted(fs.unstrip_protocol(p) for p in fs.glob(url))
        except (ImportError, ValueError) as e:
            raise UserError(f"cannot list {url}: {e}") from e
    if not found:
        raise UserError(f"no shards match {pattern if not _SCHEME.match(url) else url}: check the path")
    return found


def check_openers(urls: Iterable[str]) -> None:
    """Fail early, with the package to install, when a URL scheme has no fsspec implementation here."""
    for scheme in sorted({m.group(1) for u in urls if not u.startswith("pipe:") and (m := _SCHEME.match(u))}):
        if scheme == "file":
            continue
        try:
            fsspec.get_filesystem_class(scheme)
        except (ImportError, ValueError) as e:
            raise UserError(f"cannot read {scheme}:// URLs: {e}") from e


def open_url(url: str) -> IO[bytes]:
    """A readable binary stream for a shard URL (raises OSError-like errors when unreachable)."""
    if url.startswith("pipe:") or not _SCHEME.match(url) or url.startswith("file://"):
        from webdataset.gopen import gopen

        return gopen(url, "rb")
    if url.startswith(("http://", "https://")):  # stream: no range requests, no size needed
        return fsspec.open(url, "rb", block_size=0).open()
    return fsspec.open(url, "rb").open()


def shard_name(url: str) -> str:
    """A short name for logs: the last path component (or the pipe command)."""
    return url if url.startswith("pipe:") else url.rstrip("/").rsplit("/", 1)[-1]


def sidecar(url: str, suffix: str) -> str | None:
    """`…/00007.tar` → `…/00007{suffix}` (None for pipe: commands or non-.tar names)."""
    if url.startswith("pipe:") or not url.endswith(layout.TAR):
        return None
    return url[: -len(layout.TAR)] + suffix


class BadSidecar(ValueError):
    """A sidecar that exists but cannot be trusted (a negative or non-integer count)."""


def _read_stats_count(url: str) -> int | None:
    with open_url(url) as f:
        stats = layout.parse_marker(f.read(), url)
    for field in ("successes", "count_success", "success"):
        value = stats.get(field)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadSidecar(f"{field} = {value!r} is not a count")
        return value
    return None


def _read_parquet_count(url: str) -> int | None:
    with open_url(url) as f:
        table = pq.read_table(f, columns=["status"])
    return sum(1 for s in table.column("status").to_pylist() if s == "success")


def known_sample_count(url: str) -> int | None:
    """Samples in a shard from its `_stats.json` (`successes`) or `.parquet` (`status == success`).

    A sidecar that is absent or unreadable is passed over; one with a negative or non-integer count
    is passed over with a warning (the next source is tried, then counting by reading).
    """
    for suffix, reader in ((layout.MARKER, _read_stats_count), (layout.PARQUET, _read_parquet_count)):
        side = sidecar(url, suffix)
        if side is None:
            return None
        try:
            n = reader(side)
        except BadSidecar as e:
            log.warning("ignoring %s: %s", shard_name(side), e)
            continue
        except Exception:  # absent or unreadable sidecar: try the next source
            continue
        if n is not None:
            return n
    return None
