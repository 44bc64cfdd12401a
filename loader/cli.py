"""`openwit-loader`: train a caption tokenizer on shards, encode text, inspect shards (counts, faults, speed).

    openwit-loader tokenizer train --shards 'out/{00000..00099}.tar' [--out out/tokenizer.json] [--vocab-size 32000]
    openwit-loader tokenizer encode --tokenizer out/tokenizer.json "a photo of a cat"
    openwit-loader inspect 'out/{00000..00099}.tar' [--batch-size 256] [--max-batches 50] [--num-workers 2]
        [--missing-shards error|skip]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

from openwit.common.errors import UserError, cli_main, setup_logging
from openwit.loader.samples import FaultLog, iter_shard
from openwit.loader.urls import expand_urls


def _captions(urls: list[str], limit: int | None, faults: FaultLog):
    samples = (s.caption for url in urls for s in iter_shard(url, faults))
    return itertools.islice(samples, limit) if limit else samples


def cmd_train(args) -> int:
    from openwit.loader.tokenizer import CaptionTokenizer

    urls = expand_urls(args.shards)
    out = args.out or os.path.join(os.path.dirname(urls[0]) or ".", "tokenizer.json")
    faults = FaultLog()
    tok = CaptionTokenizer.train(_captions(urls, args.max_captions, faults), vocab_size=args.vocab_size,
                                 min_frequency=args.min_frequency)
    tok.save(out)
    print(json.dumps({"out": out, "vocab_size": tok.vocab_size, "shards": len(urls), "faults": dict(faults.counts)}))
    return 0


def cmd_encode(args) -> int:
    from openwit.loader.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    for text in args.text:
        print(json.dumps(tok.encode(text)))
    return 0


def cmd_inspect(args) -> int:
    from openwit.loader.stream import make_loader

    loader = make_loader(args.urls, args.batch_size, image_size=args.image_size, num_workers=args.num_workers,
                         tokenizer=args.tokenizer, resampled=args.resampled, train=not args.eval,
                         missing_shards=args.missing_shards)
    counts = loader.dataset.counts
    report = {"shards": len(counts), "num_samples": loader.num_samples, "batches_per_epoch": len(loader),
              "samples_per_shard": {"min": min(counts.values()), "max": max(counts.values())}}
    start, images = time.perf_counter(), 0
    for images_batch, _ in itertools.islice(loader, args.max_batches):
        images += images_batch.shape[0]
    seconds = time.perf_counter() - start
    report.update(images_read=images, seconds=round(seconds, 3),
                  images_per_s=round(images / seconds, 1) if seconds else None, faults=dict(loader.faults))
    print(json.dumps(report, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="openwit-loader", description=__doc__.split("\n")[0])
    p.add_argument("--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    tokp = sub.add_parser("tokenizer", help="train or use a caption tokenizer")
    toks = tokp.add_subparsers(dest="tokenizer_command", required=True)
    t = toks.add_parser("train", help="byte-level BPE on the shards' captions → tokenizer.json")
    t.add_argument("--shards", required=True, help="shard URLs (braces, '::' lists, gs://, s3://, pipe:)")
    t.add_argument("--out", help="where to write tokenizer.json (default: beside the first shard)")
    t.add_argument("--vocab-size", type=int, default=32000)
    t.add_argument("--min-frequency", type=int, default=2)
    t.add_argument("--max-captions", type=int, default=None, help="train on at most this many captions")
    t.set_defaults(func=cmd_train)
    e = toks.add_parser("encode", help="print the ids of each TEXT")
    e.add_argument("--tokenizer", help="tokenizer.json or bpe_simple_vocab_16e6.txt.gz (default: see docs)")
    e.add_argument("text", nargs="+")
    e.set_defaults(func=cmd_encode)
    i = sub.add_parser("inspect", help="count samples and read batches: throughput and faults as JSON")
    i.add_argument("urls")
    i.add_argument("--batch-size", type=int, default=256)
    i.add_argument("--max-batches", type=int, default=20)
    i.add_argument("--num-workers", type=int, default=0)
    i.add_argument("--image-size", type=int, default=224)
    i.add_argument("--tokenizer")
    i.add_argument("--resampled", action="store_true")
    i.add_argument("--eval", action="store_true", help="eval transform (resize + centre crop), no shuffle")
    i.add_argument("--missing-shards", choices=("error", "skip"), default="error",
                   help="shards that do not exist: an error (default) or skipped with a warning")
    i.set_defaults(func=cmd_inspect)
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if getattr(args, "max_batches", 1) is not None and getattr(args, "max_batches", 1) < 1:
        raise UserError("--max-batches must be >= 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
