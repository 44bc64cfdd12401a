"""JPEG decode paths for shrinking: speed and quality of full decode vs `draft` at ≥2× / ≥1× the target.

Each path decodes a JPEG and area-resamples (BOX, as openwit does) to the 256 px target:
  full      full decode + area                       (the exact path)
  margin 2  `draft` (DCT scaling 1/2, 1/4, 1/8) to ≥ 2× the target, then area  (openwit ≤ issue 11)
  margin 1  `draft` to ≥ 1× the target, then area                              (`--decode-margin 1`)
and is compared with a full-resolution reference: full decode, each channel area-averaged in
floating point (Pillow BOX on mode F: the exact area average, no rounding), i.e. what the shard's
resampling means. Reported per path: ms per image (decode + resize, one thread, best of rounds),
PSNR, SSIM (luma, 11×11 Gaussian σ 1.5) and mean absolute difference (0..255; in brackets the worst
image's) against the reference. The q95 JPEG encode that follows in a shard is measured the same
way (its output against its own input), as the yardstick: an error well below it is invisible in
the shards.

Workloads (each photo as JPEG q90 at long sides 640…1600 px, like web photos):
  web      the real photos of ../shared/data/images resized to those sizes (benchmarks/bench_download.py
           --photo-size web serves exactly these): upscaled small originals, so smooth
  tiled    the same photos tiled, not resampled, to those sizes: every pixel at native detail
           (textures such as gravel and grass tiled to 1600 px): the hard case for DCT scaling

    .venv/bin/python benchmarks/bench_decode.py [--image-size 256] [--mode keep_ratio] [--rounds 3]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_download import WORK, shared_photos, web_sides, web_sized_copies  # noqa: E402

from openwit.pipeline.images.ops import plan_resize  # noqa: E402


def tiled_copies() -> list[Path]:
    """Each photo tiled (no resampling) to the web sizes, saved as JPEG q90."""
    out = WORK.parent / "photos" / "tiled" / "jpg"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, src in enumerate(shared_photos()):
        im = Image.open(src).convert("RGB")
        for side in web_sides(i):
            w, h = (side, side * 3 // 4) if im.width >= im.height else (side * 3 // 4, side)
            path = out / f"{src.stem}_{side}.jpg"
            if not path.exists():
                canvas = Image.new("RGB", (w, h))
                for x in range(0, w, im.width):
                    for y in range(0, h, im.height):
                        canvas.paste(im, (x, y))
                canvas.save(path, quality=90)
            paths.append(path)
    return paths


def target_of(size: tuple[int, int], image_size: int, mode: str) -> tuple[int, int]:
    target, _ = plan_resize(size[0], size[1], mode, image_size, False)
    return target


def decode(raw: bytes, target: tuple[int, int], margin: int | None) -> Image.Image:
    """One path: margin None = full decode; else draft to ≥ margin × target. Then RGB + area."""
    im = Image.open(io.BytesIO(raw))
    if margin is not None:
        im.draft("RGB", (int(target[0] * margin), int(target[1] * margin)))
    im = im.convert("RGB")
    return im.resize(target, Image.Resampling.BOX)


def reference(raw: bytes, target: tuple[int, int]) -> np.ndarray:
    """Full decode, each channel area-averaged as float (no rounding)."""
    im = Image.open(io.BytesIO(raw)).convert("RGB")
    chans = [np.asarray(c.convert("F").resize(target, Image.Resampling.BOX)) for c in im.split()]
    return np.stack(chans, axis=-1)


def _luma(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def _blur(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    x = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, x)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, x)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the luma (Wang et al. 2004 constants, 11×11 Gaussian window, σ 1.5)."""
    x, y = _luma(a), _luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _blur(x), _blur(y)
    sxx, syy, sxy = _blur(x * x) - mx * mx, _blur(y * y) - my * my, _blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def psnr(mses: list[float]) -> float:
    """PSNR of a set of images: from their mean squared error (so one exact image is no infinity)."""
    m = statistics.mean(mses)
    return float("inf") if m == 0 else 10 * np.log10(255.0 ** 2 / m)


def study(name: str, paths: list[Path], a: argparse.Namespace) -> None:
    raws = [p.read_bytes() for p in paths]
    targets = [target_of(Image.open(io.BytesIO(r)).size, a.image_size, a.mode) for r in raws]
    paths_ = {"full decode + area": None, "draft >=2x + area": 2, "draft >=1.5x + area": 1.5,
              "draft >=1x + area": 1}
    times: dict[str, list[float]] = {k: [] for k in paths_}
    for _ in range(a.rounds):  # alternate the paths, keep each one's best round
        for label, margin in paths_.items():
            t = time.perf_counter()
            for raw, target in zip(raws, targets):
                decode(raw, target, margin)
            times[label].append((time.perf_counter() - t) / len(raws) * 1000)
    refs = [reference(r, t) for r, t in zip(raws, targets)]
    sides = [max(Image.open(p).size) for p in paths]
    print(f"\n{name}: {len(raws)} JPEGs q90, longer side {min(sides)}…{max(sides)} px → {a.image_size} px {a.mode}")
    print("| path | ms/image (decode+resize) | PSNR dB | SSIM | mean abs diff (worst image) |")
    print("|---|---|---|---|---|")
    for label, margin in paths_.items():
        outs = [np.asarray(decode(r, t, margin)) for r, t in zip(raws, targets)]
        p = psnr([mse(o, ref) for o, ref in zip(outs, refs)])
        s = statistics.mean(ssim(o, ref) for o, ref in zip(outs, refs))
        diffs = [float(np.mean(np.abs(o - ref))) for o, ref in zip(outs, refs)]
        print(f"| {label} | {min(times[label]):.2f} | {p:.2f} | {s:.4f} | "
              f"{statistics.mean(diffs):.2f} ({max(diffs):.2f}) |")
    enc, exact = [], [np.asarray(decode(r, t, None)) for r, t in zip(raws, targets)]
    for e in exact:
        buf = io.BytesIO()
        Image.fromarray(e).save(buf, "JPEG", quality=95)
        enc.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    p = psnr([mse(x, e) for x, e in zip(enc, exact)])
    s = statistics.mean(ssim(x, e) for x, e in zip(enc, exact))
    d = statistics.mean(float(np.mean(np.abs(x.astype(np.int16) - e.astype(np.int16)))) for x, e in zip(enc, exact))
    print(f"| yardstick: JPEG q95 encode of the full-decode output, vs its input | – | {p:.2f} | {s:.4f} | {d:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--mode", default="keep_ratio")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    web = sorted(Path(web_sized_copies("web")).glob("*/*.jpg"))
    study("web", web, a)
    study("tiled", tiled_copies(), a)


if __name__ == "__main__":
    main()
