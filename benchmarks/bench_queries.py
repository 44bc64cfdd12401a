"""Query-list stage speed on the real enwiki excerpt: XML MB/s per core, and time at 1×/2×/4× input.

Side by side with gensim's WikiCorpus (the tool people use to tokenize a Wikipedia dump; it runs
from its own venv, benchmarks/.venv-gensim, one process). Both read the same bz2 file; MB are of
uncompressed XML. openwit is timed as the whole Beam pipeline (FnApiRunner, in this process) and
as its pure core alone (read + strip + tokenize + count, no Beam). MB/s per core is computed from
CPU seconds (process time), which a busy shared machine disturbs far less than wall time.

    python3 -m venv benchmarks/.venv-gensim && benchmarks/.venv-gensim/bin/pip install gensim
    .venv/bin/python benchmarks/bench_queries.py [--dump PATH] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from openwit.queries import wikitext
from openwit.queries.cli import main as queries_main
from openwit.queries.dump import Task, read_task

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DUMP = ROOT.parent / "shared/data/wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
GENSIM_PY = ROOT / "benchmarks/.venv-gensim/bin/python"
GENSIM_CODE = """
import os, sys, time, logging
from gensim.corpora.wikicorpus import WikiCorpus
def cpu():  # this process + its reaped children: WikiCorpus tokenizes in a multiprocessing pool
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
t = cpu()
wc = WikiCorpus(sys.argv[1], dictionary={}, processes=1)
n = sum(len(tokens) for tokens in wc.get_texts())
print(n, cpu() - t)
"""


def core_only(dump: str) -> tuple[float, int, int]:
    """CPU seconds, XML bytes and tokens for the pure core (no Beam)."""
    t = time.process_time()
    stats: dict = {}
    uni, bi, n = Counter(), Counter(), 0
    for page in read_task(Task(dump), stats):
        if page.ns or page.redirect:
            continue
        for run in wikitext.runs(wikitext.strip_markup(page.text)):
            uni.update(run)
            bi.update(f"{a} {b}" for a, b in zip(run, run[1:]))
            n += len(run)
    return time.process_time() - t, stats["xml_bytes"], n


def pipeline(dump: str, copies: int, sources: str) -> tuple[float, dict]:
    """CPU seconds, wall seconds and summary of one run with the dump passed `copies` times."""
    with tempfile.TemporaryDirectory() as out:
        args = ["--out", out, "--wiki-dump", *([dump] * copies), "--sources", sources,
                "--min-unigram-count", "5", "--size", "500000"]
        t, w = time.process_time(), time.perf_counter()
        assert queries_main(args) == 0
        cpu, wall = time.process_time() - t, time.perf_counter() - w
        return cpu, wall, json.loads(Path(out, "summary.json").read_text())


def gensim(dump: str) -> tuple[float, int] | None:
    if not GENSIM_PY.exists():
        return None
    out = subprocess.run([str(GENSIM_PY), "-c", GENSIM_CODE, dump], capture_output=True, text=True, check=True)
    tokens, seconds = out.stdout.split()
    return float(seconds), int(tokens)


def best(fn, repeat):
    runs = [fn() for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", default=str(DEFAULT_DUMP))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"cpu cores: {os.cpu_count()}, dump: {args.dump}")
    core_s, xml_bytes, tokens = best(lambda: core_only(args.dump), args.repeat)
    mb = xml_bytes / 1e6
    print(f"openwit core (no Beam):     {core_s:6.2f} s CPU  {mb / core_s:6.2f} MB/s/core  {tokens:,} tokens")
    times = {}
    for copies in (1, 2, 4):
        s, wall, summary = best(lambda: pipeline(args.dump, copies, "unigram,bigram"), args.repeat)
        times[copies] = s
        assert summary["read"]["xml_bytes"] == copies * xml_bytes
        print(f"openwit pipeline {copies}× input: {s:6.2f} s CPU ({wall:5.2f} s wall)  "
              f"{copies * mb / s:6.2f} MB/s/core (unigram,bigram; FnApiRunner)")
    print(f"growth: 2×/1× = {times[2] / times[1]:.2f}, 4×/2× = {times[4] / times[2]:.2f}; "
          f"marginal {2 * mb / (times[4] - times[2]):.2f} MB/s/core (fixed cost ≈ {2 * times[1] - times[2]:.1f} s CPU)")
    s_all, wall, _ = best(lambda: pipeline(args.dump, 1, "numeral,wordnet,unigram,bigram,title"), args.repeat)
    print(f"openwit pipeline, all sources 1×: {s_all:6.2f} s CPU ({wall:5.2f} s wall)")
    g = best(lambda: gensim(args.dump), args.repeat) if GENSIM_PY.exists() else None
    if g is None:
        print("gensim: not installed (benchmarks/.venv-gensim); skipped")
        return
    print(f"gensim WikiCorpus (1 proc): {g[0]:6.2f} s CPU  {mb / g[0]:6.2f} MB/s/core  {g[1]:,} tokens")
    print(f"ratio openwit core / gensim speed: {g[0] / core_s:.2f}×; "
          f"openwit pipeline 1× / gensim: {g[0] / times[1]:.2f}×")


if __name__ == "__main__":
    sys.exit(main())
