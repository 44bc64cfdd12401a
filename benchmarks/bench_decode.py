"""Shrinking paths: speed and error of each decode margin and resampler against the exact result.

Each path is `process_image` with its settings (256 px keep_ratio): JPEGs decoded by DCT scaling to
≥ M × the target (`--decode-margin M`; 0 = every pixel), then averaged to the target size either by the
exact area average (`--resample area`, the default: openwit's kernel on the libjpeg-turbo decode; the
`area-opencv` rows: OpenCV's INTER_AREA, `--area-kernel opencv`) or by Pillow's BOX filter
(`--resample box`, openwit's before: it counts each source pixel whole or not at all). The reference is the exact area average of the full decode in floating point (from the
integral of each row and column: partial pixels weighted by the fraction covered), i.e. what shrinking
means. Reported per path: ms per image (`process_image` with its JPEG q95 encode, one thread, best of
rounds), PSNR, SSIM (luma, 11×11 Gaussian σ 1.5) and mean absolute difference (0..255; in brackets the
worst image's) against the reference. The q95 JPEG encode that ends every path is measured the same way
(the reference rounded and encoded, vs the reference) as the yardstick. img2dataset's own path (full
decode + INTER_AREA) is the `area-opencv`, margin 0 row.

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
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_download import WORK, shared_photos, web_sides, web_sized_copies  # noqa: E402
from exact_area import exact_area  # noqa: E402

from openwit.pipeline.images import ImageSettings, process_image  # noqa: E402
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


# (resample, decode margin, area kernel); "area-opencv" = the area average by OpenCV's INTER_AREA
PATHS = [("area", 0), ("area", 3), ("area", 2), ("area", 1), ("area-opencv", 0), ("area-opencv", 2),
         ("area-opencv", 1), ("box", 0), ("box", 2), ("box", 1)]


def reference(raw: bytes, target: tuple[int, int]) -> np.ndarray:
    """Full decode, exactly area-averaged to `target` in float (no rounding)."""
    return exact_area(np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")), target)


def settings(a: argparse.Namespace, resample: str, margin: int, fmt: str) -> ImageSettings:
    resample, _, kernel = resample.partition("-")
    return ImageSettings(image_size=a.image_size, resize_mode=a.mode, output_format=fmt, resample=resample,
                         decode_margin=margin, area_kernel=kernel or "openwit")


def pixels(raw: bytes, s: ImageSettings) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(process_image(raw, s).data)).convert("RGB"))


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
    times: dict[tuple, list[float]] = {p: [] for p in PATHS}
    for _ in range(a.rounds):  # alternate the paths, keep each one's best round
        for path in PATHS:
            s = settings(a, *path, "jpg")
            t = time.process_time()
            for raw in raws:
                process_image(raw, s)
            times[path].append((time.process_time() - t) / len(raws) * 1000)
    refs = [reference(r, t) for r, t in zip(raws, targets)]
    sides = [max(Image.open(p).size) for p in paths]
    print(f"\n{name}: {len(raws)} JPEGs q90, longer side {min(sides)}…{max(sides)} px → {a.image_size} px {a.mode}")
    print("| resample, decode margin | ms/image (process_image) | PSNR dB | SSIM | mean abs diff (worst image) |")
    print("|---|---|---|---|---|")
    for path in PATHS:
        outs = [pixels(r, settings(a, *path, "png")) for r in raws]
        row(f"{path[0]}, {path[1]}", f"{min(times[path]):.2f}", outs, refs)
    encoded = []
    for ref in refs:
        buf = io.BytesIO()
        Image.fromarray(np.clip(np.rint(ref), 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=95)
        encoded.append(np.asarray(Image.open(buf).convert("RGB")))
    row("yardstick: JPEG q95 encode of the reference", "–", encoded, refs)


def row(label: str, ms: str, outs: list[np.ndarray], refs: list[np.ndarray]) -> None:
    p = psnr([mse(o, ref) for o, ref in zip(outs, refs)])
    s = statistics.mean(ssim(o, ref) for o, ref in zip(outs, refs))
    diffs = [float(np.mean(np.abs(o - ref))) for o, ref in zip(outs, refs)]
    print(f"| {label} | {ms} | {p:.2f} | {s:.4f} | {statistics.mean(diffs):.2f} ({max(diffs):.2f}) |")


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
