"""Beam shell of the candidates stage: extract → de-duplicate → match → balance → write Parquet.

The decisions are pure functions (openwit.pipeline.extract, match, balance); this module wires them
into composite transforms — `Candidates` = ExtractCandidates → MatchQueries → Balance →
(Limit, with --limit) → WriteCandidates (+ WriteCandidateCounts, the funnel) — counts every drop by reason (namespace `openwit.candidates`) and keeps side
inputs small: only the over-cap queries' counts (metaclip mode) or thresholds (exact mode) are
broadcast.
"""
from __future__ import annotations

import functools
import logging
import math
from typing import Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from openwit.common import layout
from openwit.common.errors import UserError
from openwit.common.files import expand_patterns
from openwit.common.progress import progress
from openwit.pipeline.candidates import balance
from openwit.pipeline.candidates.files import (finish_candidates, load_queries, write_balance_meta,
                                               write_candidate_counts, write_candidates, write_query_counts)
from openwit.pipeline.extract import DEFAULT_RULES, RECOGNISED, BadInput, ExtractRules, extract_file, file_kind
from openwit.pipeline.candidates.match import Matcher

NS = "openwit.candidates"
ROWS_PER_FILE = 200_000  # one file is sorted in one worker's memory
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def _counter(name: str):
    return Metrics.counter(NS, name)  # resolves the current bundle's container on each inc


def _count(name: str, n: int = 1) -> None:
    _counter(name).inc(n)


def expand_inputs(patterns: Iterable[str]) -> list[str]:
    """Files matched by the given paths/globs (local, gs://, s3://), sorted; UserError if one matches
    nothing or a file's type is not recognised (before any work is done)."""
    files = sorted(set(expand_patterns(patterns, "input")))
    unknown = [path for path in files if file_kind(path) is None]
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise UserError(f"unknown input file type: {', '.join(unknown[:3])}{more} "
                        f"(recognised: {RECOGNISED})")
    return files


TALLY = "tally"  # ExtractFn's second output: one dict of counts per input file


class ExtractFn(beam.DoFn):
    """A file path → candidate records; a corrupt file is logged with its byte offset and counted.
    Also emits, on the `tally` output, one dict per file: `records_read`, `extracted`,
    `bad_input_file` (0/1) and one key per drop reason (exact, unlike retried counters)."""

    def __init__(self, url_col: str | None, caption_col: str | None, rules: ExtractRules = DEFAULT_RULES):
        self._cols = (url_col, caption_col)
        self._rules = rules

    def process(self, path: str):
        _count("input_files")
        report, seen = progress("candidates: extracting"), 0
        tally: dict[str, int] = {"input_files": 1, "extracted": 0, "bad_input_file": 0}
        try:
            for record, reason in extract_file(path, *self._cols, self._rules):
                seen += 1
                if seen % 10_000 == 0:
                    report.add(records=10_000)
                if record is None:
                    _count(reason)
                    tally[reason] = tally.get(reason, 0) + 1
                else:
                    _count("extracted")
                    tally["extracted"] += 1
                    yield record
        except BadInput as e:
            log.warning("bad input file %s %s (skipped the rest of it)", path, e)
            _count("bad_input_file")
            tally["bad_input_file"] = 1
        report.add(records=seen % 10_000, files=1)
        yield beam.pvalue.TaggedOutput(TALLY, {**tally, "records_read": seen})


def _add_tallies(tallies: Iterable[dict]) -> dict:
    total: dict[str, int] = {}
    for t in tallies:
        for k, v in t.items():
            total[k] = total.get(k, 0) + v
    return total


class FirstOccurrence(beam.CombineFn):
    """One record per uid (url+caption): the smallest (source, page_url), and how many were seen."""

    def create_accumulator(self):
        return None, 0

    def add_input(self, acc, record):
        return self._pick(acc[0], record), acc[1] + 1

    def merge_accumulators(self, accs):
        best, n = None, 0
        for rec, k in accs:
            best, n = self._pick(best, rec), n + k
        return best, n

    def extract_output(self, acc):
        return acc

    @staticmethod
    def _pick(a, b):
        if a is None or b is None:
            return a or b
        key = lambda r: (r["source"], r["page_url"] or "")  # noqa: E731
        return a if key(a) <= key(b) else b


def _unique(kv):
    record, n = kv[1]
    if n > 1:
        _count("duplicate", n - 1)
    return record


class MatchFn(beam.DoFn):
    """Batches of records → records with `query_ids`; the matcher is built once per worker process."""

    def __init__(self, queries_path: str, shared: Shared):
        self._path, self._shared, self._matcher = queries_path, shared, None

    def setup(self):
        self._matcher = self._shared.acquire(lambda: Matcher(load_queries(self._path)), tag=self._path)

    def process(self, batch: list[dict]):
        matched = 0
        for record, ids in zip(batch, self._matcher.match_many([r["caption"] for r in batch])):
            if ids:
                matched += 1
                yield {**record, "query_ids": ids}
        _count("matched", matched)
        _count("no_match", len(batch) - matched)


def _keep_metaclip(record, over_cap, cap, seed):
    keep = balance.keep_metaclip(record["uid"], record["query_ids"], over_cap, cap, seed)
    _count("kept" if keep else "balanced_out")
    return keep


def _keep_exact(record, thresholds, seed):
    keep = balance.keep_exact(record["uid"], record["query_ids"], thresholds, seed)
    _count("kept" if keep else "balanced_out")
    return keep


def _rank_pairs(record, over_cap, seed):
    for q in record["query_ids"]:
        if q in over_cap:
            yield q, balance.rank_key(seed, record["uid"], q)


class ExtractCandidates(beam.PTransform):
    """Input files → one record per uid (url+caption), every drop counted by its reason. Once
    applied, `.tally` is a one-element PCollection: the per-file tallies summed (see ExtractFn)."""

    def __init__(self, files: list[str], url_col: str | None = None, caption_col: str | None = None,
                 rules: ExtractRules = DEFAULT_RULES):
        super().__init__()
        self.files, self.url_col, self.caption_col, self.rules = files, url_col, caption_col, rules
        self.tally = None

    def expand(self, pbegin):
        read = (pbegin
                | "Files" >> beam.Create(self.files)
                | "SpreadFiles" >> beam.Reshuffle()
                | "Read" >> beam.ParDo(ExtractFn(self.url_col, self.caption_col, self.rules))
                .with_outputs(TALLY, main="records"))
        self.tally = read[TALLY] | "SumTallies" >> beam.CombineGlobally(_add_tallies)
        return (read.records
                | "ByUid" >> beam.Map(lambda r: (r["uid"], r))
                | "Dedup" >> beam.CombinePerKey(FirstOccurrence())
                | "Unique" >> beam.Map(_unique))


class MatchQueries(beam.PTransform):
    """Records → records with `query_ids` (MetaCLIP sub-string matching); no match: dropped, counted."""

    def __init__(self, queries_path: str):
        super().__init__()
        self.queries_path = queries_path

    def expand(self, records):
        return (records
                | "Batch" >> beam.BatchElements(min_batch_size=1000, max_batch_size=20000)
                | "MatchBatch" >> beam.ParDo(MatchFn(self.queries_path, Shared())))


class CountPerQuery(beam.PTransform):
    """Records with `query_ids` → (query id, how many records matched it)."""

    def expand(self, records):
        return (records
                | "Ids" >> beam.FlatMap(_query_ids)
                | "Count" >> beam.combiners.Count.PerElement())


class Balance(beam.PTransform):
    """Pass 2 of MetaCLIP balancing: keep/drop each matched record given pass 1's per-query
    `counts` (a PCollection of (query id, count)); only over-cap queries are broadcast."""

    def __init__(self, counts, mode: str = "metaclip", max_per_query: int = 20_000, oversample: float = 1.0,
                 seed=0):
        super().__init__()
        self.counts, self.mode, self.max_per_query, self.oversample, self.seed = (
            counts, mode, max_per_query, oversample, seed)

    def expand(self, matched):
        seed = self.seed
        if self.mode == "exact":
            k = balance.exact_cap(self.max_per_query, self.oversample)
            over = beam.pvalue.AsDict(self.counts | "OverCap" >> beam.Filter(lambda kv: kv[1] > k))
            thresholds = (matched
                          | "RankPairs" >> beam.FlatMap(_rank_pairs, over, seed)
                          | "BottomK" >> beam.combiners.Top.SmallestPerKey(k)
                          | "KthSmallest" >> beam.MapTuple(lambda q, ranks: (q, ranks[-1])))
            return matched | "KeepExact" >> beam.Filter(_keep_exact, beam.pvalue.AsDict(thresholds), seed)
        cap = balance.effective_cap(self.max_per_query, self.oversample)
        over = beam.pvalue.AsDict(self.counts | "OverCap" >> beam.Filter(lambda kv: kv[1] > cap))
        return matched | "KeepMetaCLIP" >> beam.Filter(_keep_metaclip, over, cap, seed)


def _query_ids(record):
    return record["query_ids"]


def _uid(record):
    return record["uid"]


class Limit(beam.PTransform):
    """The first `n` records by uid (the candidates files' order), so a trial run takes the same
    `n` every time; they are gathered in one worker's memory (meant for small trial runs)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def expand(self, records):
        return (records
                | "Smallest" >> beam.combiners.Top.Smallest(self.n, key=_uid)
                | "Unlist" >> beam.FlatMap(lambda rows: rows))


def _file_of(record, n_files):
    return int(record["uid"][:16], 16) % n_files, record


def _write_group(kv, out, n_files):
    index, rows = kv
    return write_candidates(layout.candidate_file(out, index, n_files), list(rows))


class WriteCandidates(beam.PTransform):
    """Kept records → OUT/candidates/candidates-XXXXX-of-NNNNN.parquet (rows by uid, files by uid
    hash), OUT/query_counts.parquet (from `matched_counts` and the kept records) and
    OUT/queries_meta.json (the balancing settings in `meta`); returns the candidate files written."""

    def __init__(self, out: str, queries_path: str, matched_counts, rows_per_file: int = ROWS_PER_FILE,
                 meta: dict | None = None):
        super().__init__()
        self.out, self.queries_path, self.matched_counts = out, queries_path, matched_counts
        self.rows_per_file, self.meta = rows_per_file, meta

    def expand(self, kept):
        out, queries_path, rows_per_file = self.out, self.queries_path, self.rows_per_file
        pbegin = beam.pvalue.PBegin(kept.pipeline)
        n_files = (kept
                   | "CountKept" >> beam.combiners.Count.Globally()
                   | "NFiles" >> beam.Map(lambda n: max(1, math.ceil(n / rows_per_file))))
        written = (kept
                   | "AssignFile" >> beam.Map(_file_of, beam.pvalue.AsSingleton(n_files))
                   | "GroupFile" >> beam.GroupByKey()
                   | "WriteFile" >> beam.Map(lambda kv, n: _write_group(kv, out, n), beam.pvalue.AsSingleton(n_files)))
        (pbegin | "Finish" >> beam.Create([None])
         | "Cleanup" >> beam.Map(lambda _, w: finish_candidates(out, w), beam.pvalue.AsList(written)))
        kept_counts = kept | "CountKeptPerQuery" >> CountPerQuery()
        (pbegin | "QueryCountsStart" >> beam.Create([queries_path])
         | "QueryCounts" >> beam.Map(lambda q, m, k: write_query_counts(out, q, m, k),
                                     beam.pvalue.AsDict(self.matched_counts), beam.pvalue.AsDict(kept_counts)))
        if self.meta is not None:
            (pbegin | "BalanceMeta" >> beam.Create([self.meta])
             | "WriteBalanceMeta" >> beam.Map(lambda m: write_balance_meta(out, m)))
        return written


class Candidates(beam.PTransform):
    """The whole stage, applied to the pipeline: files → Extract → Match → Balance → Write.
    Returns the kept candidates as dicts with the Parquet contract's fields (url, caption,
    query_ids, source, page_url, uid); writes under `out` (OUT, or a run's staging folder)."""

    def __init__(self, files: list[str], queries_path: str, out: str, *, url_col=None, caption_col=None,
                 max_per_query=20_000, mode="metaclip", oversample=1.0, seed=0, rows_per_file=ROWS_PER_FILE,
                 rules: ExtractRules = DEFAULT_RULES, limit: int | None = None, settings: dict | None = None):
        super().__init__()
        self.files, self.queries_path, self.out = files, queries_path, out
        self.url_col, self.caption_col, self.rows_per_file = url_col, caption_col, rows_per_file
        self.max_per_query, self.mode, self.oversample, self.seed = max_per_query, mode, oversample, seed
        self.rules, self.limit, self.settings = rules, limit, settings or {}

    def expand(self, pbegin):
        extract = ExtractCandidates(self.files, self.url_col, self.caption_col, self.rules)
        unique = pbegin | "Extract" >> extract
        matched = unique | "Match" >> MatchQueries(self.queries_path)
        counts = matched | "CountPerQuery" >> CountPerQuery()
        kept = matched | "Balance" >> Balance(counts, self.mode, self.max_per_query, self.oversample, self.seed)
        balanced = kept
        if self.limit:
            kept = balanced | "Limit" >> Limit(self.limit)
        meta = {"max_per_query": self.max_per_query, "balance": self.mode, "oversample": self.oversample,
                "seed": self.seed, "queries": self.queries_path, **self.settings}
        _ = kept | "Write" >> WriteCandidates(self.out, self.queries_path, counts, self.rows_per_file, meta)
        _ = pbegin | "Funnel" >> WriteCandidateCounts(self.out, self.files, extract.tally, unique, matched, balanced,
                                                      kept if self.limit else None, self.limit)
        return kept


class WriteCandidateCounts(beam.PTransform):
    """OUT/candidate_counts.json: the stage's funnel (records read → extracted → unique → matched →
    kept, each drop by reason), counted from the data itself, so it is exact on every runner."""

    def __init__(self, out: str, files: list[str], tally, unique, matched, kept, limited=None,
                 limit: int | None = None):
        super().__init__()
        self.out, self.files, self.tally, self.limit = out, files, tally, limit
        self.stages = {"unique": unique, "matched": matched, "kept": kept}
        if limited is not None:
            self.stages["limited"] = limited

    def expand(self, pbegin):
        out, files, limit = self.out, self.files, self.limit
        sizes = {name: beam.pvalue.AsSingleton(pc | f"Count_{name}" >> beam.combiners.Count.Globally())
                 for name, pc in self.stages.items()}
        return (pbegin | "Start" >> beam.Create([None])
                | "Write" >> beam.Map(lambda _, tally, **n: write_candidate_counts(out, files, tally, n, limit),
                                      beam.pvalue.AsSingleton(self.tally), **sizes))
