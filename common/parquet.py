"""Parquet bytes written one way everywhere (zstd, no timestamps): the same table gives the same bytes."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq


def table_bytes(table: pa.Table) -> bytes:
    """The table as a zstd-compressed Parquet file, in memory (write it with common.atomic)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()
