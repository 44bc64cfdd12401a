"""`make demo`: openwit's whole road, offline, on data the project makes itself.

1. a small Wikipedia dump + pageviews generated from WordNet glosses → `openwit-queries`
2. a little web of generated images (served on 127.0.0.1) with captions → `openwit-build`
   (extract → match → balance → fetch → resize → shards → report → tokenizer.json, a byte-level
   BPE trained on the captions)
3. one epoch of `openwit.loader` over the shards.

Nothing is read from ../shared: WordNet comes from Debian's wordnet-base, the photo from matplotlib.
`--out` is made fresh, but only ever deleted when it is an earlier demo output (it holds the
`.openwit-demo` marker the demo writes first); any other non-empty folder is refused.
"""
from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
import time

from openwit.common import layout
from openwit.common.errors import UserError, cli_main
from openwit.demo import web, wiki
from openwit.pipeline import cli as build_cli
from openwit.queries import cli as queries_cli


MARKER = ".openwit-demo"


def prepare_out(out: str) -> None:
    """Create `out`, or empty it when an earlier demo wrote it; refuse anything else (one UserError)."""
    if not out.strip():
        raise UserError("--out (DEMO_OUT) must name a folder")
    if os.path.islink(out) or (os.path.exists(out) and not os.path.isdir(out)):
        raise UserError(f"--out {out} is not a folder (a file or a link); choose another DEMO_OUT / --out")
    if os.path.isdir(out) and os.listdir(out):
        try:
            marked = stat.S_ISREG(os.lstat(os.path.join(out, MARKER)).st_mode)
        except FileNotFoundError:
            marked = False
        if not marked:
            raise UserError(f"{out} is not empty and not an earlier demo output (no {MARKER} in it): the demo "
                            f"will not delete it; choose another DEMO_OUT / --out, or empty it yourself")
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, MARKER), "w") as f:
        f.write("written by the openwit demo: the next demo run into this folder deletes it first\n")


def _step(n: int, text: str) -> float:
    print(f"\n== demo step {n}: {text}", flush=True)
    return time.time()


def _done(t0: float) -> None:
    print(f"   ({time.time() - t0:.1f} s)", flush=True)


def run_queries(out: str, wordnet_dir: str) -> str:
    inputs = os.path.join(out, "inputs")
    dump = wiki.write_demo_dump(os.path.join(inputs, "demowiki-pages-articles.xml.bz2"), wordnet_dir)
    views = wiki.write_demo_pageviews(os.path.join(inputs, "pageviews-20240101-000000"), wordnet_dir)
    qdir = os.path.join(out, "queries")
    rc = queries_cli.main(["--out", qdir, "--wiki-dump", dump, "--pageviews", views,
                           "--wordnet-dir", wordnet_dir, "--min-unigram-count", "5"])
    if rc:
        raise UserError(f"openwit-queries failed (exit {rc})")
    return qdir


def run_build(out: str, qdir: str, server_url: str, pairs: list[tuple[str, str]], max_per_query: int) -> str:
    table = web.write_caption_table(os.path.join(out, "inputs", "captions.parquet"), server_url, pairs)
    dataset = os.path.join(out, "dataset")
    rc = build_cli.main(["--queries", qdir, "--input", table, "--out", dataset,
                         "--samples-per-shard", "64", "--image-size", "128",
                         "--max-per-query", str(max_per_query), "--allow-private-addresses",
                         "--tokenizer-vocab-size", "600"])
    if rc:
        raise UserError(f"openwit-build failed (exit {rc})")
    return dataset


def run_loader(dataset: str) -> tuple[int, tuple, tuple, int]:
    import torch

    from openwit.loader import CaptionTokenizer, make_loader

    shards = [layout.shard_path(dataset, s.shard, layout.TAR) for s in layout.list_shards(dataset)[0]]
    if not shards:
        raise UserError(f"no shards written in {dataset}")
    tok = CaptionTokenizer.from_file(layout.tokenizer_path(dataset))  # openwit-build trained it
    loader = make_loader(shards, batch_size=16, image_size=128, seed=0)  # finds that tokenizer.json itself
    n, shape_i, shape_t = 0, (), ()
    for images, tokens in loader:
        assert images.dtype == torch.float32 and tokens.shape[1] == 77
        assert int(tokens.max()) < tok.vocab_size  # the dataset's own tokenizer, not another default
        n, shape_i, shape_t = n + 1, tuple(images.shape), tuple(tokens.shape)
    return n, shape_i, shape_t, tok.vocab_size


@cli_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m openwit.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo-out",
                    help=f"output folder, made fresh (deleted first only when an earlier demo wrote it: {MARKER})")
    ap.add_argument("--wordnet-dir", default=os.environ.get("OPENWIT_WORDNET_DIR", "/usr/share/wordnet"))
    ap.add_argument("--max-per-query", type=int, default=20,
                    help="balancing cap t for the demo's small pool (CLIP/MetaCLIP: 20,000)")
    args = ap.parse_args(argv)
    prepare_out(args.out)
    start = time.time()

    t0 = _step(1, "query list from a generated Wikipedia dump + WordNet (openwit-queries)")
    qdir = run_queries(args.out, args.wordnet_dir)
    _done(t0)

    t0 = _step(2, "candidates → match → balance → fetch → shards → report (openwit-build)")
    site = os.path.join(args.out, "inputs", "www")
    pairs = web.write_site(site)
    with web.SiteServer(site) as server:
        print(f"   serving {len(pairs)} generated images (a few broken on purpose) at {server.url}", flush=True)
        dataset = run_build(args.out, qdir, server.url, pairs, args.max_per_query)
    _done(t0)

    t0 = _step(3, "one epoch of openwit.loader (tokenizer.json: BPE openwit-build trained on the captions)")
    n, shape_i, shape_t, vocab = run_loader(dataset)
    print(f"   {n} batches: images {shape_i} float32, tokens {shape_t}; tokenizer vocabulary {vocab}")
    _done(t0)

    print(f"\ndemo done in {time.time() - start:.0f} s. Look at:\n"
          f"  {qdir}/summary.json, {qdir}/queries.txt\n"
          f"  {dataset}/query_counts.parquet, {dataset}/00000.tar (+ .parquet, _stats.json)\n"
          f"  {dataset}/report/report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
