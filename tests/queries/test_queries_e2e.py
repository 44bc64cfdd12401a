"""openwit-queries end to end: real Beam pipelines on WordNet 3.0, the real enwiki excerpt, a multistream dump."""
import bz2
import html
import json
import re
from collections import Counter

import pyarrow.parquet as pq
import pytest

from openwit.common.hashing import blake_u64
from openwit.queries import wikitext
from openwit.queries.cli import main
from openwit.queries.dump import Task, read_task
from openwit.queries.pmi import pmi

EXCERPT = "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
# Words and bigrams where markup cannot interfere: the naive count below agrees with the stripper.
WORDS = ["animals", "algorithms", "alkanes", "astronauts", "abortions", "Americans", "techniques"]
BIGRAMS = ["Founding Fathers", "extracellular matrix", "Palme d'Or"]


def _raw_articles(path):
    """Article wikitexts found with plain regexes on the raw XML (independent of the XML reader)."""
    raw = bz2.open(path).read().decode("utf-8")
    out = []
    for page in re.findall(r"<page>(.*?)</page>", raw, re.S):
        if "<redirect" not in page and "<ns>0</ns>" in page:
            out.append(html.unescape(re.search(r"<text[^>]*>(.*?)</text>", page, re.S).group(1)))
    return raw, out


def _naive_text(wikitext_):
    """A deliberately simple second stripper: comments, refs, templates, [[a|b]] → b."""
    t = re.sub(r"<!--.*?-->", "", wikitext_, flags=re.S)
    t = re.sub(r"<ref[^>/]*/>", "", t)
    t = re.sub(r"<ref.*?</ref>", "", t, flags=re.S)
    for pattern, repl in ((r"\{\{[^{}]*\}\}", ""), (r"\[\[(?:[^\[\]|]*\|)?([^\[\]|]*)\]\]", r"\1")):
        while True:
            new = re.sub(pattern, repl, t)
            if new == t:
                break
            t = new
    return t


def _naive_count(phrase, texts):
    pat = re.compile(r"(?<![\w'-])" + re.escape(phrase) + r"(?![\w'-])")
    return sum(len(pat.findall(t)) for t in texts)


def _read(out):
    table = pq.read_table(out / "queries.parquet").to_pylist()
    summary = json.loads((out / "summary.json").read_text())
    return table, summary


def test_wordnet_and_numerals_give_metaclip_86654(tmp_path, wordnet_dir):
    out = tmp_path / "out"
    assert main(["--out", str(out), "--sources", "numeral,wordnet", "--wordnet-dir", str(wordnet_dir)]) == 0
    rows, summary = _read(out)
    assert len(rows) == 86_654 == summary["entries"]
    assert summary["entries_per_source"] == {"numeral": 100, "wordnet": 86_554}
    queries = [r["query"] for r in rows]
    assert len(set(queries)) == len(queries) and queries[:3] == ["0", "1", "2"]
    assert {"entity", "ice cream", "new york", "st"} <= set(queries) and "" not in queries
    assert (out / "queries.txt").read_text().split("\n")[:-1] == queries


@pytest.fixture(scope="module")
def excerpt_run(tmp_path_factory, shared_data, wordnet_dir):
    """All sources on the real excerpt, with an hourly pageviews file written for some of its titles."""
    tmp = tmp_path_factory.mktemp("excerpt")
    dump_path = shared_data / EXCERPT
    raw, _ = _raw_articles(dump_path)
    titles = re.findall(r"<title>(.*?)</title>\s*<ns>0</ns>\s*<id>\d+</id>\s*<revision>", raw)
    views = {t: 1 + blake_u64(t, key="test") % 1000 for t in titles[:60]}
    lines = [f"en {t.replace(' ', '_')} {v} 0\nen.m {t.replace(' ', '_')} 5 0" for t, v in views.items()]
    lines += ["en Not_In_The_Dump 99999 0", "en AccessibleComputing 88888 0", "fr Anarchism 77777 0"]
    pv = tmp / "pageviews-20160101-000000"
    pv.write_text("\n".join(lines) + "\n")
    args = ["--wiki-dump", str(dump_path), "--pageviews", str(pv), "--wordnet-dir", str(wordnet_dir),
            "--min-unigram-count", "5", "--size", "120000"]
    assert main(["--out", str(tmp / "out")] + args) == 0
    return tmp, args, {html.unescape(t): v + 5 for t, v in views.items()}


def test_excerpt_all_sources_counts_match_independent_count(excerpt_run, shared_data):
    tmp, _, views = excerpt_run
    rows, summary = _read(tmp / "out")
    per = summary["entries_per_source"]
    assert all(per[s] > 0 for s in ("numeral", "wordnet", "unigram", "bigram", "title")), per
    assert sum(per.values()) == len(rows) == len({r["query"] for r in rows})
    read = summary["read"]
    assert (read["pages"], read["articles"], read["skipped_redirect"]) == (206, 106, 99)
    _, articles = _raw_articles(shared_data / EXCERPT)
    assert read["articles"] == len(articles)
    stripped = [wikitext.strip_markup(a) for a in articles]
    assert read["tokens"] == sum(len(wikitext.tokens(s)) for s in stripped)
    by_query = {r["query"]: r for r in rows}
    naive = [_naive_text(a) for a in articles]
    for word in WORDS:
        assert by_query[word]["source"] == "unigram"
        assert by_query[word]["score"] == _naive_count(word, naive), word
    for bigram in BIGRAMS:
        w1, w2 = bigram.split(" ")
        n = [_naive_count(x, naive) for x in (bigram, w1, w2)]
        assert by_query[bigram]["source"] == "bigram"
        assert by_query[bigram]["score"] == pytest.approx(pmi(n[0], n[1], n[2], read["tokens"])), bigram
    # titles: en + en.m summed, only dump articles (no redirect, no unknown page, no other wiki)
    got_titles = {r["query"]: r["score"] for r in rows if r["source"] == "title"}
    assert got_titles and all(got_titles[t] == views[t] for t in got_titles)
    assert not {"Not In The Dump", "AccessibleComputing"} & set(by_query)
    scores = [r["score"] for r in rows if r["source"] == "title"]
    assert scores == sorted(scores, reverse=True)
    th = summary["thresholds"]
    assert th["title_score"] == "pageviews" and th["min_title_views"] == min(scores)
    assert th["min_pmi"] == min(r["score"] for r in rows if r["source"] == "bigram")


def _multistream(src_path, dst_dir, pages_per_stream=100):
    """Re-pack a dump the way Wikimedia does: header stream, 100-page streams, footer; plus the index."""
    xml = bz2.open(src_path).read()
    first = xml.index(b"<page>")
    end = xml.rindex(b"</page>") + len(b"</page>")
    pages = re.findall(rb"  <page>.*?</page>\n", xml[first - 2:end + 1], re.S)
    streams, index, offset = [bz2.compress(xml[:first - 2])], [], None
    offset = len(streams[0])
    for i in range(0, len(pages), pages_per_stream):
        chunk = pages[i:i + pages_per_stream]
        for p in chunk:
            title = re.search(rb"<title>(.*?)</title>", p).group(1)
            index.append(b"%d:%d:%s" % (offset, len(index) + 1, title))
        streams.append(bz2.compress(b"".join(chunk)))
        offset += len(streams[-1])
    streams.append(bz2.compress(xml[end + 1:]))
    dump = dst_dir / "enwiki-test-pages-articles-multistream.xml.bz2"
    dump.write_bytes(b"".join(streams))
    (dst_dir / "enwiki-test-pages-articles-multistream-index.txt.bz2").write_bytes(
        bz2.compress(b"\n".join(index) + b"\n"))
    return dump, len(streams) - 2


def test_multistream_byte_ranges_read_the_same_pages(tmp_path, shared_data):
    ms, n_streams = _multistream(shared_data / EXCERPT, tmp_path)
    assert n_streams == 3
    whole = list(read_task(Task(str(shared_data / EXCERPT))))
    stats = {}
    ranged = [p for t in _tasks_of(ms) for p in read_task(t, stats)]
    assert ranged == whole and len(whole) == 206
    assert list(read_task(Task(str(ms)))) == whole  # the same file read whole (multi-stream bz2)


@pytest.mark.slow
def test_multistream_pipeline_matches_whole_file(excerpt_run, shared_data):
    tmp, args, _ = excerpt_run
    ms, _ = _multistream(shared_data / EXCERPT, tmp)
    args = [str(ms) if a.endswith(EXCERPT.split("/")[1]) else a for a in args]
    assert main(["--out", str(tmp / "ms"), "--streams-per-task", "1"] + args) == 0
    _, sum_ms = _read(tmp / "ms")
    assert sum_ms["inputs"]["dump_read_mode"] == {str(ms): "multistream: 3 byte-range tasks"}
    assert (tmp / "ms" / "queries.parquet").read_bytes() == (tmp / "out" / "queries.parquet").read_bytes()
    _, sum_whole = _read(tmp / "out")
    for key in ("pages", "articles", "tokens", "bigrams"):  # xml_bytes: ranges skip the siteinfo header
        assert sum_ms["read"][key] == sum_whole["read"][key], key


def _tasks_of(ms):
    from openwit.queries import dump
    offsets = dump.read_index_offsets(dump.index_path(str(ms)))
    return dump.range_tasks(str(ms), offsets, ms.stat().st_size, 1)


def test_titles_without_pageviews_rank_by_inlinks(tmp_path, shared_data):
    """No --pageviews: titles are scored by links to them from the dump's articles, and the summary says so."""
    assert main(["--out", str(tmp_path / "o"), "--wiki-dump", str(shared_data / EXCERPT), "--sources", "title"]) == 0
    rows, summary = _read(tmp_path / "o")
    assert summary["thresholds"]["title_score"] == "inlinks"
    assert any("in-link counts" in note for note in summary["notes"])
    raw, articles = _raw_articles(shared_data / EXCERPT)
    titles = set(re.findall(r"<title>([^<:]*)</title>", raw))
    naive = Counter()
    for text in articles:  # [[Target|label]] / [[Target#section]], first letter upper-cased, _ → space
        for target in re.findall(r"\[\[([^\[\]|#:]+)(?:#[^\[\]|]*)?(?:\|[^\[\]]*)?\]\]", text):
            t = " ".join(target.replace("_", " ").split())
            naive[t[:1].upper() + t[1:]] += 1
    got = {r["query"]: r["score"] for r in rows}
    assert got and all(r["source"] == "title" for r in rows)
    assert set(got) <= titles
    assert all(got[t] == naive[t] for t in got), [(t, got[t], naive[t]) for t in got if got[t] != naive[t]][:5]
    article_titles = {html.unescape(re.search(r"<title>(.*?)</title>", p).group(1))
                      for p in re.findall(r"<page>(.*?)</page>", raw, re.S)
                      if "<redirect" not in p and "<ns>0</ns>" in p}
    assert set(got) == {t for t in article_titles if naive[t] > 0}  # every linked article, nothing else
    assert summary["entries_per_source"]["title"] == len(got)
