"""openwit.pipeline.fetch (Fetcher) vs img2dataset's downloader (urllib + ThreadPool), side by side, one run.

Both download from the same loopback server (tests/loopback_server.py), same concurrency, same timeout,
no retries:
  clean:   N real photos from ../shared/data/images (distinct URLs) → throughput
  hostile: the same plus 5% URLs that trickle 1 byte/s for 30 s (a socket timeout never fires on them)
           → wall time of the batch, i.e. how long one bad host holds a shard

    .venv/bin/python benchmarks/bench_fetch.py [N]
(img2dataset runs in benchmarks/.venv-img2dataset: `python -m venv benchmarks/.venv-img2dataset &&
benchmarks/.venv-img2dataset/bin/pip install img2dataset`)
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import loopback_server  # noqa: E402

from openwit.pipeline.fetch import FetchSettings, fetch_all_sync  # noqa: E402

I2D_PY = os.path.join(ROOT, "benchmarks", ".venv-img2dataset", "bin", "python")
THREADS, TIMEOUT = 32, 5.0
I2D_SCRIPT = """
import json, sys, time
from multiprocessing.pool import ThreadPool
from img2dataset.downloader import download_image_with_retry
urls = json.load(open(sys.argv[1])); timeout, threads = float(sys.argv[2]), int(sys.argv[3])
directives = ["noai", "noimageai", "noindex", "noimageindex"]
t = time.time()
with ThreadPool(threads) as pool:
    res = pool.map(lambda kv: download_image_with_retry(kv, timeout, 0, None, directives), enumerate(urls))
print(json.dumps({"wall": time.time() - t, "ok": sum(1 for _, s, _ in res if s is not None),
                  "bytes": sum(len(s.getvalue()) for _, s, _ in res if s is not None)}))
"""


def run_openwit(urls):
    settings = FetchSettings(timeout=TIMEOUT, read_timeout=TIMEOUT, retries=0, concurrency=THREADS,
                             per_host_connections=THREADS, allow_private_addresses=True)
    t = time.monotonic()
    results = fetch_all_sync(urls, settings)
    return {"wall": time.monotonic() - t, "ok": sum(r.ok for r in results),
            "bytes": sum(len(r.data) for r in results if r.ok)}


def run_img2dataset(urls):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(urls, f)
    try:
        out = subprocess.run([I2D_PY, "-c", I2D_SCRIPT, f.name, str(TIMEOUT), str(THREADS)],
                             capture_output=True, text=True, check=True)
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(n: int) -> None:
    if not os.path.exists(I2D_PY):
        sys.exit(f"missing {I2D_PY}: see the module docstring")
    loopback_server._MAX_STREAM_SECONDS = 40
    with loopback_server.LoopbackServer() as srv:
        photos = srv.image_paths()
        clean = [srv.url(f"{photos[i % len(photos)]}?n={i}") for i in range(n)]
        hostile = [srv.url(f"/trickle/1/30?n={i}") if i % 20 == 0 else u for i, u in enumerate(clean)]
        print(f"{n} URLs, {THREADS} concurrent, timeout {TIMEOUT:g}s, no retries; loopback server")
        for name, urls in (("clean", clean), ("hostile (5% trickle)", hostile)):
            ours, theirs = run_openwit(urls), run_img2dataset(urls)
            print(f"{name:22s} openwit {ours['wall']:6.2f}s ({ours['ok']} ok, {n / ours['wall']:5.0f} URL/s)   "
                  f"img2dataset {theirs['wall']:6.2f}s ({theirs['ok']} ok, {n / theirs['wall']:5.0f} URL/s)   "
                  f"ratio {theirs['wall'] / ours['wall']:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
