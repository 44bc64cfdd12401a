"""MetaCLIP balancing decisions for one candidate (pure; the Beam shell supplies the per-query counts).

metaclip mode: keep with probability 1 − Π_q (1 − min(1, t / count_q)) over the matched queries q.
Each query gets its own keyed draw u_q = uniform(uid, q; key=seed) and the candidate is kept when
any u_q < t / count_q: that event has exactly MetaCLIP's probability, and because the draws are a
hash of (seed, uid, query) a retry or rerun decides the same way.

exact mode: at most t kept per query. A query with count_q > t accepts the t candidates with the
smallest keyed hash (bottom-k); a candidate is kept only if every over-cap query it matches
accepts it, so no query can end up with more than t. (Candidates matching several over-cap queries
are rejected more often than in metaclip mode; a query may then keep fewer than t.)
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

from openwit.common.hashing import blake_u64, uniform


def effective_cap(max_per_query: int, oversample: float) -> float:
    """t·F: balancing at a higher cap leaves room for fetch failures (often 30–50% of URLs)."""
    return max_per_query * oversample


def keep_probability(counts: Iterable[int], cap: float) -> float:
    """MetaCLIP's 1 − Π(1 − min(1, t/count)) over the matched queries' counts."""
    miss = 1.0
    for c in counts:
        miss *= 1.0 - min(1.0, cap / c)
    return 1.0 - miss


def draw(seed: int | str, uid: str, query_id: int) -> float:
    """The candidate's draw in [0, 1) for one query (keyed hash: same inputs, same draw)."""
    return uniform(uid, query_id, key=seed)


def rank_key(seed: int | str, uid: str, query_id: int) -> tuple[int, str]:
    """Bottom-k order for exact mode: keyed 64-bit hash, ties broken by uid (total order)."""
    return blake_u64(uid, query_id, key=seed), uid


def keep_metaclip(uid: str, query_ids: Iterable[int], over_cap: Mapping[int, int], cap: float,
                  seed: int | str) -> bool:
    """Keep unless every matched query is over the cap and each draw misses. `over_cap` holds only
    queries with count > cap (the others keep all their candidates)."""
    for q in query_ids:
        count = over_cap.get(q)
        if count is None or draw(seed, uid, q) < cap / count:
            return True
    return False


def keep_exact(uid: str, query_ids: Iterable[int], thresholds: Mapping[int, tuple[int, str]],
               seed: int | str) -> bool:
    """Keep when, for every matched over-cap query, this candidate is within its bottom-k
    (`thresholds[q]` is the k-th smallest rank_key among the query's candidates)."""
    for q in query_ids:
        limit = thresholds.get(q)
        if limit is not None and rank_key(seed, uid, q) > limit:
            return False
    return True


def exact_cap(max_per_query: int, oversample: float) -> int:
    """Exact mode's integer cap: floor(t·F), at least 1."""
    return max(1, math.floor(effective_cap(max_per_query, oversample)))
