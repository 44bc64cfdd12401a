"""Before an epoch is planned: which shards are missing, and how many samples each one holds.

- Missing shards: local paths are stat'ed; fsspec URLs (gs://, s3://, …) are looked up in one
  listing per folder (falling back to one `info` per shard); http(s) gets one HEAD per shard;
  `pipe:` commands cannot be checked (one that fails is counted `unreachable` when read). A shard
  that cannot be checked (network error) is kept. `missing_shards="error"` (default) refuses
  missing shards, `"skip"` reads the others with a warning.
- Counts come from the sidecars (`_stats.json` `successes`, else the Parquet's success rows; a
  negative or non-integer count is ignored), else from reading the shard. A sidecar count the tar
  cannot hold by its size (a sample takes at least 3 tar blocks: header + data of the image, header
  of the caption) is not trusted either: that shard is counted by reading. Subtler disagreements are
  found while an epoch reads the shard and corrected from the next epoch on (see WdsLoader).
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import fsspec

from openwit.common.errors import UserError
from openwit.loader.samples import count_samples
from openwit.loader.urls import _SCHEME, known_sample_count, shard_name

log = logging.getLogger(__name__)

MIN_SAMPLE_BYTES = 3 * 512
MISSING_POLICIES = ("error", "skip")


def _local_path(url: str) -> str | None:
    if url.startswith("file://"):
        return url[len("file://"):]
    return None if url.startswith("pipe:") or _SCHEME.match(url) else url


def _remote_size(url: str) -> tuple[int | None, bool]:
    """(size or None, missing?) of one fsspec URL."""
    fs, path = fsspec.core.url_to_fs(url)
    try:
        return fs.info(path).get("size"), False
    except FileNotFoundError as e:  # fsspec's http raises it for any failure: only 404/410 is "missing"
        http = url.startswith(("http://", "https://"))
        return None, not http or getattr(e.__cause__, "status", None) in (404, 410)
    except Exception:  # cannot tell (network, permissions): keep it, reading will count it
        return None, False


def _folder_sizes(folder_url: str) -> dict[str, int | None] | None:
    """{file name: size} of one fsspec folder in one listing; None when it cannot be listed."""
    try:
        fs, path = fsspec.core.url_to_fs(folder_url)
        return {e["name"].rstrip("/").rsplit("/", 1)[-1]: e.get("size") for e in fs.ls(path, detail=True)}
    except Exception:
        return None


def probe_shards(urls: Sequence[str], threads: int = 16) -> tuple[dict[str, int | None], list[str]]:
    """Byte sizes of the shards (None where unknown) and the shards that do not exist."""
    sizes: dict[str, int | None] = {}
    missing: list[str] = []
    per_file, folders = [], {}
    for url in urls:
        local = _local_path(url)
        if url.startswith("pipe:"):
            sizes[url] = None
        elif local is not None:
            try:
                sizes[url] = os.stat(local).st_size
            except FileNotFoundError:
                missing.append(url)
            except OSError:
                sizes[url] = None
        elif url.startswith(("http://", "https://")):
            per_file.append(url)
        else:
            folders.setdefault(url.rsplit("/", 1)[0], []).append(url)
    with ThreadPoolExecutor(threads) as pool:
        listings = dict(zip(folders, pool.map(_folder_sizes, folders)))
        for folder, listing in listings.items():
            if listing is None:
                per_file += folders[folder]
                continue
            for url in folders[folder]:
                name = url.rsplit("/", 1)[1]
                if name in listing:
                    sizes[url] = listing[name]
                else:
                    missing.append(url)
        for url, (size, gone) in zip(per_file, pool.map(_remote_size, per_file)):
            if gone:
                missing.append(url)
            else:
                sizes[url] = size
    order = {u: i for i, u in enumerate(urls)}
    return sizes, sorted(missing, key=order.__getitem__)


def drop_missing(urls: list[str], missing: list[str], policy: str) -> list[str]:
    """The shards to read: all of them, or (policy "skip") the present ones; else a UserError."""
    if policy not in MISSING_POLICIES:
        raise UserError(f"missing_shards must be one of {MISSING_POLICIES}, got {policy!r}")
    if not missing:
        return urls
    first = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
    if len(missing) == len(urls):
        raise UserError(f"all {len(urls)} shard(s) are missing (first: {first}); check the path or URL pattern")
    if policy == "error":
        raise UserError(f"{len(missing)} of {len(urls)} shards are missing: {first}; check the URL pattern, "
                        f"or pass missing_shards='skip' (openwit-loader inspect --missing-shards skip) "
                        f"to read the other {len(urls) - len(missing)}")
    log.warning("skipping %d missing shard(s) of %d: %s", len(missing), len(urls), first)
    gone = set(missing)
    return [u for u in urls if u not in gone]


def shard_counts(urls: list[str], threads: int = 16, sizes: dict[str, int | None] | None = None) -> dict[str, int]:
    """Samples per shard from the `_stats.json` / `.parquet` sidecars; shards without a usable one are read."""
    with ThreadPoolExecutor(min(threads, len(urls))) as pool:
        counts = dict(zip(urls, pool.map(known_sample_count, urls)))
    for url, n in counts.items():
        size = (sizes or {}).get(url)
        if n is not None and size is not None and n > size // MIN_SAMPLE_BYTES:
            log.warning("shard %s: its sidecar says %d samples but %d bytes hold at most %d; counting by reading",
                        shard_name(url), n, size, size // MIN_SAMPLE_BYTES)
            counts[url] = None
    unknown = [u for u, n in counts.items() if n is None]
    if unknown:
        log.warning("%d shard(s) have no usable stats/Parquet sidecar; counting them by reading", len(unknown))
        with ThreadPoolExecutor(min(threads, len(unknown))) as pool:
            counts.update(zip(unknown, pool.map(count_samples, unknown)))
    return counts
