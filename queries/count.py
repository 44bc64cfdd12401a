"""Beam DoFns that read dump tasks and pageview lines into partial counts (thin shell over pure code).

Counting a whole Wikipedia (billions of tokens) must not ship one (word, 1) element per token,
nor one element per distinct word (Python Beam pays microseconds per element): `CountPagesFn`
keeps per-bundle Counters and, when they grow past `flush_at` keys and at the end of each bundle,
emits them split into `N_BUCKETS` hash buckets, `(bucket, {key: partial_count})`. `MergeCounts`
(CombinePerKey, lifted before the shuffle) adds them up per bucket, so no element holds more than
about 1/N_BUCKETS of the distinct keys, and `frequent` then emits only keys above a minimum count.
"""
from __future__ import annotations

import zlib
from collections import Counter, defaultdict

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from openwit.common.progress import progress
from openwit.queries import pageviews, wikitext
from openwit.queries.dump import MAX_PAGE_CHARS, Task, read_task

UNIGRAM, BIGRAM, TITLE, LINK, STATS = "unigram", "bigram", "title", "link", "stats"
_NS = "openwit.queries"
N_BUCKETS = 1024


def bucket_of(key: str, n_buckets: int = N_BUCKETS) -> int:
    """A stable bucket for a key (crc32, never Python's salted hash())."""
    return zlib.crc32(key.encode("utf-8")) % n_buckets


def by_bucket(counter: Counter, n_buckets: int = N_BUCKETS) -> list[tuple[int, dict]]:
    """Split partial counts into `(bucket, {key: count})` pairs, buckets in order."""
    buckets: dict[int, dict] = defaultdict(dict)
    crc = zlib.crc32  # inlined bucket_of: this loop sees every distinct key of every bundle
    for key, n in counter.items():
        buckets[crc(key.encode("utf-8")) % n_buckets][key] = n
    return sorted(buckets.items())


def frequent(bucket_counts: tuple[int, dict], minimum: int):
    """`(key, count)` for the keys of one merged bucket seen at least `minimum` times."""
    for key, n in bucket_counts[1].items():
        if n >= minimum:
            yield key, n


class CountPagesFn(beam.DoFn):
    """Task → tagged partial counts: unigram/bigram/link `(bucket, {key: n})`, article `title`s, `stats`."""

    def __init__(self, want_words: bool, want_titles: bool, want_links: bool, flush_at: int = 200_000,
                 max_page_chars: int = MAX_PAGE_CHARS):
        self.want_words, self.want_titles, self.want_links = want_words, want_titles, want_links
        self.flush_at, self.max_page_chars = flush_at, max_page_chars

    def setup(self):
        self.pages = Metrics.counter(_NS, "pages_read")
        self.articles = Metrics.counter(_NS, "articles_counted")
        self.redirects = Metrics.counter(_NS, "skipped_redirect")
        self.non_article = Metrics.counter(_NS, "skipped_non_article_namespace")
        self.too_large = Metrics.counter(_NS, "skipped_page_too_large")

    def start_bundle(self):
        self.counts = {UNIGRAM: Counter(), BIGRAM: Counter(), LINK: Counter()}
        self.stats = Counter()

    def _flush(self, windowed: bool):
        for tag, counter in self.counts.items():
            for kv in by_bucket(counter):
                value = WindowedValue(kv, GlobalWindow().max_timestamp(), [GlobalWindow()]) if windowed else kv
                yield pvalue.TaggedOutput(tag, value)
            counter.clear()

    def process(self, task: Task):
        uni, bi, links, stats = self.counts[UNIGRAM], self.counts[BIGRAM], self.counts[LINK], self.stats
        read_stats: dict = {}
        stats["tasks"] += 1
        report = progress("queries: reading dumps")
        for page in read_task(Task(*task), read_stats, self.max_page_chars):
            stats["pages"] += 1
            self.pages.inc()
            report.add(pages=1)
            if page.ns != 0:
                stats["skipped_non_article"] += 1
                self.non_article.inc()
                continue
            if page.too_large:  # text over --max-page-chars: never held, not counted
                stats["skipped_page_too_large"] += 1
                self.too_large.inc()
                continue
            if page.redirect:
                stats["skipped_redirect"] += 1
                self.redirects.inc()
                continue
            stats["articles"] += 1
            self.articles.inc()
            if self.want_titles:
                yield pvalue.TaggedOutput(TITLE, wikitext.normalize_title(page.title))
            if self.want_links:
                links.update(wikitext.link_targets(page.text))
            if self.want_words:
                for run in wikitext.runs(wikitext.strip_markup(page.text)):
                    uni.update(run)
                    stats["tokens"] += len(run)
                    if len(run) > 1:
                        bi.update(f"{a} {b}" for a, b in zip(run, run[1:]))
                        stats["bigrams"] += len(run) - 1
            if len(uni) + len(bi) + len(links) > self.flush_at:
                yield from self._flush(windowed=False)
        stats["xml_bytes"] += read_stats.get("xml_bytes", 0)
        report.add(tasks=1, xml_mb=read_stats.get("xml_bytes", 0) / 1e6)

    def finish_bundle(self):
        yield from self._flush(windowed=True)
        if self.stats:
            stats = WindowedValue(dict(self.stats), GlobalWindow().max_timestamp(), [GlobalWindow()])
            yield pvalue.TaggedOutput(STATS, stats)


class MergeCounts(beam.CombineFn):
    """Add up `{key: count}` dicts (a hash bucket's partial counts, or the read stats); an empty
    input gives {}."""

    def create_accumulator(self):
        return Counter()

    def add_input(self, acc, counts):
        acc.update(counts)
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        out = next(accs, None)
        if out is None:
            return Counter()
        for a in accs:  # updates the first accumulator in place: no copy of the biggest dict
            out.update(a)
        return out

    def extract_output(self, acc):
        return dict(acc)


class ParsePageviewsFn(beam.DoFn):
    """One pageview line → `(title, views)` for English Wikipedia; other lines counted and dropped."""

    def setup(self):
        self.kept = Metrics.counter(_NS, "pageview_lines_en")
        self.dropped = Metrics.counter(_NS, "pageview_lines_other_wiki_or_malformed")
        self.namespaced = Metrics.counter(_NS, "pageview_titles_non_article")

    def process(self, line: str):
        parsed = pageviews.parse_line(line)
        if parsed is None:
            self.dropped.inc()
            return
        if not pageviews.is_article_title(parsed[0]):
            self.namespaced.inc()
            return
        self.kept.inc()
        yield parsed
