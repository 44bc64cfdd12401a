"""File access for the stats report: find committed shards and read their files (local, gs://, s3://).

Everything goes through Beam FileSystems (the same layer the shard writer uses), so a report can be
built straight from a bucket. A shard counts only when its `{n:05d}_stats.json` commit marker and
its `{n:05d}.parquet` both exist; a Parquet file without a marker is an unfinished shard.
"""
from __future__ import annotations

import json
import re
from typing import IO, NamedTuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from openwit.common.errors import UserError
from openwit.common.files import match_files

_SHARD_FILE = re.compile(r"^(\d{5,})(_stats\.json|\.parquet)$")


class Shard(NamedTuple):
    shard: int
    parquet: str
    stats: str


def join(out_dir: str, name: str) -> str:
    return f"{out_dir.rstrip('/')}/{name}"


def _names(out_dir: str, pattern: str) -> dict[str, str]:
    """{file name: full path} for files directly in out_dir matching the glob pattern."""
    return {path.rstrip("/").rsplit("/", 1)[-1]: path for path in match_files(join(out_dir, pattern))}


def list_shards(out_dir: str) -> tuple[list[Shard], list[int]]:
    """(committed shards sorted by number, numbers of Parquet shards without a commit marker)."""
    found: dict[int, dict[str, str]] = {}
    for pattern in ("*_stats.json", "*.parquet"):
        for name, path in _names(out_dir, pattern).items():
            m = _SHARD_FILE.match(name)
            if m:
                found.setdefault(int(m.group(1)), {})[m.group(2)] = path
    committed = [
        Shard(n, files[".parquet"], files["_stats.json"])
        for n, files in sorted(found.items())
        if ".parquet" in files and "_stats.json" in files
    ]
    uncommitted = sorted(n for n, files in found.items() if "_stats.json" not in files)
    return committed, uncommitted


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def open_read(path: str) -> IO[bytes]:
    """A seekable binary reader (pyarrow reads Parquet footers first)."""
    if "://" not in path:
        return open(path, "rb")
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_json(path: str) -> dict | None:
    """The JSON object at path, or None when it is missing or not a JSON object."""
    try:
        with open_read(path) as f:
            value = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class BadShardFile(UserError):
    """A committed shard's file that cannot be read (`path`: which one, `detail`: why)."""

    def __init__(self, path: str, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path, self.detail = path, detail


def read_marker(path: str) -> dict:
    """A shard's `_stats.json` commit marker; BadShardFile when it is not a JSON object."""
    try:
        with open_read(path) as f:
            value = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadShardFile(path, f"corrupt shard marker ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(value, dict):
        raise BadShardFile(path, f"corrupt shard marker (a JSON {type(value).__name__}, not an object)")
    return value
