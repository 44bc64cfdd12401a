"""Every name under an openwit-build output folder OUT/ — the one place the folder contract lives.

```
OUT/00000.tar  00000.parquet  00000_stats.json   a shard; `_stats.json` is written last: its commit marker
OUT/timing/00000.json                            when the shard was fetched (kept apart: reruns stay identical)
OUT/.00000.tar.tmp-XXXX                          a temporary file of a shard being written (atomic writes)
OUT/candidates/candidates-00000-of-00004.parquet the balanced candidates
OUT/query_counts.parquet  OUT/queries_meta.json  matches/kept per query; how the list was balanced
OUT/candidate_counts.json                        the candidates stage's funnel: records read → extracted
                                                 (drops by reason) → unique → matched → kept
OUT/tokenizer.json                               byte-level BPE trained on the captions (the loader's default)
OUT/report/                                      stats.json, report.html, *.png (openwit-stats)
OUT/.openwit.lock                                held by the one run writing OUT
OUT/.openwit-staging-RUN/                        one run's candidate outputs until they are committed
```
and the query list's folder (`openwit-queries --out`): queries.parquet, queries.txt, summary.json.

Paths may be local, gs:// or s3://; names are joined with "/". Only the listing and reading helpers
touch storage (through Beam FileSystems, imported when first used), so the names and the marker
parser can be imported without Beam (the loader reads markers over http too).
"""
from __future__ import annotations

import json
import re
from typing import IO, NamedTuple

from openwit.common.errors import UserError

# --- shards -----------------------------------------------------------------------------------
TAR, PARQUET, MARKER = ".tar", ".parquet", "_stats.json"
SHARD_SUFFIXES = (TAR, PARQUET, MARKER)
SHARD_DIGITS = 5
SHARD_FILE = re.compile(r"^(\d{5,})(\.tar|\.parquet|_stats\.json)$")
TIMING_DIR = "timing"
# --- the build's other outputs ------------------------------------------------------------------
CANDIDATES_DIR = "candidates"
QUERY_COUNTS = "query_counts.parquet"
QUERIES_META = "queries_meta.json"
CANDIDATE_COUNTS = "candidate_counts.json"
TOKENIZER = "tokenizer.json"
REPORT_DIR = "report"
LOCK = ".openwit.lock"
STAGING_PREFIX = ".openwit-staging"
STAGED_FILES = (QUERY_COUNTS, QUERIES_META, CANDIDATE_COUNTS)  # staged beside candidates/, committed after the run
BUILD_FILES = (*STAGED_FILES, TOKENIZER)  # OUT's single files besides the shards
REPORT_FILES = ("stats.json", "report.html")
REPORT_PLOTS = ("aspect.png", "balance.png", "captions.png", "domains.png", "funnel.png", "sizes.png",
                "sources.png", "status.png", "throughput.png")  # what openwit-stats draws into report/
CANDIDATE_FILE = re.compile(r"^candidates-\d{5}-of-\d{5}\.parquet$")
TEMP_SUFFIX = re.compile(r"^\.(.+)\.tmp-[0-9a-f]{12}$")  # common.atomic's `.NAME.tmp-XXXXXXXXXXXX`
# --- the query list's folder (openwit-queries --out) --------------------------------------------
QUERIES_PARQUET = "queries.parquet"
QUERIES_TXT = "queries.txt"
QUERIES_SUMMARY = "summary.json"


def join(out: str, *names: str) -> str:
    """`OUT/name/...` for local and remote folders alike."""
    return "/".join([out.rstrip("/"), *names])


def shard_name(shard: int, suffix: str) -> str:
    """`00012.tar`, `00012.parquet`, `00012_stats.json`."""
    return f"{shard:0{SHARD_DIGITS}d}{suffix}"


def shard_path(out: str, shard: int, suffix: str) -> str:
    """`OUT/00012.tar`, `OUT/00012.parquet`, `OUT/00012_stats.json`."""
    return join(out, shard_name(shard, suffix))


def shard_number(path: str) -> int | None:
    """12 for `…/00012.tar`, `…/00012.parquet` or `…/00012_stats.json`; None for any other name."""
    m = SHARD_FILE.match(path.rstrip("/").rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def shard_glob(out: str, suffix: str) -> str:
    """A glob of OUT's shard files with `suffix` (filter with `shard_number`: the glob is wider)."""
    return join(out, f"*{suffix}")


def shard_temp_glob(out: str, shard: int) -> str:
    """Temporary files a killed run may have left for this shard (common.atomic's `.NAME.tmp-*`)."""
    return join(out, f".{shard:0{SHARD_DIGITS}d}*.tmp-*")


def timing_path(out: str, shard: int) -> str:
    """`OUT/timing/00012.json`: wall-clock times live outside the shard files."""
    return join(out, TIMING_DIR, shard_name(shard, ".json"))


def candidates_dir(out: str) -> str:
    return join(out, CANDIDATES_DIR)


def candidate_file(out: str, index: int, n_files: int) -> str:
    """`OUT/candidates/candidates-00003-of-00010.parquet`."""
    return join(candidates_dir(out), f"candidates-{index:05d}-of-{n_files:05d}.parquet")


def candidates_glob(out: str) -> str:
    return join(candidates_dir(out), "*.parquet")


def report_dir(out: str) -> str:
    return join(out, REPORT_DIR)


def tokenizer_path(out: str) -> str:
    return join(out, TOKENIZER)


def lock_path(out: str) -> str:
    return join(out, LOCK)


def staging_dir(out: str, run_id: str) -> str:
    """`OUT/.openwit-staging-RUN`: where one openwit-build run writes candidates/ and
    STAGED_FILES (query_counts.parquet, queries_meta.json, candidate_counts.json) until it has
    passed every check (its own name, so
    a failed run removes only what it wrote)."""
    return join(out, f"{STAGING_PREFIX}-{run_id}")


def is_staging_name(name: str) -> bool:
    return name.startswith(f"{STAGING_PREFIX}-")


def queries_file(path: str) -> str:
    """`DIR/queries.parquet` for a query-list folder, the path itself for a .parquet file."""
    return path if path.endswith(".parquet") else join(path, QUERIES_PARQUET)


# --- reading what a build left ----------------------------------------------------------------
class Shard(NamedTuple):
    shard: int
    parquet: str
    stats: str


def list_shards(out: str) -> tuple[list[Shard], list[int]]:
    """(committed shards sorted by number, numbers of Parquet shards without a commit marker).
    A shard counts only when its `_stats.json` marker and its `.parquet` both exist."""
    from openwit.common.files import match_files

    found: dict[int, dict[str, str]] = {}
    for suffix in (MARKER, PARQUET):
        for path in match_files(shard_glob(out, suffix)):
            n = shard_number(path)
            if n is not None and path.endswith(suffix):
                found.setdefault(n, {})[suffix] = path
    committed = [Shard(n, files[PARQUET], files[MARKER]) for n, files in sorted(found.items())
                 if PARQUET in files and MARKER in files]
    uncommitted = sorted(n for n, files in found.items() if MARKER not in files)
    return committed, uncommitted


def marker_paths(out: str) -> list[str]:
    """OUT's shard markers (`*_stats.json` with a shard number), sorted by name."""
    from openwit.common.files import match_files

    return [p for p in match_files(shard_glob(out, MARKER)) if shard_number(p) is not None]


def exists(path: str) -> bool:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(path)


def open_read(path: str) -> IO[bytes]:
    """A seekable binary reader (pyarrow reads Parquet footers first); local, gs://, s3://."""
    if "://" not in path:
        return open(path, "rb")
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

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


def parse_marker(data: bytes, path: str) -> dict:
    """A `_stats.json` marker's bytes → its object; BadShardFile when it is not a JSON object."""
    try:
        value = json.loads(data.decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadShardFile(path, f"corrupt shard marker ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(value, dict):
        raise BadShardFile(path, f"corrupt shard marker (a JSON {type(value).__name__}, not an object)")
    return value


def read_marker(path: str) -> dict:
    """A shard's `_stats.json` commit marker; BadShardFile when it cannot be read or parsed."""
    try:
        with open_read(path) as f:
            data = f.read()
    except OSError as e:
        raise BadShardFile(path, f"corrupt shard marker ({type(e).__name__}: {str(e)[:200]})") from None
    return parse_marker(data, path)
