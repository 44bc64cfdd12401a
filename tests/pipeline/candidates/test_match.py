"""MetaCLIP matching: the batched token-trie matcher agrees with the naive `" q " in spaced(text)`."""
import random

import ahocorasick
import numpy as np
import pyarrow.parquet as pq
import pytest

from openwit.pipeline.candidates import Matcher
from openwit.pipeline.candidates.spacing import naive_match, spaced

TRICKY_QUERIES = [
    "cat", "Cat", "black cat", "cat.", "e.g", "U.S.", "New York", "new york", "York", "a", "", " ", "x  y",
    " lead", "trail ", "C++", "rock & roll", "tab\there", "line\nbreak", "?", ",", "...", "3", "99", "1,000",
    "naïve", "東京", "東京 タワー", "don't", "self-driving car", "`code`", "café au lait", "a b c d e f",
]
TRICKY_TEXTS = [
    "", " ", "cat", "Cat!", "the black cat.", "A cat, a Cat; a CAT: cat? cat! `cat`", "black  cat",
    "New York, New York.", "new york\tcity\nlights", "C++ and rock & roll", "tab\there", "e.g. U.S. cat.",
    "x  y", "x y", "  lead trail  ", "1,000 cats and 3 dogs, 99 birds", "naïve café au lait", "東京 タワー",
    "don't stop", "a self-driving car", "a b c d e f g", "...", "end with space ", " start", "\x00weird\x01",
    "\u00a0nbsp\u00a0cat", "a\r\nb", "cat" * 50,
]


def wordnet_entries(wordnet_dir):
    """MetaCLIP's WordNet list: numerals 0..99 + first lemma of each synset (86,654 entries)."""
    out = dict.fromkeys(str(i) for i in range(100))
    for pos in ("noun", "verb", "adj", "adv"):
        with open(wordnet_dir / f"data.{pos}", encoding="utf-8") as f:
            for line in f:
                if not line.startswith("  "):
                    word = line.split(" ", 5)[4]
                    word = word[:word.index("(")] if word.endswith(")") else word  # adjective marker
                    lemma = word.lower().split(".")[0].replace("_", " ")
                    if lemma:
                        out.setdefault(lemma)
    return list(out)


def aho_reference(queries, texts):
    """Independent character-level Aho-Corasick over " q " (MetaCLIP's approach), for big lists."""
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for i, q in enumerate(queries):
        automaton.add_word(f" {q} ", i)
    automaton.make_automaton()
    return [sorted({i for _, i in automaton.iter(spaced(t))}) for t in texts]


def test_spaced_is_metaclip():
    assert spaced("a,b.c\td") == " a , b . c d "
    assert spaced("Hi!?") == " Hi !  ?  "  # each mark padded on its own, as in MetaCLIP


def test_tricky_queries_agree_with_naive():
    matcher = Matcher(TRICKY_QUERIES)
    got = matcher.match_many(TRICKY_TEXTS)
    for text, ids in zip(TRICKY_TEXTS, got):
        assert ids == naive_match(text, TRICKY_QUERIES), repr(text)
        assert matcher.match(text) == ids
    names = lambda t: [TRICKY_QUERIES[i] for i in matcher.match(t)]  # noqa: E731
    assert names("the black cat.") == ["cat", "black cat", ""]  # "cat." never matches; "." pads to "  "
    assert names("Cat!") == ["Cat", ""]                      # case-sensitive
    assert "" in names("black  cat") and "x  y" in names("x  y")
    assert matcher.match_many([]) == []


def test_random_texts_agree_with_naive():
    rng = random.Random(7)
    words = ["cat", "Cat", "black", "New", "York", "a", "b", "c", "d", "e", "f", "3", ",", ".", "!", "  ", "\t", "x", "y"]
    texts = ["".join(rng.choice(words) + rng.choice([" ", "", " ", ",", ". "]) for _ in range(rng.randint(0, 12)))
             for _ in range(2000)]
    queries = TRICKY_QUERIES + [" ".join(rng.choice(words[:14]) for _ in range(rng.randint(1, 4))) for _ in range(300)]
    queries = list(dict.fromkeys(queries))
    got = Matcher(queries).match_many(texts)
    assert got == [naive_match(t, queries) for t in texts]
    assert sum(map(len, got)) > 2000  # the test exercises real matches


def test_wordnet_list_on_laion_captions(shared_data, wordnet_dir):
    queries = wordnet_entries(wordnet_dir)
    assert len(queries) == 86_654
    captions = [c or "" for c in pq.read_table(shared_data / "metadata" / "img2dataset_test_10000.parquet",
                                               columns=["TEXT"]).column(0).to_pylist()]
    matcher = Matcher(queries)
    got = []
    for i in range(0, len(captions), 3000):  # uneven batches on purpose
        got.extend(matcher.match_many(captions[i:i + 3000]))
    assert got == aho_reference(queries, captions)
    sample = random.Random(1).sample(range(len(captions)), 150)
    for i in sample:
        assert got[i] == naive_match(captions[i], queries)
    assert 1.0 < sum(map(len, got)) / len(got) < 30  # real captions match several entries


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_batch_size_does_not_change_results(batch):
    matcher = Matcher(TRICKY_QUERIES)
    texts = TRICKY_TEXTS * 5
    out = []
    for i in range(0, len(texts), batch):
        out.extend(matcher.match_many(texts[i:i + batch]))
    assert out == [naive_match(t, TRICKY_QUERIES) for t in texts]


def test_lone_surrogates_and_no_queries():
    queries = ["cat", "a\ufffdb", "\ue000"]
    texts = ["a\ud800b cat", "cat\udfff", "\ue000 x"]
    assert Matcher(queries).match_many(texts) == [naive_match(t, queries) for t in texts] == [[0], [], [2]]
    assert Matcher([]).match_many(["anything at all", ""]) == [[], []]


PIECES = ["cat", "Cat", "über", "東京", "naïve", "x", "ab", "a\x00b", "😀", "abcdefg", "abcdefgh", "abcdefgh1",
          "abcdefgi", "abcdefga", "supercalifragilistic", "supercalifragilistiC", "über-größenänderung", "-", "'", "\u00a0",
          "\u3000", "\x0b"]
MARKS_AND_SPACES = [",", ".", ";", ":", "?", "!", "`", " ", "  ", "\t", "\n", "\r", "\r\n", ""]


def random_texts_and_queries(seed, n_texts=1500, n_queries=400):
    """Texts mixing words (unicode, NUL, long ones differing in one byte) with MetaCLIP's marks,
    tabs/newlines and repeated spaces; queries with marks inside, multi-token, overlapping."""
    rng = random.Random(seed)
    glue = lambda: rng.choice(MARKS_AND_SPACES + [" "] * 6)  # noqa: E731
    texts = ["".join(rng.choice(PIECES) + glue() for _ in range(rng.randint(0, 14))) for _ in range(n_texts)]
    texts += ["", " ", "`", ",,", " a\x00b ", "abcdefgh" * 40]
    queries = list(PIECES) + MARKS_AND_SPACES
    for _ in range(n_queries):
        words = [rng.choice(PIECES + [",", "`", "", "?"]) for _ in range(rng.randint(1, 4))]
        queries.append(rng.choice([" ", " ", " ", "", ".", "  "]).join(words))
    queries += ["cat cat", "cat cat cat", "ab cat", "ab cat ab", "abcdefgh" * 3, "abcdefgh abcdefgh"]
    return texts, list(dict.fromkeys(queries))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_unicode_marks_and_spaces_agree_with_naive(seed):
    texts, queries = random_texts_and_queries(seed)
    matcher = Matcher(queries)
    expected = [naive_match(t, queries) for t in texts]
    assert matcher.match_many(texts) == expected
    assert [ids for i in range(0, len(texts), 97) for ids in matcher.match_many(texts[i:i + 97])] == expected
    assert sum(map(len, expected)) > len(texts) and sum(1 for e in expected if len(e) > 3) > 100


def test_hash_collisions_are_checked_byte_by_byte(monkeypatch):
    """Long parts (> 7 bytes) are found by hash; with a hash of 8 values that collides all the time
    the byte comparison alone must keep the results exact."""
    from openwit.pipeline.candidates import match as match_module
    mix = match_module._mix
    monkeypatch.setattr(match_module, "_mix", lambda h: mix(h) & np.uint64(0b11100))
    queries = ["abcdefghijk", "cat", "x abcdefghijk y"]  # one long token: its key is unique for any seed
    rng = random.Random(3)
    words = ["".join(rng.choice("abcdefghijk") for _ in range(rng.choice([8, 11, 11, 11, 19]))) for _ in range(300)]
    texts = [" ".join(words[i:i + 5]) for i in range(0, 300, 5)] + [
        "abcdefghijk", "abcdefghijj cat", "x abcdefghijk y", "x abcdefghijkk y", "abcdefghijk.", "bbcdefghijk"]
    matcher = Matcher(queries)
    assert matcher.match_many(texts) == [naive_match(t, queries) for t in texts]
    assert matcher.match_many(texts[-6:]) == [[0], [1], [0, 2], [], [0], []]
    long = np.array([len(w) > 7 for w in words])
    keys = match_module._keys(match_module._words(np.frombuffer(" ".join(words).encode(), np.uint8)),
                              np.cumsum([0] + [len(w) + 1 for w in words[:-1]]), np.array(list(map(len, words))),
                              matcher._seed)[0]
    assert (matcher._vocab.get(keys)[long] >= 0).sum() > 20  # many hash hits, almost none real
