"""The stage's three output files, rendered to bytes deterministically (same list → same bytes)."""
from __future__ import annotations

import json

import pyarrow as pa

from openwit.common import layout
from openwit.common.atomic import atomic_write_bytes
from openwit.common.parquet import table_bytes
from openwit.queries.union import QueryList

SCHEMA = pa.schema([("query", pa.string()), ("source", pa.string()), ("score", pa.float64())])
FILES = (layout.QUERIES_PARQUET, layout.QUERIES_TXT, layout.QUERIES_SUMMARY)


def render(ql: QueryList, summary: dict) -> dict[str, bytes]:
    """`queries.parquet` (query, source, score), `queries.txt` (one a line), `summary.json`."""
    table = pa.table({"query": [e.query for e in ql.entries],
                      "source": [e.source for e in ql.entries],
                      "score": [None if e.score is None else float(e.score) for e in ql.entries]},
                     schema=SCHEMA)
    text = "".join(f"{e.query}\n" for e in ql.entries)
    return {layout.QUERIES_PARQUET: table_bytes(table), layout.QUERIES_TXT: text.encode("utf-8"),
            layout.QUERIES_SUMMARY: (json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")}


def write(out_dir: str, files: dict[str, bytes]) -> None:
    """Write each file atomically; summary.json last, so its presence means the list is complete."""
    for name in sorted(files, key=lambda n: n == layout.QUERIES_SUMMARY):
        atomic_write_bytes(layout.join(out_dir, name), files[name])
