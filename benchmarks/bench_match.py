"""Matching speed: openwit's batched matcher vs MetaCLIP's own pyahocorasick matcher, side by side.

Same ~500k-entry list, same texts, one process, one core. The entry list is WordNet 3.0's 86,654
MetaCLIP entries (numerals + first lemma per synset) + unigrams and bigrams seen ≥5 times in the LAION captions,
topped up with deterministic WordNet lemma pairs to 500,000. The texts are the 10,000 real LAION
captions of the shared sample data, repeated.

MetaCLIP's matcher is loaded unchanged from a path outside the repository (never committed):

    mkdir -p benchmarks/work/metaclip && curl -o benchmarks/work/metaclip/substr_matching.py \\
      https://raw.githubusercontent.com/facebookresearch/MetaCLIP/main/metaclip/substr_matching.py
    .venv/bin/python benchmarks/bench_match.py --repeat 2 --rounds 5
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import random
import time
from collections import Counter

import pyarrow.parquet as pq

from openwit.pipeline.candidates import Matcher
from openwit.pipeline.candidates.spacing import spaced

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data")
MIN_GRAM_COUNT = 5  # caption uni/bigrams seen this often join the list (like a corpus count cut)


def wordnet_entries(wordnet_dir: str) -> list[str]:
    """Numerals 0..99 + first lemma of each synset (lowercased, cut at '.', '_' → ' '), unique."""
    out = dict.fromkeys(str(i) for i in range(100))
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(wordnet_dir, f"data.{pos}"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                word = line.split(" ", 5)[4]
                word = word[:word.index("(")] if word.endswith(")") else word  # adjective marker: galore(ip)
                lemma = word.lower().split(".")[0].replace("_", " ")
                if lemma:
                    out.setdefault(lemma)
    return list(out)


def entry_list(wordnet: list[str], captions: list[str], size: int) -> list[str]:
    out = dict.fromkeys(wordnet)
    grams = Counter()
    for c in captions:
        toks = [t for t in spaced(c).split(" ") if t]
        grams.update(toks)
        grams.update(f"{a} {b}" for a, b in zip(toks, toks[1:]))
    out.update(dict.fromkeys(g for g, n in sorted(grams.items()) if n >= MIN_GRAM_COUNT))
    rng = random.Random(0)
    while len(out) < size:
        out.setdefault(f"{rng.choice(wordnet)} {rng.choice(wordnet)}")
    return list(out)[:size]


def load_metaclip(path: str):
    spec = importlib.util.spec_from_file_location("metaclip_substr_matching", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metaclip", default=os.path.join(HERE, "work", "metaclip", "substr_matching.py"))
    ap.add_argument("--wordnet-dir", default="/usr/share/wordnet")
    ap.add_argument("--size", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=2, help="times the 10,000 captions are repeated")
    ap.add_argument("--batch", type=int, default=20_000, help="texts per match_many call (the pipeline's batch)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    captions = [c or "" for c in pq.read_table(
        os.path.join(DATA, "metadata", "img2dataset_test_10000.parquet"), columns=["TEXT"]).column(0).to_pylist()]
    entries = entry_list(wordnet_entries(args.wordnet_dir), captions, args.size)
    texts = captions * args.repeat
    print(f"entries: {len(entries):,}  texts: {len(texts):,}  mean chars: {sum(map(len, texts)) / len(texts):.1f}")

    metaclip = load_metaclip(args.metaclip)
    t0 = time.process_time()
    metaclip.substr_matching("warm up", entries)  # builds its automaton on first call
    t_build_m = time.process_time() - t0
    t0 = time.process_time()
    matcher = Matcher(entries)
    t_build_o = time.process_time() - t0

    def run_metaclip():
        return [metaclip.substr_matching(t, entries) for t in texts]

    def run_openwit():
        out = []
        for i in range(0, len(texts), args.batch):
            out.extend(matcher.match_many(texts[i:i + args.batch]))
        return out

    best = {"metaclip": float("inf"), "openwit": float("inf")}
    for _ in range(args.rounds):  # interleaved rounds, best CPU time of each (robust to a busy box)
        for name, fn in (("metaclip", run_metaclip), ("openwit", run_openwit)):
            t0 = time.process_time()
            result = fn()
            best[name] = min(best[name], time.process_time() - t0)
            if name == "metaclip":
                ref = result
            else:
                assert [sorted(r) for r in ref] == result, "openwit and MetaCLIP disagree"
    matches = sum(map(len, ref))
    print(f"matches/text: {matches / len(texts):.2f}  texts with a match: "
          f"{sum(1 for r in ref if r) / len(texts):.1%}  (identical results: yes)")
    print(f"automaton build (CPU s): metaclip {t_build_m:.1f}  openwit {t_build_o:.1f}")
    print(f"metaclip substr_matching  : {len(texts) / best['metaclip']:>10,.0f} texts/s per core")
    print(f"openwit Matcher.match_many: {len(texts) / best['openwit']:>10,.0f} texts/s per core")
    print(f"ratio openwit / metaclip  : {best['metaclip'] / best['openwit']:.2f}x "
          f"(best of {args.rounds} interleaved rounds, CPU time)")


if __name__ == "__main__":
    main()
