"""The query-list Beam pipeline: dump tasks → partial counts → CombinePerKey → small top lists → files.

Graph: Create(tasks) → Reshuffle → CountPagesFn (tagged partial counts) → CombinePerKey(sum);
bigram PMI by two joins with the unigram counts (no big side input); titles joined with summed
pageviews (or in-link counts); each source cut to its top `size` by a global Top; one final step
gathers those small lists (side inputs), builds the union (pure `union.build_list`) and writes the
files, so it runs unchanged on Dataflow.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import apache_beam as beam

from openwit.queries import output, union
from openwit.queries.dump import MAX_PAGE_CHARS
from openwit.queries.count import (BIGRAM, LINK, STATS, TITLE, UNIGRAM, CountPagesFn, MergeCounts,
                                   ParsePageviewsFn, frequent)
from openwit.queries.pmi import pmi


@dataclass
class Config:
    out: str
    sources: list[str]
    tasks: list[tuple] = field(default_factory=list)
    wiki_dumps: list[str] = field(default_factory=list)
    pageviews: list[str] = field(default_factory=list)
    wordnet_dir: str | None = None
    wordnet: list[str] = field(default_factory=list)
    size: int = 500_000
    min_unigram_count: int = 100
    min_bigram_count: int = 100
    min_pmi: float | None = None
    min_title_views: int | None = None
    dump_mode: dict = field(default_factory=dict)
    max_page_chars: int = MAX_PAGE_CHARS


class _Reversed(str):
    """A string that sorts in reverse, so `Top` keeps the smaller string among equal scores."""

    __slots__ = ()

    def __lt__(self, other):
        return str.__gt__(self, other)

    def __le__(self, other):
        return str.__ge__(self, other)

    def __gt__(self, other):
        return str.__lt__(self, other)

    def __ge__(self, other):
        return str.__le__(self, other)


def rank_key(kv: tuple) -> tuple:
    """Top's key matching `union.ranked`: higher score first, then the smaller string first."""
    return kv[1], _Reversed(kv[0])


def _attach_left(joined):
    """(word, {'bi': [(bigram, counts…)], 'uni': [n]}) → bigram records with the word's count added."""
    word, groups = joined
    counts = list(groups["uni"])
    if not counts:
        return
    for record in groups["bi"]:
        yield record + (counts[0],)


def _to_w2(record):
    bigram = record[0]
    return bigram.split(" ")[1], record


def _score(record, n_total: int):
    bigram, n_ii, n_ix, n_xi = record
    return bigram, pmi(n_ii, n_ix, n_xi, n_total)


def _joined_titles(joined, min_score):
    title, groups = joined
    if not list(groups["page"]):
        return
    score = sum(groups["score"])
    if score > 0 and (min_score is None or score >= min_score):
        yield title, score


def _top(pcoll, label: str, size: int):
    return pcoll | f"Top{label}" >> beam.combiners.Top.Of(size, key=rank_key)


def build(p: beam.Pipeline, cfg: Config) -> None:
    """Add the whole stage to pipeline `p`."""
    src = set(cfg.sources)
    want_words = bool(src & {"unigram", "bigram"}) and bool(cfg.tasks)
    want_titles = "title" in src
    empty = p | "NoList" >> beam.Create([[]])
    unigrams = bigrams = titles = empty
    stats = p | "NoStats" >> beam.Create([{}])
    if cfg.tasks:
        counted = (p | "Tasks" >> beam.Create(cfg.tasks) | "Spread" >> beam.Reshuffle()
                   | "CountPages" >> beam.ParDo(CountPagesFn(want_words, want_titles, want_titles and not cfg.pageviews,
                                                           max_page_chars=cfg.max_page_chars))
                   .with_outputs(UNIGRAM, BIGRAM, TITLE, LINK, STATS))
        stats = counted[STATS] | "SumStats" >> beam.CombineGlobally(MergeCounts())
        if want_words:
            low = min(cfg.min_unigram_count, cfg.min_bigram_count)
            uni = (counted[UNIGRAM] | "MergeUnigrams" >> beam.CombinePerKey(MergeCounts())
                   | "FrequentUnigrams" >> beam.FlatMap(frequent, low))
            if "unigram" in src:
                min_uni = cfg.min_unigram_count
                unigrams = _top(uni | "MinCount" >> beam.Filter(lambda kv: kv[1] >= min_uni), "Unigrams", cfg.size)
            if "bigram" in src:
                bigrams = _bigrams(counted[BIGRAM], uni, stats, cfg)
    if want_titles:
        titles = _titles(p, counted if cfg.tasks else None, cfg)
    _ = (p | "Final" >> beam.Create([None])
         | "BuildAndWrite" >> beam.Map(_finish, cfg=asdict(cfg), unigrams=beam.pvalue.AsSingleton(unigrams),
                                       bigrams=beam.pvalue.AsSingleton(bigrams),
                                       titles=beam.pvalue.AsSingleton(titles),
                                       stats=beam.pvalue.AsSingleton(stats)))


def _bigrams(partial, uni, stats, cfg: Config):
    min_bi = cfg.min_bigram_count
    bi = (partial | "MergeBigrams" >> beam.CombinePerKey(MergeCounts())
          | "FrequentBigrams" >> beam.FlatMap(frequent, min_bi)
          | "ByW1" >> beam.Map(lambda kv: (kv[0].split(" ")[0], (kv[0], kv[1]))))
    # a word of a bigram seen n times occurs ≥ n times: only those unigrams can join
    words = uni | "JoinableWords" >> beam.Filter(lambda kv: kv[1] >= min_bi)
    with_w1 = ({"bi": bi, "uni": words} | "JoinW1" >> beam.CoGroupByKey()
               | "AddW1Count" >> beam.FlatMap(_attach_left) | "ByW2" >> beam.Map(_to_w2))
    scored = ({"bi": with_w1, "uni": words} | "JoinW2" >> beam.CoGroupByKey()
              | "AddW2Count" >> beam.FlatMap(_attach_left)
              | "PMI" >> beam.Map(lambda r, s: _score(r, s["tokens"]), beam.pvalue.AsSingleton(stats)))
    if cfg.min_pmi is not None:
        min_pmi = cfg.min_pmi
        scored = scored | "MinPMI" >> beam.Filter(lambda kv: kv[1] >= min_pmi)
    return _top(scored, "Bigrams", cfg.size)


def _titles(p, counted, cfg: Config):
    if cfg.pageviews:
        scores = (p | "PageviewFiles" >> beam.Create(cfg.pageviews)
                  | "ReadPageviews" >> beam.io.ReadAllFromText()
                  | "ParsePageviews" >> beam.ParDo(ParsePageviewsFn()))
        summed = scores | "SumViews" >> beam.CombinePerKey(sum)
    else:
        summed = (counted[LINK] | "MergeLinks" >> beam.CombinePerKey(MergeCounts())
                  | "LinkedTitles" >> beam.FlatMap(frequent, 1))
    min_views = cfg.min_title_views
    if counted is None:  # pageviews only: every article-namespace title counts
        kept = summed | "MinViews" >> beam.Filter(lambda kv: kv[1] > 0 and (min_views is None or kv[1] >= min_views))
    else:
        pages = counted[TITLE] | "TitleKeys" >> beam.Map(lambda t: (t, None))
        kept = ({"page": pages, "score": summed} | "JoinTitles" >> beam.CoGroupByKey()
                | "ArticleTitles" >> beam.FlatMap(_joined_titles, min_views))
    return _top(kept, "Titles", cfg.size)


def _finish(_, cfg: dict, unigrams, bigrams, titles, stats) -> dict:
    """Pure union of the gathered lists, then the three files (runs once, on one worker)."""
    ql = union.build_list(cfg["sources"], cfg["wordnet"], unigrams, bigrams, titles, size=cfg["size"],
                          min_pmi=cfg["min_pmi"], min_title_views=cfg["min_title_views"])
    summary = make_summary(cfg, ql, stats)
    output.write(cfg["out"], output.render(ql, summary))
    return summary


def make_summary(cfg: dict, ql: union.QueryList, stats: dict) -> dict:
    """summary.json: entries per source, thresholds used, inputs, what was read (no timestamps)."""
    thresholds = dict(ql.thresholds)
    notes = []
    if "unigram" in cfg["sources"]:
        thresholds["min_unigram_count"] = cfg["min_unigram_count"]
    if "bigram" in cfg["sources"]:
        thresholds["min_bigram_count"] = cfg["min_bigram_count"]
    if "title" in cfg["sources"]:
        thresholds["title_score"] = "pageviews" if cfg["pageviews"] else "inlinks"
        if not cfg["pageviews"]:
            notes.append("no --pageviews given: titles ranked by in-link counts from the dump, "
                         "thresholds are link counts, not views")
        else:
            thresholds["min_title_views"] = thresholds.get("min_title_score")
    if "unigram_count_capped_at" in thresholds:
        notes.append("more unigrams passed --min-unigram-count than --size allows: cut by count")
    counts = ql.counts()
    return {
        "entries": len(ql.entries),
        "entries_per_source": {s: counts[s] for s in union.SOURCES if s in cfg["sources"]},
        "size": cfg["size"],
        "sources": [s for s in union.SOURCES if s in cfg["sources"]],
        "thresholds": thresholds,
        "inputs": {"wiki_dumps": cfg["wiki_dumps"], "dump_read_mode": cfg["dump_mode"],
                   "pageviews": cfg["pageviews"], "wordnet_dir": cfg["wordnet_dir"]},
        "read": {"skipped_page_too_large": 0, **stats} if stats else stats,
        "limits": {"max_page_chars": cfg.get("max_page_chars", MAX_PAGE_CHARS)},
        "notes": notes,
    }
