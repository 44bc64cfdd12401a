"""Pure parts of openwit.queries: markup stripping, tokens, PMI, budget union, pageviews, WordNet, dump reading."""
import bz2
import io
import math

import pytest

from openwit.common.errors import UserError
from openwit.queries import dump, pageviews, union, wikitext, wordnet
from openwit.queries.pmi import pmi

# Real snippets from the enwiki excerpt (../shared/data/wikipedia, article "Anarchism" / "Aardwolf").
ANARCHISM = ("Anarchists in [[Anarchism in France|France]]<ref>{{cite web|url=http://flag.blackened.net/x.html"
             "|title=Anarchist Activity in France during World War Two|work=blackened.net}}</ref> and "
             "[[Anarchism in Italy|Italy]]<ref name=slevin/> took part.")
AARDWOLF = ("{{Taxobox\n| name = Aardwolf\n| image = Aardwolf2.jpg\n}}\nThe '''aardwolf''' (''Proteles cristata'') "
            "eats [[insect]]s, mainly [[termite]]s – one aardwolf can eat about 250,000 termites during a "
            "night.<ref name=mh71/> <!-- hidden note --> It lives in the [[Shrubland|scrublands]].")
FILE_LINK = ("[[File:Max stirner.jpg|left|thumb|[[19th century philosophy|19th-century philosopher]] "
             "[[Max Stirner]], usually considered an early [[individualist anarchist]].]]")
TABLE = "Before.\n{| class=\"wikitable\"\n|-\n! Year !! Team\n|-\n| 1999 || {{flag|USA}}\n|}\nAfter."


def test_strip_links_refs_templates():
    assert wikitext.strip_markup(ANARCHISM) == "Anarchists in France and Italy took part."
    text = wikitext.strip_markup(AARDWOLF)
    assert text.startswith("\nThe aardwolf (Proteles cristata) eats insects, mainly termites")
    assert "Taxobox" not in text and "mh71" not in text and "hidden" not in text
    assert text.endswith("It lives in the scrublands.")


def test_strip_file_caption_table_heading_entities():
    assert wikitext.strip_markup(FILE_LINK) == ("19th-century philosopher Max Stirner, usually considered an "
                                                "early individualist anarchist.")
    assert wikitext.strip_markup(TABLE).split() == ["Before.", "After."]
    assert wikitext.strip_markup("== Early life ==\n* item &amp; more&nbsp;x") == "Early life\nitem & more x"
    assert wikitext.strip_markup("[[Category:Anarchism]][[de:Anarchismus]]see [http://a.org/x the site]") == \
        "see the site"


def test_tokens_and_runs():
    text = "Workers' anarcho-communism, don't stop: Palme d'Or\nnew line"
    assert wikitext.tokens(text) == ["Workers", "anarcho-communism", "don't", "stop", "Palme", "d'Or", "new", "line"]
    assert list(wikitext.runs(text)) == [["Workers"], ["anarcho-communism"], ["don't", "stop"], ["Palme", "d'Or"],
                                         ["new", "line"]]


def test_link_targets_and_titles():
    assert wikitext.link_targets("[[anarchism in Italy#Post|x]] [[Category:A]] [[Max_Stirner]]") == \
        ["Anarchism in Italy", "Max Stirner"]
    assert wikitext.normalize_title("yuri_Gagarin") == "Yuri Gagarin"


def test_pmi_matches_hand_computation():
    # NLTK: log2(n_ii * N) - log2(n_ix * n_xi); "New York" seen 8 times, New 10, York 9, 1000 tokens
    assert pmi(8, 10, 9, 1000) == pytest.approx(math.log2(8 * 1000 / (10 * 9)))
    assert pmi(8, 10, 9, 1000) == pytest.approx(6.4739311883)
    assert pmi(1, 1000, 1000, 1000) < 0


def test_union_order_budget_and_thresholds():
    ql = union.build_list(
        union.SOURCES, wordnet=["dog", "hot dog", "", "."],
        unigrams=[("dog", 50), ("Paris", 30), ("the", 90), (",", 99)],
        bigrams=[("hot dog", 9.0), ("New York", 7.0), ("Los Angeles", 7.0), ("of the", 0.5), ("a b", -1.0)],
        titles=[("Paris", 500), ("Eiffel Tower", 300), ("Louvre", 300), ("Seine", 10)], size=110)
    got = [(e.query, e.source) for e in ql.entries[100:]]
    # numerals, WordNet (empty / punctuation dropped), unigrams by count, bigrams ≈20% of 110 = 22 at most
    assert got[:4] == [("dog", "wordnet"), ("hot dog", "wordnet"), ("the", "unigram"), ("Paris", "unigram")]
    assert got[4:7] == [("Los Angeles", "bigram"), ("New York", "bigram"), ("of the", "bigram")]
    # titles fill the rest: 110 - 107 = 3, duplicates ("Paris") skipped without using budget
    assert got[7:] == [("Eiffel Tower", "title"), ("Louvre", "title"), ("Seine", "title")]
    assert ql.thresholds["min_pmi"] == 0.5 and ql.thresholds["min_title_score"] == 10
    small = union.build_list(["bigram", "title"], bigrams=[("a b", 3.0), ("c d", 2.0), ("e f", 1.0)],
                             titles=[("X", 5), ("Y", 4), ("Z", 3)], size=10)
    assert [e.query for e in small.entries] == ["a b", "c d", "X", "Y", "Z"]  # bigrams: 20% of 10 = 2
    assert small.thresholds["min_pmi"] == 2.0 and small.thresholds["min_title_score"] == 3


def test_union_explicit_thresholds_and_unigram_cap():
    ql = union.build_list(["bigram", "title"], bigrams=[("a b", 3.0), ("c d", 2.0), ("e f", 1.0)],
                          titles=[("X", 70), ("Y", 69)], size=2, min_pmi=1.5, min_title_views=70)
    assert [e.query for e in ql.entries] == ["a b", "c d", "X"]
    assert ql.thresholds["min_pmi"] == 1.5 and ql.thresholds["min_pmi_chosen_by"] == "flag"
    capped = union.build_list(["numeral", "unigram"], unigrams=[("b", 5), ("a", 5), ("c", 4)], size=101)
    assert [e.query for e in capped.entries[100:]] == ["a"] and capped.thresholds["unigram_count_capped_at"] == 5


def test_pageview_lines():
    assert pageviews.parse_line("en Albert_Einstein 42 0") == ("Albert Einstein", 42)
    assert pageviews.parse_line("en.m Albert_Einstein 7 0") == ("Albert Einstein", 7)
    assert pageviews.parse_line("de Albert_Einstein 42 0") is None
    assert pageviews.parse_line("en.wikipedia Albert_Einstein 736 desktop 1234 A12B3") == ("Albert Einstein", 1234)
    assert pageviews.parse_line("en.wikipedia Albert_Einstein null mobile-web 55") == ("Albert Einstein", 55)
    assert pageviews.parse_line("en broken") is None and pageviews.parse_line("en X notanumber 0") is None
    assert not pageviews.is_article_title("Special:Search") and pageviews.is_article_title("Ratio: a film")


def test_wordnet_rule_and_missing_folder(tmp_path):
    assert wordnet.entry_from_lemma("St._Louis") == "st"
    assert wordnet.entry_from_lemma("galore(ip)") == "galore"
    assert wordnet.entry_from_lemma("Hot_Dog") == "hot dog"
    with pytest.raises(UserError, match="WordNet folder not found"):
        wordnet.read_wordnet(str(tmp_path / "nope"))


OLD_SCHEMA = b"""<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.3/" version="0.3">
<siteinfo><namespaces><namespace key="1">Talk</namespace><namespace key="0" /></namespaces></siteinfo>
<page><title>Cat</title><revision><text>The [[cat]] is a small animal.</text></revision></page>
<page><title>Kitty</title><revision><text>#REDIRECT [[Cat]]</text></revision></page>
<page><title>Talk:Cat</title><revision><text>chat</text></revision></page>
</mediawiki>"""


def test_old_export_schema_without_ns_and_redirect_elements():
    pages = list(dump.iter_pages(io.BytesIO(OLD_SCHEMA), "old.xml"))
    assert [(p.title, p.ns, p.redirect) for p in pages] == [("Cat", 0, False), ("Kitty", 0, True),
                                                            ("Talk:Cat", 1, False)]
    assert pages[0].text == "The [[cat]] is a small animal."


def test_bz2_end_marker_and_checks(tmp_path):
    data = bz2.compress(OLD_SCHEMA * 1)
    assert dump._has_bz2_end(data[-11:]) and not dump._has_bz2_end(data[-40:-29])
    good = tmp_path / "good.xml.bz2"
    good.write_bytes(data)
    dump.check_dump(str(good))
    (tmp_path / "cut.xml.bz2").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.xml.bz2: truncated bz2"):
        dump.check_dump(str(tmp_path / "cut.xml.bz2"))
    (tmp_path / "page.html").write_bytes(b"<html><body>hi</body></html>")
    with pytest.raises(UserError, match="page.html: not a MediaWiki XML dump"):
        dump.check_dump(str(tmp_path / "page.html"))


def test_multistream_index_helpers(tmp_path):
    assert dump.index_path("d/enwiki-20240101-pages-articles-multistream.xml.bz2") == \
        "d/enwiki-20240101-pages-articles-multistream-index.txt.bz2"
    assert dump.index_path("d/enwiki-pages-articles.xml.bz2") is None
    idx = tmp_path / "i.txt.bz2"
    idx.write_bytes(bz2.compress(b"600:10:A\n600:12:B:C\n9000:13:D\n"))
    assert dump.read_index_offsets(str(idx)) == [600, 9000]
    assert dump.range_tasks("f", [600, 9000, 12000], 15000, 2) == [dump.Task("f", 600, 12000),
                                                                  dump.Task("f", 12000, 15000)]


def test_bucketed_partial_counts_merge_to_totals():
    from collections import Counter

    from openwit.queries.count import MergeCounts, by_bucket, frequent
    a, b = Counter({"the": 5, "cat": 1, "sat": 2}), Counter({"the": 3, "mat": 4})
    parts = by_bucket(a, 4) + by_bucket(b, 4)
    assert by_bucket(a, 4) == by_bucket(Counter(dict(reversed(list(a.items())))), 4)  # order-free, stable
    merged = {}
    fn = MergeCounts()
    for bucket in sorted({k for k, _ in parts}):
        acc = fn.merge_accumulators([fn.add_input(fn.create_accumulator(), d) for k, d in parts if k == bucket])
        merged.update(dict(frequent((bucket, fn.extract_output(acc)), 2)))
    assert merged == {"the": 8, "sat": 2, "mat": 4}


def test_top_key_agrees_with_union_order():
    import heapq

    from openwit.queries.graph import rank_key
    items = [("b", 2), ("a", 2), ("ab", 3), ("c", 1), ("aa", 2), ("ba", 3), ("", 1)]
    for n in range(1, len(items) + 1):
        assert heapq.nlargest(n, items, key=rank_key) == union.ranked(items)[:n]
