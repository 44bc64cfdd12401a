"""Per-query balance numbers: MetaCLIP Table 2 style head/tail summary, balance curves, coverage.

Inputs are `OUT/query_counts.parquet` (query_id, query, matched, kept, source: one row per metadata
entry, written by the balancing stage) and the successes per query id counted from the shards. Curves are
stored at ~400 ranks (log- and linearly spaced) so stats.json stays small and the plots are drawn
from exactly the numbers it holds.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from openwit.common import layout
from openwit.common.errors import UserError

DEFAULT_T = 20_000
TOP_N = 25


def max_per_query(out_dir: str) -> int:
    meta = layout.read_json(layout.join(out_dir, layout.QUERIES_META)) or {}
    t = meta.get("max_per_query")
    return int(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 else DEFAULT_T


def read_query_counts(out_dir: str):
    """The query_counts table (query_id, query, matched, kept) as a pyarrow Table, or None."""
    path = layout.join(out_dir, layout.QUERY_COUNTS)
    if not layout.exists(path):
        return None
    try:
        with layout.open_read(path) as f:
            pf = pq.ParquetFile(f)
            cols = [c for c in ("query_id", "query", "matched", "kept", "source") if c in pf.schema_arrow.names]
            return pf.read(columns=cols)
    except (OSError, pa.ArrowException) as e:
        raise UserError(f"{path}: cannot read it ({str(e)[:200]}) — rerun openwit-build to rewrite it, or "
                        f"delete it to report without the per-query numbers") from None


def _ranks(n: int, points: int = 200) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = np.concatenate([np.geomspace(1, n, points), np.linspace(1, n, points)])
    return np.unique(np.rint(ranks).astype(np.int64))


def _curve(values: np.ndarray, ranks: np.ndarray) -> list[int]:
    ordered = np.sort(values)[::-1]
    return [int(ordered[r - 1]) if r <= ordered.size else 0 for r in ranks]


def _table(matched: np.ndarray, kept: np.ndarray, t: int) -> dict:
    """MetaCLIP Table 2 columns for one threshold t."""
    total = int(matched.sum())
    head = matched > t
    return {
        "entries": int(matched.size),
        "entries_zero_match": int((matched == 0).sum()),
        "entries_tail": int(((matched > 0) & ~head).sum()),
        "entries_head": int(head.sum()),
        "matches": total,
        "matches_in_head": int(matched[head].sum()),
        "head_match_share": round(float(matched[head].sum()) / total, 6) if total else 0.0,
        "kept_sum": int(kept.sum()),
        "kept_in_head": int(kept[head].sum()),
        "entries_kept_above_t": int((kept > t).sum()),
    }


SOURCE_ORDER = ("numeral", "wordnet", "unigram", "bigram", "title")  # MetaCLIP Table 1's order


def query_sources(out_dir: str, table) -> tuple[list[str], np.ndarray]:
    """(source names, source code per query id; -1 = unknown) from query_counts' `source` column,
    else from the `source` column of the query list named in queries_meta.json (older builds)."""
    if table is None:
        return [], np.zeros(0, dtype=np.int64)
    n = table.num_rows
    ids = _col(table, "query_id", np.arange(n))
    sources = table.column("source") if "source" in table.column_names else pa.array(_list_sources(out_dir, n),
                                                                                         pa.string())
    encoded = pc.dictionary_encode(sources.combine_chunks() if isinstance(sources, pa.ChunkedArray) else sources)
    found = encoded.dictionary.to_pylist()
    names = sorted({s for s in found if s}, key=lambda s: (SOURCE_ORDER.index(s) if s in SOURCE_ORDER
                                                           else len(SOURCE_ORDER), s))
    remap = np.array([names.index(s) if s else -1 for s in found] + [-1], dtype=np.int64)  # last: null
    codes = remap[pc.fill_null(encoded.indices, len(found)).to_numpy(zero_copy_only=False).astype(np.int64)]
    by_id = np.full(int(ids.max()) + 1 if n else 0, -1, dtype=np.int64)
    by_id[ids[ids >= 0]] = codes[ids >= 0]
    return names, by_id


def _list_sources(out_dir: str, n: int) -> list:
    meta = layout.read_json(layout.join(out_dir, layout.QUERIES_META)) or {}
    path = meta.get("queries")
    if isinstance(path, str):
        try:
            with layout.open_read(layout.queries_file(path)) as f:
                pf = pq.ParquetFile(f)
                if "source" in pf.schema_arrow.names and pf.metadata.num_rows == n:
                    return pf.read(columns=["source"]).column("source").to_pylist()
        except (OSError, pa.ArrowException):
            pass
    return [None] * n


def _by_source(names, codes, matched, kept, success, samples, t) -> list[dict]:
    rows = []
    for i, name in enumerate(names):
        m, k, s = matched[codes == i], kept[codes == i], success[codes == i]
        head = m > t
        rows.append({
            "source": name, "entries": int(m.size),
            "entries_zero_match": int((m == 0).sum()), "entries_tail": int(((m > 0) & ~head).sum()),
            "entries_head": int(head.sum()),
            "matches": int(m.sum()), "matches_in_head": int(m[head].sum()),
            "head_match_share": round(float(m[head].sum()) / float(m.sum()), 6) if m.sum() else 0.0,
            "kept": int(k.sum()), "successes": int(s.sum()),
            "entries_matched": int((m > 0).sum()), "entries_kept": int((k > 0).sum()),
            "entries_with_success": int((s > 0).sum()),
            "coverage": round(float((s > 0).sum()) / m.size, 6) if m.size else 0.0,
            "samples": int(samples[i]) if i < len(samples) else 0,
        })
    return rows


def query_stats(out_dir: str, table, hits: np.ndarray, successes: int, with_query: int, links: int,
                sources: tuple[list[str], np.ndarray] = ([], np.zeros(0, np.int64)),
                source_samples: np.ndarray = np.zeros(0, np.int64)) -> dict:
    """Everything about queries; `table`: query_counts (or None), `hits[i]` = successful samples
    that matched query id i, `sources`: query_sources(), `source_samples[c]` = successes with at
    least one entry of source c."""
    t = max_per_query(out_dir)
    coverage = {
        "successes": successes,
        "successes_with_query": with_query,
        "successes_with_query_share": round(with_query / successes, 6) if successes else 0.0,
        "mean_queries_per_success": round(links / successes, 4) if successes else 0.0,
        "queries_with_success": int((hits > 0).sum()),
    }
    out: dict = {"t": t, "coverage": coverage, "has_query_counts": table is not None}
    if table is None:
        ranks = _ranks(int((hits > 0).sum()))
        out["curves"] = {"rank": ranks.tolist(), "successes": _curve(hits, ranks)}
        return out
    n = table.num_rows
    ids = _col(table, "query_id", np.arange(n))
    matched, kept = _col(table, "matched", np.zeros(n)), _col(table, "kept", np.zeros(n))
    success = np.zeros(n, dtype=np.int64)
    inside = (ids >= 0) & (ids < hits.size)
    success[inside] = hits[ids[inside]]
    out["balance"] = _table(matched, kept, t)
    coverage["entries"] = n
    coverage["entries_with_success"] = int((success > 0).sum())
    coverage["entries_with_success_share"] = round(float((success > 0).sum()) / n, 6) if n else 0.0
    coverage["kept_entries_with_success_share"] = (
        round(float(((success > 0) & (kept > 0)).sum()) / float((kept > 0).sum()), 6) if (kept > 0).any() else 0.0
    )
    names, by_id = sources
    codes = np.full(n, -1, dtype=np.int64)
    known = (ids >= 0) & (ids < by_id.size)
    codes[known] = by_id[ids[known]]
    out["by_source"] = _by_source(names, codes, matched, kept, success, source_samples, t)
    ranks = _ranks(int(max((matched > 0).sum(), (kept > 0).sum(), 1)))
    out["curves"] = {"rank": ranks.tolist(), "matched": _curve(matched, ranks),
                     "kept": _curve(kept, ranks), "successes": _curve(success, ranks)}
    order = np.lexsort((ids, -kept, -matched))[:TOP_N]
    top = table.take(pa.array(order)) if n else table
    queries = top.column("query").to_pylist() if "query" in table.column_names else [None] * len(order)
    out["top"] = [
        {"query_id": int(ids[i]), "query": queries[j], "source": names[codes[i]] if codes[i] >= 0 else None,
         "matched": int(matched[i]), "kept": int(kept[i]), "successes": int(success[i]),
         "kept_over_t": bool(kept[i] > t)}
        for j, i in enumerate(order)
    ]
    return out


def _col(table, name: str, default: np.ndarray) -> np.ndarray:
    if name not in table.column_names:
        return default.astype(np.int64)
    return table.column(name).fill_null(0).to_numpy().astype(np.int64)
