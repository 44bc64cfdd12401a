"""`make demo`: openwit's whole road, offline, on data the project makes itself.

1. a small Wikipedia dump + pageviews generated from WordNet glosses → `openwit-queries`
2. a web site on a loopback proxy (site.py, web.py): gallery pages of drawn pictures, a museum
   page in windows-1252, a page of pictures that fail in every way; crawled into a WARC
   (crawl.py) → `openwit-build` through the proxy (extract → match → balance → fetch → resize →
   shards → report → tokenizer.json)
3. `openwit-train` a tiny CLIP (tiny-vit) on the shards but one, for a few minutes on the CPU
4. `openwit-eval`: zero-shot on held-out drawings (shapes, colours) next to chance, and retrieval
   on the held-out shard

Nothing is read from ../shared: WordNet comes from Debian's wordnet-base, the photos from matplotlib.
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
from openwit.demo import crawl, draw, site, train, web, wiki
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


def make_warc(out: str, proxy: str, www: str, n_pictures: int) -> tuple[str, site.Site]:
    """Write the site under `www` and crawl its pages through `proxy` into OUT/inputs/crawl.warc.gz."""
    pages = site.write_site(www, n_pictures)
    warc = crawl.crawl_to_warc(proxy, pages.pages, os.path.join(out, "inputs", "crawl.warc.gz"))
    return warc, pages


def run_build(out: str, qdir: str, warc: str, proxy: str, max_per_query: int, samples_per_shard: int) -> str:
    dataset = os.path.join(out, "dataset")
    rc = build_cli.main(["--queries", qdir, "--input", warc, "--out", dataset, "--proxy", proxy,
                         "--samples-per-shard", str(samples_per_shard), "--max-per-query", str(max_per_query),
                         "--image-size", str(train.IMAGE_SIZE), "--resize-mode", "center_crop",
                         "--min-image-size", "16", "--timeout", "3", "--retries", "1",
                         "--tokenizer-vocab-size", "1000"])
    if rc:
        raise UserError(f"openwit-build failed (exit {rc})")
    return dataset


@cli_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m openwit.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo-out",
                    help=f"output folder, made fresh (deleted first only when an earlier demo wrote it: {MARKER})")
    ap.add_argument("--wordnet-dir", default=os.environ.get("OPENWIT_WORDNET_DIR", "/usr/share/wordnet"))
    ap.add_argument("--pictures", type=int, default=2000, help="drawn pictures on the site (default 2000)")
    ap.add_argument("--max-per-query", type=int, default=150,
                    help="balancing cap t for the demo's small pool (CLIP/MetaCLIP: 20,000) (default 150)")
    ap.add_argument("--samples-per-shard", type=int, default=200, help="(default 200)")
    ap.add_argument("--epochs", type=int, default=12, help="training epochs (default 12: ~2.5 minutes on 2 quiet cores)")
    ap.add_argument("--held-out-per-class", type=int, default=30, help="zero-shot pictures per class (default 30)")
    args = ap.parse_args(argv)
    if args.pictures < 1 or args.epochs < 1 or args.held_out_per_class < 1:
        raise UserError("--pictures, --epochs and --held-out-per-class must be at least 1")
    prepare_out(args.out)
    out = os.path.abspath(args.out)
    start = time.time()

    t0 = _step(1, "query list from a generated Wikipedia dump + WordNet (openwit-queries)")
    qdir = run_queries(out, args.wordnet_dir)
    _done(t0)

    t0 = _step(2, "a web site crawled into a WARC → openwit-build: candidates → balance → fetch → shards → report")
    with web.DemoWeb(os.path.join(out, "inputs", "www")) as net:
        warc, pages = make_warc(out, net.proxy, os.path.join(out, "inputs", "www"), args.pictures)
        print(f"   crawled {len(pages.pages)} pages ({len(pages.images)} <img> tags) through the demo's proxy "
              f"{net.proxy} into {warc}", flush=True)
        dataset = run_build(out, qdir, warc, net.proxy, args.max_per_query, args.samples_per_shard)
    _done(t0)

    t0 = _step(3, f"openwit-train {train.MODEL} on the shards but the last ({args.epochs} epochs, CPU)")
    train_shards, held_out_shard = train.split_shards(dataset)
    run = os.path.join(out, "run")
    result = train.train(train_shards, run, args.epochs)
    _done(t0)

    t0 = _step(4, "openwit-eval: zero-shot on held-out drawings, retrieval on the held-out shard")
    zs = os.path.join(out, "zeroshot")
    for task in draw.TASKS:
        draw.held_out(zs, task, args.held_out_per_class)
    results = train.evaluate(run, zs, held_out_shard)
    _done(t0)

    from openwit.trainer.checkpoint import resolve
    report = os.path.join(layout.report_dir(dataset), "report.html")
    print(f"\ndemo done in {time.time() - start:.0f} s. Made, under {out}:\n"
          f"  queries/      the query list (queries.parquet, queries.txt, summary.json)\n"
          f"  inputs/       the site (www/), its crawl ({os.path.basename(warc)}), the Wikipedia dump\n"
          f"  dataset/      shards 00000.tar … (+ .parquet, _stats.json), candidates/, tokenizer.json, report/\n"
          f"  run/          the trained {train.MODEL} (checkpoints/, metrics.jsonl)\n"
          f"  zeroshot/     the held-out drawings, one folder per class, and their prompts\n"
          f"Open first: {report}\n"
          f"checkpoint: {resolve(run)} (step {result.get('step', '?')}, loss {result.get('loss', float('nan')):.3f})\n"
          + train.table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
