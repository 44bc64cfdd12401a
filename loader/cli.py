"""`openwit-loader`: train a caption tokenizer on shards, encode text, inspect shards (counts, faults, speed).

    openwit-loader tokenizer train --shards 'out/{00000..00099}.tar' [--out out/tokenizer.json] [--vocab-size 32000]
    openwit-loader tokenizer encode --tokenizer out/tokenizer.json "a photo of a cat"
    openwit-loader inspect 'out/{00000..00099}.tar' [--batch-size 256] [--max-batches 50] [--num-workers 2]
                           [--device-augment]
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
from openwit.common.version import add_version_flag
from openwit.loader.samples import FaultLog, iter_shard
from openwit.loader.urls import expand_urls

URLS_HELP = "shard URLs: brace patterns {00000..00099}, '::'-joined lists, local, gs://, s3://, pipe:"


def _captions(urls: list[str], limit: int | None, faults: FaultLog):
    samples = (s.caption for url in urls for s in iter_shard(url, faults))
    return itertools.islice(samples, limit) if limit else samples


def cmd_train(args) -> int:
    from openwit.loader.tokenizer import CaptionTokenizer

    urls = expand_urls(args.shards)
    out = args.out or os.path.join(os.path.dirname(urls[0]) or ".", "tokenizer.json")
    faults = FaultLog()
    seen = [0]

    def counted():
        for caption in _captions(urls, args.max_captions, faults):
            seen[0] += 1
            yield caption

    tok = CaptionTokenizer.train(counted(), vocab_size=args.vocab_size, min_frequency=args.min_frequency)
    if not seen[0]:  # nothing to learn from: say why instead of writing a bytes-only tokenizer
        why = ", ".join(f"{k} {v}" for k, v in sorted(faults.counts.items())) or "the shards hold no captions"
        raise UserError(f"no captions read from {len(urls)} shard(s) (first: {urls[0]}): {why}; "
                        f"no tokenizer written")
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
                         missing_shards=args.missing_shards, device_augment=args.device_augment)
    counts = loader.dataset.counts
    report = {"shards": len(counts), "num_samples": loader.num_samples, "batches_per_epoch": len(loader),
              "samples_per_shard": {"min": min(counts.values()), "max": max(counts.values())},
              "device_augment": args.device_augment}
    start, cpu, images = time.perf_counter(), time.process_time(), 0
    for images_batch, _ in itertools.islice(loader, args.max_batches):
        images += len(images_batch.sizes) if args.device_augment else images_batch.shape[0]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    report.update(images_read=images, seconds=round(seconds, 3),
                  images_per_s=round(images / seconds, 1) if seconds else None, faults=dict(loader.faults))
    if not args.num_workers:  # every decode ran in this process: its CPU time is the loader's
        report["cpu_ms_per_image"] = round(cpu / images * 1e3, 3) if images else None
    print(json.dumps(report, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="openwit-loader", description=__doc__.split("\n")[0])
    p.add_argument("--verbose", action="store_true", help="more logging")
    add_version_flag(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="{tokenizer,inspect}")
    tokp = sub.add_parser("tokenizer", help="train or use a caption tokenizer",
                          description="Train a caption tokenizer on shards, or print the token ids of a text.")
    toks = tokp.add_subparsers(dest="tokenizer_command", required=True, metavar="{train,encode}")
    t = toks.add_parser("train", help="byte-level BPE on the shards' captions → tokenizer.json",
                        description="Train a byte-level BPE on the successful captions of the shards (the "
                                    "same tokenizer openwit-build writes to OUT/tokenizer.json on local runs).")
    t.add_argument("--shards", required=True, metavar="URLS", help=URLS_HELP)
    t.add_argument("--out", metavar="FILE",
                   help="where to write tokenizer.json (default: tokenizer.json beside the first shard)")
    t.add_argument("--vocab-size", type=int, default=32000, metavar="N",
                   help="tokens in the vocabulary, at least 514 (default 32000)")
    t.add_argument("--min-frequency", type=int, default=2, metavar="N",
                   help="a merge must be seen at least N times (default 2)")
    t.add_argument("--max-captions", type=int, default=None, metavar="N",
                   help="train on the first N captions only (default: every caption)")
    t.set_defaults(func=cmd_train)
    e = toks.add_parser("encode", help="print the ids of each TEXT",
                        description="Print the token ids of each TEXT, one JSON list a line.")
    e.add_argument("--tokenizer", metavar="FILE",
                   help="tokenizer.json or CLIP's bpe_simple_vocab_16e6.txt.gz (default: $OPENWIT_TOKENIZER, "
                        "else $OPENWIT_CLIP_BPE, else an installed open_clip's CLIP vocabulary)")
    e.add_argument("text", nargs="+", metavar="TEXT", help="a caption to encode (quote it)")
    e.set_defaults(func=cmd_encode)
    i = sub.add_parser("inspect", help="count samples and read batches: throughput and faults as JSON",
                       description="Count the samples of the shards and read a few batches through make_loader: "
                                   "prints shards, samples, batches per epoch, images/s and faults as JSON.")
    i.add_argument("urls", metavar="URLS", help=URLS_HELP)
    i.add_argument("--batch-size", type=int, default=256, metavar="N", help="samples per batch (default 256)")
    i.add_argument("--max-batches", type=int, default=20, metavar="N",
                   help="read at most N batches for the speed figure (default 20)")
    i.add_argument("--num-workers", type=int, default=0, metavar="N",
                   help="loader worker processes; 0 reads in this process (default 0)")
    i.add_argument("--image-size", type=int, default=224, metavar="PX", help="image side after cropping (default 224)")
    i.add_argument("--tokenizer", metavar="FILE",
                   help="tokenizer.json or CLIP's bpe_simple_vocab_16e6.txt.gz (default: $OPENWIT_TOKENIZER, else "
                        "tokenizer.json beside the shards, else $OPENWIT_CLIP_BPE, else an installed open_clip's CLIP vocabulary)")
    i.add_argument("--resampled", action="store_true",
                   help="draw shards with replacement, as for training on a stream (default: split them into epochs)")
    i.add_argument("--eval", action="store_true",
                   help="evaluation transform (resize + centre crop), no shuffle (default: training transform)")
    i.add_argument("--device-augment", action="store_true",
                   help="read as a GPU trainer does by default: decode and crop only, uint8 batches, the resize "
                        "left to the device (default: the full CPU transform)")
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
