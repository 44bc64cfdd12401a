"""The union of sources in MetaCLIP's order, with budget-chosen thresholds (pure).

Order: numerals "0"…"99", WordNet, unigrams, bigrams, titles. Each entry belongs to the first
source that added it; later duplicates are skipped and do not use budget. With `size` S and no
explicit thresholds, as MetaCLIP did: bigrams take ≈ 20% of S by descending PMI (the threshold
is the PMI of the last one kept), titles fill the rest by descending views (threshold = views of
the last one kept). Within a source the order is score descending, then the string.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

SOURCES = ("numeral", "wordnet", "unigram", "bigram", "title")
NUMERALS = tuple(str(i) for i in range(100))
BIGRAM_SHARE = 0.2


@dataclass(frozen=True)
class Entry:
    query: str
    source: str
    score: float | None


@dataclass
class QueryList:
    entries: list[Entry] = field(default_factory=list)
    thresholds: dict = field(default_factory=dict)
    seen: set = field(default_factory=set)

    def add(self, query: str, source: str, score: float | None) -> bool:
        """Append unless dropped or already present; True when added."""
        if not is_valid(query) or query in self.seen:
            return False
        self.seen.add(query)
        self.entries.append(Entry(query, source, score))
        return True

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in SOURCES}
        for e in self.entries:
            out[e.source] += 1
        return out


def is_valid(query: str) -> bool:
    """Empty / blank entries and a single punctuation or symbol character are dropped."""
    q = query.strip()
    return bool(q) and q == query and not (len(q) == 1 and not q.isalnum())


def ranked(scored: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """Score descending, then the string: the one deterministic order within a source."""
    return sorted(scored, key=lambda kv: (-kv[1], kv[0]))


def _take(ql: QueryList, source: str, items: list[tuple[str, float]], budget: int | None,
          minimum: float | None) -> tuple[float | None, bool]:
    """Add ranked items (all ≥ minimum, or up to `budget` new ones).

    Returns the score of the last one kept and whether the budget cut the source short.
    """
    last = None
    added = 0
    for query, score in items:
        if minimum is not None and score < minimum:
            break
        if budget is not None and added >= budget:
            return last, True
        if ql.add(query, source, score):
            added += 1
            last = score
    return last, False


def build_list(sources: Iterable[str], wordnet: Iterable[str] = (), unigrams: Iterable[tuple[str, int]] = (),
               bigrams: Iterable[tuple[str, float]] = (), titles: Iterable[tuple[str, int]] = (),
               size: int = 500_000, min_pmi: float | None = None,
               min_title_views: int | None = None) -> QueryList:
    """The query list from per-source candidates (unigrams already filtered by count)."""
    sources = set(sources)
    ql = QueryList()
    if "numeral" in sources:
        for n in NUMERALS:
            ql.add(n, "numeral", None)
    if "wordnet" in sources:
        for w in wordnet:
            ql.add(w, "wordnet", None)
    if "unigram" in sources:
        room = max(0, size - len(ql.entries))
        items = ranked(unigrams)
        last, cut = _take(ql, "unigram", items, room, None)
        if cut:  # more unigrams than --size leaves room for: cut by count
            ql.thresholds["unigram_count_capped_at"] = last
    if "bigram" in sources:
        items = ranked(bigrams)
        if min_pmi is None:  # PMI ≤ 0 means no association at all: never worth a place, whatever the budget
            items = [kv for kv in items if kv[1] > 0]
        budget = max(0, min(round(BIGRAM_SHARE * size), size - len(ql.entries)))
        _take_above(ql, "bigram", items, min_pmi, budget, "min_pmi")
    if "title" in sources:
        _take_above(ql, "title", ranked(titles), min_title_views, max(0, size - len(ql.entries)), "min_title_score")
    return ql


def _take_above(ql: QueryList, source: str, items, fixed, budget: int, key: str) -> None:
    """Entries scoring ≥ `fixed` when given (a flag), else the best `budget` ones; records the
    threshold used as thresholds[key] and how it was chosen as thresholds[key + "_chosen_by"]."""
    if fixed is not None:
        _take(ql, source, items, None, fixed)
        ql.thresholds[key] = fixed
    else:
        ql.thresholds[key], _ = _take(ql, source, items, budget, None)
    ql.thresholds[f"{key}_chosen_by"] = "flag" if fixed is not None else "budget"
