"""openwit.pipeline.images.process_image vs img2dataset's Resizer (OpenCV + albumentations), one run.

Two workloads, single thread each: the real photos in ../shared/data/images (small, 123..1411 px)
and big JPEGs (3200x2135, made from sklearn's china.jpg) shrunk to 256 px, where JPEG draft
decoding matters. Best of 3 alternating rounds per tool (the box is shared). Also checks that both tools give the same output sizes for every resize mode.

    .venv/bin/python benchmarks/bench_images.py
(img2dataset runs in benchmarks/.venv-img2dataset: `python -m venv benchmarks/.venv-img2dataset &&
benchmarks/.venv-img2dataset/bin/pip install img2dataset`)
"""
import glob
import io
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("OPENWIT_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
WORK = os.path.join(ROOT, "benchmarks", "work", "bench_images")
I2D_PY = os.path.join(ROOT, "benchmarks", ".venv-img2dataset", "bin", "python")
ROUNDS = 3
MODES = ["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"]


def workloads() -> dict[str, list[str]]:
    small = sorted(glob.glob(f"{SHARED}/images/*/*.jpg") + glob.glob(f"{SHARED}/images/*/*.png"))
    os.makedirs(WORK, exist_ok=True)
    big = []
    from PIL import Image

    src = Image.open(f"{SHARED}/images/sklearn/china.jpg").convert("RGB")
    for i, q in enumerate((85, 90, 95)):
        path = os.path.join(WORK, f"big_{i}.jpg")
        if not os.path.exists(path):
            src.resize((3200, 2135), Image.Resampling.BICUBIC).rotate(i * 2).save(path, quality=q)
        big.append(path)
    return {"real photos": small, "big JPEG 3200x2135": big}


def run(tool: str, paths: list[str], mode: str, repeats: int) -> dict:
    """Time `repeats` passes over paths with one tool; returns images/s and output sizes."""
    raws = [open(p, "rb").read() for p in paths]
    if tool == "openwit":
        from openwit.pipeline.images import ImageSettings, process_image

        s = ImageSettings(image_size=256, resize_mode=mode)
        call = lambda raw: (lambda r: (r.width, r.height))(process_image(raw, s))
    else:
        from img2dataset.resizer import Resizer

        rz = Resizer(256, mode, False)
        call = lambda raw: (lambda r: (r[1], r[2]))(rz(io.BytesIO(raw)))
    sizes = [call(raw) for raw in raws]  # warm-up and sizes
    t = time.perf_counter()
    for _ in range(repeats):
        for raw in raws:
            call(raw)
    secs = time.perf_counter() - t
    return {"per_s": repeats * len(raws) / secs, "sizes": sizes}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        tool, mode, repeats, paths = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
        print(json.dumps(run(tool, paths, mode, repeats)))
        return
    for name, paths in workloads().items():
        repeats = 3 if name.startswith("real") else 4
        for mode in MODES:
            best = {"openwit": 0.0, "img2dataset": 0.0}
            for _ in range(ROUNDS):  # alternate the tools, keep each one's best round (shared box)
                ours = run("openwit", paths, mode, repeats)
                out = subprocess.run([I2D_PY, __file__, "--worker", "img2dataset", mode, str(repeats), *paths],
                                     capture_output=True, text=True, check=True)
                theirs = json.loads(out.stdout.strip().splitlines()[-1])
                best["openwit"] = max(best["openwit"], ours["per_s"])
                best["img2dataset"] = max(best["img2dataset"], theirs["per_s"])
            same = sum(a == tuple(b) for a, b in zip(ours["sizes"], theirs["sizes"]))
            print(f"{name:20s} {mode:18s} openwit {best['openwit']:7.1f} img/s  img2dataset "
                  f"{best['img2dataset']:7.1f} img/s  ratio {best['openwit'] / best['img2dataset']:5.2f}x  "
                  f"same output size {same}/{len(paths)}")

if __name__ == "__main__":
    main()
