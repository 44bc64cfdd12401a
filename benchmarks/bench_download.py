"""Download + resize speed: openwit's shard stage vs img2dataset 1.47 on the same loopback URLs.

One script, one machine, one run each, same input: N distinct URLs (the real photos in
../shared/data/images replicated with distinct query strings) served by tests/loopback_server.py in
its own process; 256 px, border resize, JPEG q95, webdataset output, 1,000 samples per shard.
Wall time includes each tool's start-up. Prints images/s and the ratio. With --repeat R the two
tools run alternately R times (fresh output folders) and the medians are compared, so that a
burst of other load on a small shared box does not decide the ratio; every run is printed.

    benchmarks/.venv-img2dataset/bin/pip install img2dataset==1.47.0   # once (own venv)
    .venv/bin/python benchmarks/bench_download.py [--n 2000] [--photo-size 1600] [--repeat 3]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
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


def write_urls(port: int, paths: list[str], n: int, slow_every: int = 0) -> Path:
    """N distinct URLs of the photos; with slow_every=K every K-th URL is a host that trickles its
    body (1 byte/s for 30 s: tests/loopback_server.py /trickle/1/30), like a stalled web server."""
    urls = [f"http://127.0.0.1:{port}{paths[i % len(paths)]}?copy={i}" for i in range(n)]
    if slow_every:
        urls = [f"http://127.0.0.1:{port}/trickle/1/30?copy={i}" if i % slow_every == slow_every - 1 else u
                for i, u in enumerate(urls)]
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


def run_img2dataset(urls: Path, out: Path, a: argparse.Namespace) -> float:
    return timed("img2dataset", [
        str(I2D_BIN), "--url_list", str(urls), "--input_format", "parquet", "--url_col", "url",
        "--caption_col", "caption", "--output_format", "webdataset", "--output_folder", str(out),
        "--image_size", "256", "--resize_mode", "border", "--encode_quality", "95",
        "--number_sample_per_shard", "1000", "--processes_count", str(a.processes),
        "--thread_count", str(a.threads), "--timeout", "10", "--retries", "0", "--enable_wandb", "False",
        "--distributor", "multiprocessing"], env={"NO_ALBUMENTATIONS_UPDATE": "1"})


def run_openwit(urls: Path, out: Path, a: argparse.Namespace) -> float:
    return timed("openwit", [
        sys.executable, "-m", "openwit.pipeline.shards", "--candidates", str(urls), "--out", str(out),
        "--image-size", "256", "--resize-mode", "border", "--quality", "95",
        "--samples-per-shard", "1000", "--concurrency", str(a.threads),
        "--per-host-connections", str(a.threads), "--timeout", "10", "--retries", "0",
        "--allow-private-addresses", "--no-report"])


def successes(out: Path) -> int:
    """Both tools write img2dataset-style `*_stats.json` with a `successes` count per shard."""
    return sum(json.loads(Path(p).read_text())["successes"] for p in glob.glob(str(out / "*_stats.json")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="img2dataset processes_count")
    ap.add_argument("--threads", type=int, default=64, help="img2dataset thread_count / openwit concurrency")
    ap.add_argument("--photo-size", type=int, default=0,
                    help="serve the photos re-encoded as JPEG with this longer side (0: the originals)")
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two tools this many times")
    ap.add_argument("--slow-every", type=int, default=0,
                    help="make every K-th URL a stalled host (trickles 1 byte/s for 30 s); 0: none")
    a = ap.parse_args()
    if not I2D_BIN.exists():
        sys.exit(f"missing {I2D_BIN}: python3 -m venv benchmarks/.venv-img2dataset && "
                 "benchmarks/.venv-img2dataset/bin/pip install img2dataset==1.47.0")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    load_before = os.getloadavg()[0]
    server, port, paths = start_server(web_sized_copies(a.photo_size) if a.photo_size else None)
    rates: dict[str, list[float]] = {"img2dataset": [], "openwit": []}
    try:
        urls = write_urls(port, paths, a.n, a.slow_every)
        for r in range(a.repeat):
            for name, run in (("img2dataset", run_img2dataset), ("openwit", run_openwit)):
                out = WORK / f"{name}-{r}"
                secs = run(urls, out, a)
                ok = successes(out)
                rates[name].append(ok / secs)
                print(f"run {r + 1}/{a.repeat} {name:12s} {ok} images in {secs:5.1f} s = {ok / secs:6.1f} images/s",
                      flush=True)
    finally:
        server.kill()
    what = f"JPEG {a.photo_size} px copies of" if a.photo_size else "original"
    slow = f", every {a.slow_every}th a stalled host" if a.slow_every else ""
    print(f"urls: {a.n} on 127.0.0.1 ({len(paths)} distinct {what} real images{slow}), 256 px border, "
          f"cpus: {os.cpu_count()}, load average before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}")
    i2d, ow = statistics.median(rates["img2dataset"]), statistics.median(rates["openwit"])
    label = "median " if a.repeat > 1 else ""
    print(f"img2dataset 1.47.0: {label}{i2d:.1f} images/s")
    print(f"openwit shards:     {label}{ow:.1f} images/s")
    print(f"ratio openwit / img2dataset: {ow / i2d:.2f}x")


if __name__ == "__main__":
    main()
