"""Per-domain counts: samples, successes, failures and opt-outs by the URL's host (Arrow, no Python per row).

The domain is the URL's host, lowercased, without a leading `www.`; URLs without one count as
"(no host)". Each batch is grouped in Arrow and the small per-batch tables are re-grouped when they
pile up, so memory follows the number of distinct hosts, not rows.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NO_HOST = "(no host)"
ROBOTS = ("robots_txt",)  # robots.txt disallowed
X_ROBOTS_PREFIX = "opt_out_"  # X-Robots-Tag noai, noimageai, noindex, ... (fetch.rules.OPT_OUT_DIRECTIVES)
TOP = 20
MIN_ATTEMPTS = 20  # a domain's failure rate is listed once it has this many attempts
_SUMS = ("attempted", "successes", "robots_txt", "x_robots_tag")


def hosts(url: pa.Array) -> pa.Array:
    """Each URL's host, lowercased, `www.` dropped; "(no host)" where there is none.

    `scheme://authority/…` split at "/" (cheap), then the user and port cut from the authority."""
    padded = pc.binary_join_element_wise(pc.fill_null(url, ""), "///", "")  # ≥ 4 parts, always
    parts = pc.split_pattern(padded, "/", max_splits=3)
    has_authority = pc.and_(pc.ends_with(pc.list_element(parts, 0), ":"),
                            pc.equal(pc.list_element(parts, 1), ""))
    authority = pc.list_element(parts, 2)
    host = pc.replace_substring_regex(authority, r"[?#].*$|^[^@]*@|:\d*$", "")
    host = pc.replace_substring_regex(pc.utf8_lower(host), r"^www\d*\.", "")
    host = pc.if_else(pc.and_(pc.fill_null(has_authority, False), pc.not_equal(pc.fill_null(host, ""), "")),
                      host, NO_HOST)
    return pc.fill_null(host, NO_HOST)


class DomainTally:
    """attempted / successes / robots.txt and X-Robots-Tag opt-outs per domain."""

    def __init__(self, max_rows: int = 1_000_000):
        self.parts: list[pa.Table] = []
        self.rows, self.max_rows = 0, max_rows

    def add(self, url: pa.Array, ok: pa.Array, reason: pa.Array) -> None:
        """`ok`: boolean per row (success); `reason`: failure reason per row (null for successes)."""
        reason = pc.fill_null(reason, "")
        table = pa.table({
            "domain": hosts(url),
            "attempted": pa.array(np.ones(len(url), np.int64)),
            "successes": pc.cast(pc.fill_null(ok, False), pa.int64()),
            "robots_txt": pc.cast(pc.is_in(reason, pa.array(ROBOTS)), pa.int64()),
            "x_robots_tag": pc.cast(pc.starts_with(reason, X_ROBOTS_PREFIX), pa.int64()),
        })
        self._append(self._group(table))

    @staticmethod
    def _group(table: pa.Table) -> pa.Table:
        out = table.group_by("domain").aggregate([(c, "sum") for c in _SUMS])
        return out.rename_columns([c.removesuffix("_sum") for c in out.column_names])

    def _append(self, part: pa.Table) -> None:
        self.parts.append(part)
        self.rows += part.num_rows
        if self.rows > self.max_rows and len(self.parts) > 1:
            self.parts = [self._group(pa.concat_tables(self.parts))]
            self.rows = self.parts[0].num_rows

    def table(self) -> pa.Table:
        if not self.parts:
            return pa.table({"domain": pa.array([], pa.string()), **{c: pa.array([], pa.int64()) for c in _SUMS}})
        return self._group(pa.concat_tables(self.parts))

    def to_dict(self) -> dict:
        table = self.table()
        attempted, successes = table.column("attempted"), table.column("successes")
        failures = pc.subtract(attempted, successes)
        table = table.append_column("failures", failures).append_column(
            "failure_rate", pc.divide(pc.cast(failures, pa.float64()), pc.cast(attempted, pa.float64()))).append_column(
            "opt_outs", pc.add(table.column("robots_txt"), table.column("x_robots_tag")))
        total_ok = pc.sum(successes).as_py() or 0

        def top(t: pa.Table, keys) -> list[dict]:
            rows = t.sort_by(keys).slice(0, TOP).to_pylist()
            for r in rows:
                r["failure_rate"] = round(r["failure_rate"], 6)
            return rows

        by_samples = top(table, [("successes", "descending"), ("attempted", "descending"), ("domain", "ascending")])
        most = pc.max(attempted).as_py() or 0
        min_attempts = MIN_ATTEMPTS if most >= MIN_ATTEMPTS else 1
        rated = table.filter(pc.and_(pc.greater_equal(attempted, min_attempts), pc.greater(failures, 0)))
        by_failure = top(rated, [("failure_rate", "descending"), ("attempted", "descending"), ("domain", "ascending")])
        opted = table.filter(pc.greater(table.column("opt_outs"), 0))
        opt_outs = top(opted, [("opt_outs", "descending"), ("domain", "ascending")])
        top10 = sum(r["successes"] for r in by_samples[:10])
        return {
            "distinct": table.num_rows,
            "with_success": int(pc.sum(pc.greater(successes, 0)).as_py() or 0),
            "top10_success_share": round(top10 / total_ok, 6) if total_ok else 0.0,
            "opt_outs": {"robots_txt": int(pc.sum(table.column("robots_txt")).as_py() or 0),
                         "x_robots_tag": int(pc.sum(table.column("x_robots_tag")).as_py() or 0),
                         "domains": opted.num_rows},
            "min_attempts_for_rate": min_attempts,
            "top_by_samples": by_samples, "top_by_failure_rate": by_failure, "top_opt_outs": opt_outs,
        }
