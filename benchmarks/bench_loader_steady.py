"""Steady CPU-ms per image of the loader's device path in this process, N epochs (a new loader each).

For A/B comparisons of loader changes on the same shards (benchmarks/bench_loader.py's 256 px set):
run it at one commit, then at the other, alternating, under `taskset -c 1`:

    taskset -c 1 .venv/bin/python benchmarks/bench_loader_steady.py --epochs 7 --label new
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_loader  # noqa: E402  (the shards and the CLIP vocabulary it uses)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=7)
    ap.add_argument("--label", default="")
    ap.add_argument("--default-path", action="store_true", help="the Pillow path instead of device_augment")
    ap.add_argument("--warm-tokenizer", action="store_true",
                    help="one tokenizer for every epoch, its word cache warmed by a first epoch that is not counted "
                         "(as in an epoch past its first ~100k captions); default: a new tokenizer per epoch")
    ap.add_argument("--ceiling", action="store_true", help="also time bench_loader's decode ceiling, alternating")
    args = ap.parse_args()
    import torch

    from openwit.loader import make_loader

    from openwit.loader.tokenizer import CaptionTokenizer

    torch.set_num_threads(1)
    urls = bench_loader.make_shards(2000)
    tokenizer = str(bench_loader.BPE)
    if args.warm_tokenizer:
        tokenizer = CaptionTokenizer.from_clip_bpe(tokenizer)
        for _ in make_loader(urls, 64, tokenizer=tokenizer, num_workers=0, device_augment=not args.default_path):
            pass
    per_image, ceiling, ceiling_sj = [], [], []
    for _ in range(args.epochs):
        if args.ceiling:
            c = bench_loader.decode_ceiling(urls)
            ceiling.append(c["cpu_seconds"] / c["images"] * 1e3)
            c = bench_loader.decode_ceiling(urls, "simplejpeg")
            ceiling_sj.append(c["cpu_seconds"] / c["images"] * 1e3)
        loader = make_loader(urls, 64, tokenizer=tokenizer, num_workers=0, device_augment=not args.default_path)
        start, images = time.process_time(), 0
        for x, _ in loader:
            images += len(x.pixels) if not args.default_path else x.shape[0]
        per_image.append((time.process_time() - start) / images * 1e3)
    print(f"{args.label} median {statistics.median(per_image):.3f} CPU-ms/image over {args.epochs} epochs: "
          + " ".join(f"{v:.3f}" for v in per_image))
    for name, values in (("Pillow", ceiling), ("simplejpeg", ceiling_sj)):
        if values:
            print(f"{name} decode ceiling median {statistics.median(values):.3f} CPU-ms/image: "
                  f"{statistics.median(values) / statistics.median(per_image):.2f} of its rate")


if __name__ == "__main__":
    main()
