"""Download + resize speed: openwit's shard stage vs img2dataset 1.47 on the same loopback URLs.

One script, one machine, one run each, same input: N distinct URLs (the real photos in
../shared/data/images replicated with distinct query strings) served by tests/loopback_server.py in
its own process; 256 px, border resize, JPEG q95, webdataset output, 1,000 samples per shard.
Wall time includes each tool's start-up. Prints images/s and the ratio.

    benchmarks/.venv-img2dataset/bin/pip install img2dataset==1.47.0   # once (own venv)
    .venv/bin/python benchmarks/bench_download.py [--n 2000] [--photo-size 1600]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work" / "download"
I2D_BIN = ROOT / "benchmarks" / ".venv-img2dataset" / "bin" / "img2dataset"
SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from loopback_server import LoopbackServer
srv = LoopbackServer({images!r})
print(srv.port, flush=True)
print(*srv.image_paths(), sep="\\n", flush=True)
print("END", flush=True)
while True:
    time.sleep(3600)
"""


def web_sized_copies(long_side: int) -> str:
    """The real photos re-encoded as JPEG q90 with the longer side = long_side (typical web photo sizes)."""
    from PIL import Image

    from openwit.common.hashing import blake_u64

    shared = Path(os.environ.get("OPENWIT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images"
    out = WORK / "images" / f"web{long_side}"
    out.mkdir(parents=True, exist_ok=True)
    for src in sorted(shared.glob("*/*")):
        if src.suffix in (".jpg", ".png"):
            im = Image.open(src).convert("RGB")
            scale = long_side / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BICUBIC)
            im.save(out / f"{src.stem}_{blake_u64(str(src)) % 1000}.jpg", quality=90)
    return str(out.parent)


def start_server(images_dir: str | None) -> tuple[subprocess.Popen, int, list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER.format(tests=str(ROOT / "tests"), images=images_dir)],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    paths = []
    for line in proc.stdout:
        if line.strip() == "END":
            break
        paths.append(line.strip())
    if not paths:
        proc.kill()
        sys.exit("no images found: ../shared/data/images is missing")
    return proc, port, paths


def write_urls(port: int, paths: list[str], n: int) -> Path:
    urls = [f"http://127.0.0.1:{port}{paths[i % len(paths)]}?copy={i}" for i in range(n)]
    rows = [{"url": u, "caption": f"image {i}", "uid": f"{i:032x}", "query_ids": [i % 10]}
            for i, u in enumerate(urls)]
    path = WORK / "urls.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def timed(name: str, cmd: list[str], env: dict | None = None) -> float:
    start = time.monotonic()
    done = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    secs = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return secs


def successes_img2dataset(out: Path) -> int:
    return sum(json.loads(Path(p).read_text())["successes"] for p in glob.glob(str(out / "*_stats.json")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="img2dataset processes_count")
    ap.add_argument("--threads", type=int, default=64, help="img2dataset thread_count / openwit concurrency")
    ap.add_argument("--photo-size", type=int, default=0,
                    help="serve the photos re-encoded as JPEG with this longer side (0: the originals)")
    a = ap.parse_args()
    if not I2D_BIN.exists():
        sys.exit(f"missing {I2D_BIN}: python3 -m venv benchmarks/.venv-img2dataset && "
                 "benchmarks/.venv-img2dataset/bin/pip install img2dataset==1.47.0")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    server, port, paths = start_server(web_sized_copies(a.photo_size) if a.photo_size else None)
    try:
        urls = write_urls(port, paths, a.n)
        common = dict(size="256", per_shard="1000")
        i2d_out, ow_out = WORK / "img2dataset", WORK / "openwit"
        i2d_secs = timed("img2dataset", [
            str(I2D_BIN), "--url_list", str(urls), "--input_format", "parquet", "--url_col", "url",
            "--caption_col", "caption", "--output_format", "webdataset", "--output_folder", str(i2d_out),
            "--image_size", common["size"], "--resize_mode", "border", "--encode_quality", "95",
            "--number_sample_per_shard", common["per_shard"], "--processes_count", str(a.processes),
            "--thread_count", str(a.threads), "--timeout", "10", "--retries", "0", "--enable_wandb", "False",
            "--distributor", "multiprocessing"], env={"NO_ALBUMENTATIONS_UPDATE": "1"})
        ow_secs = timed("openwit", [
            sys.executable, "-m", "openwit.pipeline.shards", "--candidates", str(urls), "--out", str(ow_out),
            "--image-size", common["size"], "--resize-mode", "border", "--quality", "95",
            "--samples-per-shard", common["per_shard"], "--concurrency", str(a.threads),
            "--per-host-connections", str(a.threads), "--timeout", "10", "--retries", "0",
            "--allow-private-addresses", "--no-report"])
    finally:
        server.kill()
    i2d_ok = successes_img2dataset(i2d_out)
    ow_ok = sum(json.loads(Path(p).read_text())["successes"] for p in glob.glob(str(ow_out / "*_stats.json")))
    i2d_rate, ow_rate = i2d_ok / i2d_secs, ow_ok / ow_secs
    what = f"JPEG {a.photo_size} px copies of" if a.photo_size else "original"
    print(f"urls: {a.n} on 127.0.0.1 ({len(paths)} distinct {what} real images), 256 px border, "
          f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}")
    print(f"img2dataset 1.47.0: {i2d_ok} images in {i2d_secs:.1f} s = {i2d_rate:.1f} images/s")
    print(f"openwit shards:     {ow_ok} images in {ow_secs:.1f} s = {ow_rate:.1f} images/s")
    print(f"ratio openwit / img2dataset: {ow_rate / i2d_rate:.2f}x")


if __name__ == "__main__":
    main()
