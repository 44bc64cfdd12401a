"""Loader throughput on one core: openwit.loader vs open_clip's get_wds_dataset, beside the JPEG-decode
ceiling; plus batch tokenization speed (captions/s, one core).

`openwit_device` is the loader with `device_augment=True` (issue 15): workers only decode and pick the
crop box, `DeviceTransform` resizes and normalises whole batches on the consumer's device; its CPU
cost here is the loading process's only. `openwit_device_mem` is the same with the shards' raw
samples read beforehand (the tar reader's share); `*_w2` run 2 DataLoader workers (CPU of all three
processes, same core). `device_resize` times `DeviceTransform` itself on this CPU (the work a GPU
takes over), per image; `--resize-methods` compares batched-resize candidates (accuracy against
Pillow on the real photos, CPU cost on 256 px crops). Each round runs every part once, alternating;
the summary gives medians (and bests) over rounds and the load average seen.

Same 256×256 JPEG shards for both (real photos from ../shared/data/images, random crops, quality 95,
LAION captions), both in train mode (random resized crop 224, CLIP normalisation, tokenization),
batch 64, no DataLoader workers, pinned to one CPU with taskset; rates are per CPU-second of the
process (steady on a shared box, where wall time is not). open_clip runs in its own venv:

    benchmarks/.venv-openclip/bin/pip install torch open-clip-torch "webdataset<=0.2.86" ftfy pyarrow
    .venv/bin/python benchmarks/bench_loader.py [--samples 2000] [--cpu 1] [--rounds 2] [--resize-methods]
"""
import argparse
import io
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / "work" / "loader256"
OPENCLIP_PY = ROOT / "benchmarks" / ".venv-openclip" / "bin" / "python"
BPE = DATA / "clip" / "bpe_simple_vocab_16e6.txt.gz"


def _photos() -> list[Image.Image]:
    paths = sorted((DATA / "images").glob("*/*.jpg")) + sorted((DATA / "images").glob("*/*.png"))
    return [Image.open(p).convert("RGB") for p in paths]


def make_shards(n: int, per_shard: int = 250) -> list[str]:
    """256×256 JPEG shards in the contract layout (members sorted, stats sidecar), made once."""
    WORK.mkdir(parents=True, exist_ok=True)
    n_shards = (n + per_shard - 1) // per_shard
    urls = [str(WORK / f"{i:05d}.tar") for i in range(n_shards)]
    if all(Path(u).exists() for u in urls):
        return urls
    rng = random.Random(0)
    photos = _photos()
    texts = [t for t in pq.read_table(DATA / "metadata" / "img2dataset_test_10000.parquet",
                                      columns=["TEXT"]).column("TEXT").to_pylist() if t]
    for shard, url in enumerate(urls):
        count = min(per_shard, n - shard * per_shard)
        with tarfile.open(url, "w") as tar:
            for i in range(count):
                img = rng.choice(photos)
                side = int(min(img.size) * rng.uniform(0.4, 1.0))
                left, top = rng.randint(0, img.width - side), rng.randint(0, img.height - side)
                crop = img.resize((256, 256), Image.BICUBIC, box=(left, top, left + side, top + side))
                buf = io.BytesIO()
                crop.save(buf, "JPEG", quality=95)
                key = f"{shard:05d}{i:04d}"
                for ext, data in (("jpg", buf.getvalue()), ("json", b"{}"), ("txt", rng.choice(texts).encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        Path(url[:-4] + "_stats.json").write_text(json.dumps({"count": count, "successes": count}))
    return urls


def decode_ceiling(urls: list[str], decoder: str = "pillow") -> dict:
    """Decode of every JPEG (bytes already in memory): the most a loader with that decoder could do.
    pillow: `Image.open(…).convert("RGB")` (the issue's ceiling); simplejpeg: libjpeg-turbo straight
    to an RGB array, what the device path itself uses for plain JPEGs (common/jpeg.py)."""
    import simplejpeg

    blobs = []
    for url in urls:
        with tarfile.open(url) as tar:
            blobs += [tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".jpg")]
    start, cpu = time.perf_counter(), time.process_time()
    if decoder == "simplejpeg":
        for b in blobs:
            simplejpeg.decode_jpeg(b, "RGB")
    else:
        for b in blobs:
            Image.open(io.BytesIO(b)).convert("RGB")
    return {"images": len(blobs), "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


def run_openwit(urls: list[str], batch: int, device_augment: bool = False, workers: int = 0,
                in_memory: bool = False) -> dict:
    """One epoch; CPU time of this process plus its DataLoader workers (joined at the epoch's end).
    `in_memory`: the shards' raw samples are read beforehand (what the loader costs without its tar reader)."""
    import torch

    from openwit.loader import dataset, make_loader
    from openwit.loader.samples import FaultLog, iter_shard

    torch.set_num_threads(1)
    if in_memory:
        cache = {u: list(iter_shard(u, FaultLog())) for u in urls}

        def cached(url, faults):
            yield from cache[url]

        dataset.iter_shard = cached
    loader = make_loader(urls, batch, tokenizer=str(BPE), num_workers=workers, device_augment=device_augment)
    start, cpu, images = time.perf_counter(), _cpu_with_children(), 0
    for x, _ in loader:
        images += len(x.pixels) if device_augment else x.shape[0]
    return {"images": images, "seconds": time.perf_counter() - start, "cpu_seconds": _cpu_with_children() - cpu}


def _cpu_with_children() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def device_resize(urls: list[str], batch: int) -> dict:
    """DeviceTransform on this CPU (one thread) over one epoch's PixelBatches, loaded beforehand."""
    import torch

    from openwit.loader import DeviceTransform, make_loader

    torch.set_num_threads(1)
    batches = [x for x, _ in make_loader(urls, batch, tokenizer=str(BPE), device_augment=True)]
    transform = DeviceTransform(224)
    transform(batches[0])  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for x in batches:
        transform(x)
    return {"images": sum(len(x.pixels) for x in batches), "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu}


def resize_methods() -> dict:
    """Batched-resize candidates against Pillow's `resize(box=…)` (the default path's train transform).

    Accuracy: mean/max absolute difference in 0..255 levels over the 27 real photos (train boxes,
    224 px, as decoded). Cost: CPU ms per image, one thread, 64 random crops of 256 px images → 224.
    - matmul: `DeviceTransform` (Pillow's weights, two batched matmuls; one call per batch; timed on
      the packed uint8 batch, as the workers hand it over);
    - interpolate: `F.interpolate(bicubic, antialias=True)` per crop (float32, and uint8 input);
    - grid_sample: bicubic with per-sample affine grids, one call per batch (no antialiasing).
    """
    import torch
    import torch.nn.functional as F

    from openwit.loader.device import DeviceTransform, crop_for_device, pack
    from openwit.loader.transforms import CLIP_MEAN, CLIP_STD, random_resized_crop_box

    torch.set_num_threads(1)
    size = 224
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255

    def matmul(batch):
        return DeviceTransform(size)(batch) * std + mean

    def packed(arrays, boxes):  # the workers' share: slices around the boxes (no reduce here), padded
        return pack([crop_for_device(Image.fromarray(a), size, b, reducing_gap=math.inf) for a, b in zip(arrays, boxes)])

    def interp(arrays, boxes, dtype=torch.float32):
        out = []
        for a, (left, top, right, bottom) in zip(arrays, boxes):
            crop = torch.from_numpy(np.ascontiguousarray(a[top:bottom, left:right])).permute(2, 0, 1)[None]
            out.append(F.interpolate(crop.to(dtype), size=(size, size), mode="bicubic", antialias=True).float())
        return torch.cat(out).round().clamp(0, 255)

    def grid_sample(arrays, boxes):
        b, h, w = len(arrays), max(a.shape[0] for a in arrays), max(a.shape[1] for a in arrays)
        x = torch.zeros(b, 3, h, w)
        for i, a in enumerate(arrays):
            x[i, :, : a.shape[0], : a.shape[1]] = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
        box = torch.tensor(boxes, dtype=torch.float32)
        centres = (torch.arange(size) + 0.5) / size
        gx = (box[:, :1] + centres * (box[:, 2:3] - box[:, :1])) * 2 / w - 1
        gy = (box[:, 1:2] + centres * (box[:, 3:4] - box[:, 1:2])) * 2 / h - 1
        grid = torch.stack([gx[:, None, :].expand(b, size, size), gy[:, :, None].expand(b, size, size)], -1)
        return F.grid_sample(x, grid, mode="bicubic", align_corners=False, padding_mode="border").round().clamp(0, 255)

    methods = {"matmul (DeviceTransform)": (matmul, packed), "interpolate float32 per crop": (interp, None),
               "interpolate uint8 per crop": (lambda a, b: interp(a, b, torch.uint8), None),
               "grid_sample": (grid_sample, None)}
    rng = random.Random(0)
    photos = [np.asarray(p) for p in _photos()]
    boxes = [random_resized_crop_box(a.shape[1], a.shape[0], rng) for a in photos]
    ref = torch.stack([torch.from_numpy(np.array(Image.fromarray(a).resize((size, size), Image.BICUBIC, box=b)))
                       for a, b in zip(photos, boxes)]).permute(0, 3, 1, 2).float()
    small = [np.asarray(p.resize((256, 256), Image.BICUBIC)) for p in _photos()]
    crops = [small[i % len(small)] for i in range(64)]
    crop_boxes = [random_resized_crop_box(256, 256, rng) for _ in crops]
    out = {}
    for name, (fn, prepare) in methods.items():
        call = (lambda a, b: fn(prepare(a, b))) if prepare else fn
        diff = (call(photos, boxes) - ref).abs()
        args = (prepare(crops, crop_boxes),) if prepare else (crops, crop_boxes)
        times = []
        for _ in range(3):
            cpu = time.process_time()
            fn(*args)
            times.append(time.process_time() - cpu)
        out[name] = {"mad_levels": round(float(diff.mean()), 5), "max_levels": float(diff.max()),
                     "cpu_ms_per_image": round(sorted(times)[1] / len(crops) * 1e3, 3)}
    return out


def tokenizer_speed() -> dict:
    from openwit.loader.tokenizer import CaptionTokenizer

    tok = CaptionTokenizer.from_clip_bpe(str(BPE))
    caps = [t or "" for t in pq.read_table(DATA / "metadata" / "img2dataset_test_10000.parquet",
                                           columns=["TEXT"]).column("TEXT").to_pylist()]
    cold = _timed(tok, caps)  # every word new: all of them go through the Rust BPE
    warm = min(_timed(tok, caps) for _ in range(3))  # word cache warm, as after the first batches
    return {"captions": len(caps), "cold_per_cpu_s": len(caps) / cold, "warm_per_cpu_s": len(caps) / warm}


def _timed(tok, caps) -> float:
    start = time.process_time()
    tok(caps)
    return time.process_time() - start


def _self(part: str, urls, args) -> dict:
    """Run one part in a fresh process pinned to one CPU (so imports and caches start cold)."""
    cmd = ["taskset", "-c", str(args.cpu), sys.executable, __file__, "--part", part,
           "--samples", str(args.samples), "--batch-size", str(args.batch_size)]
    env = dict(os.environ, RAYON_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cpu", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--parts", default="ceiling,ceiling_sj,openwit_device,openwit,open_clip,openwit_device_mem,device_resize",
                   help="comma-separated, run in this order each round")
    p.add_argument("--resize-methods", action="store_true", help="also compare batched-resize candidates")
    p.add_argument("--part", choices=["openwit", "openwit_device", "device_resize", "ceiling", "ceiling_sj", "tokenizer",
                                      "resize_methods", "openwit_w2", "openwit_device_w2", "openwit_device_mem"])
    args = p.parse_args()
    urls = make_shards(args.samples)
    if args.part:
        fn = {"openwit": lambda: run_openwit(urls, args.batch_size),
              "openwit_device": lambda: run_openwit(urls, args.batch_size, device_augment=True),
              "openwit_device_mem": lambda: run_openwit(urls, args.batch_size, device_augment=True, in_memory=True),
              "openwit_w2": lambda: run_openwit(urls, args.batch_size, workers=2),
              "openwit_device_w2": lambda: run_openwit(urls, args.batch_size, device_augment=True, workers=2),
              "device_resize": lambda: device_resize(urls, args.batch_size),
              "ceiling": lambda: decode_ceiling(urls), "ceiling_sj": lambda: decode_ceiling(urls, "simplejpeg"),
              "tokenizer": tokenizer_speed,
              "resize_methods": resize_methods}[args.part]
        print(json.dumps(fn()))
        return
    rates: dict = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):  # alternate; report each side's median and best: the box is shared and noisy
        for name in args.parts.split(","):
            if name == "open_clip":
                cmd = ["taskset", "-c", str(args.cpu), str(OPENCLIP_PY), str(ROOT / "benchmarks" / "bench_loader_openclip.py"),
                       "--urls", "::".join(urls), "--num-samples", str(args.samples), "--batch-size", str(args.batch_size)]
                r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                              env=dict(os.environ, OMP_NUM_THREADS="1")).stdout.strip().splitlines()[-1])
            else:
                r = _self(name, urls, args)
            rate = r["images"] / r["cpu_seconds"]  # per core: CPU time is what a shared box can't distort
            rates.setdefault(name, []).append(rate)
            load.append(os.getloadavg()[0])
            print(f"{name:14s} {r['images']:6d} images, {r['seconds']:6.2f} s wall, {r['cpu_seconds']:6.2f} s CPU"
                  f" = {rate:7.1f} images per CPU-second ({1e3 / rate:.3f} CPU-ms per image), load {load[-1]:.1f}",
                  flush=True)
    median = {k: statistics.median(v) for k, v in rates.items()}
    summary = {"images_per_cpu_s_median": {k: round(v, 1) for k, v in median.items()},
               "images_per_cpu_s_best": {k: round(max(v), 1) for k, v in rates.items()},
               "rounds": args.rounds, "load_average_1min": {"min": min(load), "median": statistics.median(load),
                                                           "max": max(load)}}
    for a, b in (("openwit", "open_clip"), ("openwit", "ceiling"), ("openwit_device", "open_clip"),
                 ("openwit_device", "ceiling"), ("openwit_device", "ceiling_sj"), ("openwit_device", "openwit"),
                 ("openwit_device_mem", "ceiling"), ("openwit_w2", "ceiling"),
                 ("openwit_device_w2", "ceiling"), ("openwit_device_w2", "open_clip"), ("openwit_device_w2", "openwit_w2")):
        if a in median and b in median:
            summary[f"{a}_vs_{b}"] = round(median[a] / median[b], 2)
    if "device_resize" in median:
        summary["device_resize_cpu_ms_per_image"] = round(1e3 / median["device_resize"], 3)
    summary["tokenizer_captions_per_cpu_s"] = {k: round(v) for k, v in _self("tokenizer", urls, args).items()}
    if args.resize_methods:
        summary["resize_methods"] = _self("resize_methods", urls, args)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
