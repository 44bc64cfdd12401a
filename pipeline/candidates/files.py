"""Reading queries.parquet and writing the candidate and query-count Parquet files (deterministic)."""
from __future__ import annotations

import io
import json
import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from openwit.common import layout
from openwit.common.atomic import atomic_write_bytes, atomic_write_text, move_file, remove_tree
from openwit.common.errors import UserError
from openwit.common.parquet import table_bytes
from openwit.common.files import match_files

log = logging.getLogger(__name__)

CANDIDATE_SCHEMA = pa.schema([
    ("url", pa.string()), ("caption", pa.string()), ("query_ids", pa.list_(pa.int32())),
    ("source", pa.string()), ("page_url", pa.string()), ("uid", pa.string()),
])
QUERY_COUNTS_SCHEMA = pa.schema([
    ("query_id", pa.int32()), ("query", pa.string()), ("matched", pa.int64()), ("kept", pa.int64()),
    ("source", pa.string()),
])
LISTED_INPUTS = 100  # candidate_counts.json names at most this many input files


def load_queries(path: str) -> list[str]:
    """The `query` column of queries.parquet, in row order (query ids index into it)."""
    f = layout.queries_file(path)
    if not FileSystems.exists(f):
        raise UserError(f"{f}: no such query list file (make one with openwit-queries --out DIR, then pass "
                        f"--queries DIR)")
    try:
        with FileSystems.open(f) as fh:
            table = pq.read_table(io.BytesIO(fh.read()))
    except Exception as e:
        raise UserError(f"cannot read the query list {f}: {e} (run openwit-queries first)") from None
    if "query" not in table.column_names:
        raise UserError(f"{f} has no `query` column (columns: {table.column_names})")
    return [q if q is not None else "" for q in table.column("query").to_pylist()]


def write_candidates(path: str, rows: list[dict]) -> str:
    """Write rows sorted by uid (same input, same bytes) atomically; returns the path."""
    rows = sorted(rows, key=lambda r: r["uid"])
    table = pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)
    atomic_write_bytes(path, table_bytes(table))
    return path


def finish_candidates(out: str, written: list[str]) -> list[str]:
    """Remove candidate files of an earlier run that this run did not write; with no candidates at
    all write one empty file so readers always find the schema."""
    if not written:
        written = [write_candidates(layout.candidate_file(out, 0, 1), [])]
    keep = set(written)
    stale = [path for path in match_files(layout.candidates_glob(out)) if path not in keep]
    if stale:
        log.info("removing %d candidate files of an earlier run", len(stale))
        FileSystems.delete(stale)
    return sorted(written)


def load_query_sources(path: str) -> list[str | None]:
    """The `source` column of queries.parquet (numeral, wordnet, unigram, bigram, title), in row
    order; all None when the list has no such column."""
    with FileSystems.open(layout.queries_file(path)) as fh:
        pf = pq.ParquetFile(io.BytesIO(fh.read()))
    if "source" not in pf.schema_arrow.names:
        return [None] * pf.metadata.num_rows
    return pf.read(columns=["source"]).column("source").to_pylist()


def write_query_counts(out: str, queries_path: str, matched: dict[int, int], kept: dict[int, int]) -> str:
    """OUT/query_counts.parquet: one row per query (all of them, zeros included), with its source."""
    queries = load_queries(queries_path)
    table = pa.table({
        "query_id": pa.array(range(len(queries)), pa.int32()),
        "query": pa.array(queries, pa.string()),
        "matched": pa.array([matched.get(i, 0) for i in range(len(queries))], pa.int64()),
        "kept": pa.array([kept.get(i, 0) for i in range(len(queries))], pa.int64()),
        "source": pa.array(load_query_sources(queries_path), pa.string()),
    }, schema=QUERY_COUNTS_SCHEMA)
    path = layout.join(out, layout.QUERY_COUNTS)
    atomic_write_bytes(path, table_bytes(table))
    return path


def candidate_counts(files: list[str], tally: dict, sizes: dict, limit: int | None = None) -> dict:
    """The candidates stage's funnel as one JSON object (see layout.CANDIDATE_COUNTS).

    `tally`: ExtractFn's per-file counts summed; `sizes`: records left after de-duplication
    (`unique`), matching (`matched`), balancing (`kept`) and, with `limit` (--limit), the first
    `limit` of those (`limited`: recorded as `limit` and `over_limit`)."""
    main = {"input_files", "bad_input_file", "records_read", "extracted"}
    extracted, unique = int(tally.get("extracted", 0)), int(sizes["unique"])
    matched, kept = int(sizes["matched"]), int(sizes["kept"])
    listed = sorted(files)
    return {
        "format": "openwit candidate counts 1",
        "inputs": {"files": len(files), "bad_files": int(tally.get("bad_input_file", 0)),
                   "listed": listed[:LISTED_INPUTS]},
        "records_read": int(tally.get("records_read", 0)),
        "extracted": extracted,
        "extract_drops": {k: int(v) for k, v in sorted(tally.items()) if k not in main},
        "unique": unique, "duplicates": extracted - unique,
        "matched": matched, "no_match": unique - matched,
        "kept": kept, "balanced_out": matched - kept,
        **({"limit": int(limit), "over_limit": kept - int(sizes["limited"])} if limit else {}),
    }


def write_candidate_counts(out: str, files: list[str], tally: dict, sizes: dict, limit: int | None = None) -> str:
    """Write OUT/candidate_counts.json atomically (same inputs, same bytes); returns the path."""
    path = layout.join(out, layout.CANDIDATE_COUNTS)
    atomic_write_text(path, json.dumps(candidate_counts(files, tally, sizes, limit), indent=1, sort_keys=True) + "\n")
    return path


def write_balance_meta(out: str, meta: dict) -> str:
    """OUT/queries_meta.json: how the list was balanced (max_per_query t, mode, oversample, seed,
    queries file); the stats report marks t on its balance curve from it."""
    path = layout.join(out, layout.QUERIES_META)
    atomic_write_text(path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return path


def remove_stale_staging(out: str, keep: str) -> None:
    """Remove staging folders left by killed runs (only one run holds OUT, so any other is stale)."""
    if "://" not in out:
        stale = [os.path.join(out, n) for n in os.listdir(out) if layout.is_staging_name(n)]
    else:
        stale = sorted({p[: p.index("/", len(out.rstrip("/")) + 1)]
                        for p in match_files(layout.join(out, f"{layout.STAGING_PREFIX}-*/**"))})
    for path in stale:
        if path.rstrip("/") != keep.rstrip("/"):
            log.info("removing %s (left by a killed run)", path)
            remove_tree(path)


def commit_candidate_outputs(staging: str, out: str) -> None:
    """Move the staged candidate files and layout.STAGED_FILES into OUT (one rename each), remove the
    candidate files of an earlier run that this run did not write, then the staging folder."""
    new = match_files(layout.candidates_glob(staging))
    names = {path.rsplit("/", 1)[-1] for path in new}
    for path in new:
        move_file(path, layout.join(layout.candidates_dir(out), path.rsplit("/", 1)[-1]))
    stale = [p for p in match_files(layout.candidates_glob(out))
             if p.rsplit("/", 1)[-1] not in names]
    if stale:
        log.info("removing %d candidate files of an earlier run", len(stale))
        FileSystems.delete(stale)
    for name in layout.STAGED_FILES:
        if FileSystems.exists(layout.join(staging, name)):
            move_file(layout.join(staging, name), layout.join(out, name))
    remove_tree(staging)
