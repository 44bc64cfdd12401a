"""Download + resize speed: openwit's shard stage vs img2dataset 1.47 on the same loopback URLs.

One script, one machine, same input: N distinct URLs (the real photos in ../shared/data/images,
by default re-encoded as web-sized JPEGs of 640…1600 px, replicated with distinct query strings)
served by tests/loopback_server.py in its own process; 256 px keep_ratio, JPEG q95, webdataset
output, 250 samples per shard (issue 11's workload). Per run: wall time with start-up and exit,
CPU-seconds of the tool's whole process tree (and of its first process alone), cores used, the
load average before it, and the CPU the loopback server spent meanwhile (it shares the box's cores:
pinned to one core, the tool leaves the server the other one, unless --server-on-tool-cores puts the
server on the run's cores too, so that every run pays for it, as a remote server would cost none); for openwit also its start-up, exit and
steady-state rate (from OUT/timing/). With --repeat R the tools alternate R times (fresh output folders) and the medians
are compared, so that a burst of other load on a small shared box does not decide the ratio.
`--tools openwit-1core,openwit` compares openwit pinned to one core (`taskset -c 0`) with openwit
on every core: the parallel efficiency. `--baseline DIR --tools baseline,openwit` alternates this
checkout with an earlier one (e.g. `git worktree add /tmp/base COMMIT`): an A/B of a change.

    python3 -m venv benchmarks/.venv-img2dataset && benchmarks/.venv-img2dataset/bin/pip install img2dataset==1.47.0
    .venv/bin/python benchmarks/bench_download.py [--repeat 3] [--photo-size web|1600|0] [--slow-every 20]
        [--tools img2dataset,openwit] [--openwit-args '--decode-margin 1'] [--n 2000]
        [--baseline /tmp/base --tools baseline,openwit]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
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


WEB_SIDES = (640, 800, 1024, 1280, 1600)  # longer sides of typical web photos (640×480 … 1600×1200)


def shared_photos() -> list[Path]:
    """The real photos (JPEG and PNG) in ../shared/data/images, sorted."""
    shared = Path(os.environ.get("OPENWIT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images"
    return [p for p in sorted(shared.glob("*/*")) if p.suffix in (".jpg", ".png")]


def web_sides(i: int) -> tuple[int, int]:
    """The two longer sides photo i is served at in the `web` workload."""
    return WEB_SIDES[i % len(WEB_SIDES)], WEB_SIDES[(i + 2) % len(WEB_SIDES)]


def web_sized_copies(photo_size: str) -> str:
    """The real photos re-encoded as JPEG q90 with the longer side = photo_size px, or for "web"
    each photo at two of the WEB_SIDES (27 photos → 54 JPEGs of 640…1600 px); returns the folder
    to serve (the JPEGs are in its subfolder jpg/)."""
    from PIL import Image

    from openwit.common.hashing import blake_u64

    served = WORK.parent / "photos" / f"web{photo_size}"  # kept between runs (WORK is not)
    out = served / "jpg"
    out.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(shared_photos()):
        sides = web_sides(i) if photo_size == "web" else (int(photo_size),)
        im = Image.open(src).convert("RGB")
        for side in sides:
            path = out / f"{src.stem}_{blake_u64(str(src)) % 1000}_{side}.jpg"
            if path.exists():
                continue
            scale = side / max(im.size)
            im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                      Image.Resampling.BICUBIC).save(path, quality=90)
    return str(served)


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


def load() -> str:
    """The 1/5/15-minute load averages (the box is shared: every run records them)."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + sys) the process itself has used so far, children excluded."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_list(spec: str | None) -> set[int]:
    """The CPUs of a taskset list ("0", "0,2", "0-3"); empty for None."""
    cpus = set()
    for part in (spec or "").split(","):
        lo, _, hi = part.partition("-")
        if lo:
            cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def pin_process(pid: int, cpus: set[int]) -> None:
    """Move every thread of a running process onto `cpus` (what `taskset -a -p` does)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:  # a thread that just ended
            pass


def timed(name: str, cmd: list[str], env: dict | None = None, pin: str | None = None) -> dict:
    """Run one tool to the end: wall seconds, CPU seconds (user + sys of the whole process tree:
    every process the tool starts is waited for before it exits, so RUSAGE_CHILDREN counts it)
    and `main_cpu`, the CPU of the tool's first process alone (sampled every 50 ms from /proc)."""
    if pin:
        cmd = ["taskset", "-c", pin, *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start, start_wall = time.monotonic(), time.time()
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a chatty tool never blocks on it
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=log, stderr=log, text=True)
        main_cpu = 0.0
        while proc.poll() is None:
            main_cpu = _proc_cpu(proc.pid) or main_cpu
            time.sleep(0.05)
        secs = time.monotonic() - start
        log.seek(0)
        err = log.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{name} failed ({proc.returncode}):\n{err[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": secs, "cpu": cpu, "main_cpu": main_cpu, "start": start_wall, "end": start_wall + secs}


def run_img2dataset(urls: Path, out: Path, a: argparse.Namespace, pin: str | None = None) -> dict:
    return timed("img2dataset", [
        str(I2D_BIN), "--url_list", str(urls), "--input_format", "parquet", "--url_col", "url",
        "--caption_col", "caption", "--output_format", "webdataset", "--output_folder", str(out),
        "--image_size", str(a.image_size), "--resize_mode", a.resize_mode, "--encode_quality", "95",
        "--number_sample_per_shard", str(a.samples_per_shard), "--processes_count", str(a.processes),
        "--thread_count", str(a.threads), "--timeout", "10", "--retries", "0", "--enable_wandb", "False",
        "--distributor", "multiprocessing"], env={"NO_ALBUMENTATIONS_UPDATE": "1"}, pin=pin or a.pin)


def run_openwit(urls: Path, out: Path, a: argparse.Namespace, pin: str | None = None,
                env: dict | None = None) -> dict:
    return timed("openwit", [
        sys.executable, "-m", "openwit.pipeline.shards", "--candidates", str(urls), "--out", str(out),
        "--image-size", str(a.image_size), "--resize-mode", a.resize_mode, "--quality", "95",
        "--samples-per-shard", str(a.samples_per_shard), "--concurrency", str(a.threads),
        "--per-host-connections", str(a.threads), "--timeout", "10", "--retries", "0",
        "--allow-private-addresses", "--no-report", *shlex.split(a.openwit_args)], env=env, pin=pin or a.pin)


def compile_sources(checkout: Path) -> None:
    """Byte-compile a checkout's openwit sources, as `pip install` does for a regular install
    (img2dataset's venv has its .pyc files): the editable install of `make venv` leaves them to
    Python, which does not write them where PYTHONDONTWRITEBYTECODE is set (this box) and then
    compiles ~120 modules again at every start (~0.1 s)."""
    parts = [str(part) for part in checkout.iterdir() if (part / "__init__.py").is_file()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *parts], check=True, stdout=subprocess.DEVNULL)


def run_baseline(urls: Path, out: Path, a: argparse.Namespace, pin: str | None = None) -> dict:
    """openwit from the checkout `--baseline` (its parts linked as openwit.<part> on PYTHONPATH),
    with this venv and the same flags."""
    checkout = Path(a.baseline).resolve()
    pkg = WORK.parent / "baseline-pkg"
    shutil.rmtree(pkg, ignore_errors=True)
    (pkg / "openwit").mkdir(parents=True)
    for part in checkout.iterdir():
        if (part / "__init__.py").is_file():
            (pkg / "openwit" / part.name).symlink_to(part)
    return run_openwit(urls, out, a, pin, env={"PYTHONPATH": str(pkg)})


def successes(out: Path) -> int:
    """Both tools write img2dataset-style `*_stats.json` with a `successes` count per shard."""
    return sum(json.loads(Path(p).read_text())["successes"] for p in glob.glob(str(out / "*_stats.json")))


def output_sizes(out: Path) -> dict[str, tuple]:
    """url → (width, height) of every success, from the shard Parquet files both tools write."""
    sizes = {}
    for path in glob.glob(str(out / "*.parquet")):
        for row in pq.read_table(path, columns=["url", "status", "width", "height"]).to_pylist():
            if row["status"] == "success":
                sizes[row["url"]] = (row["width"], row["height"])
    return sizes


def steady_rate(out: Path, run: dict) -> dict:
    """openwit's own timing files (OUT/timing/*.json): start-up = process start → the first shard's
    first download, exit = the last shard written → process end, and the steady-state rate = all
    samples over the time between them (what more cores speed up; start-up and exit they do not)."""
    shards = [json.loads(Path(p).read_text()) for p in glob.glob(str(out / "timing" / "*.json"))]
    if not shards:
        return {}
    count = sum(json.loads(Path(p).read_text())["count"] for p in glob.glob(str(out / "*_stats.json")))
    first, last = min(t["start_time"] for t in shards), max(t["end_time"] for t in shards)
    return {"startup": first - run["start"], "exit": run["end"] - last, "steady": count / max(last - first, 1e-9)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="img2dataset processes_count")
    ap.add_argument("--threads", type=int, default=64, help="img2dataset thread_count / openwit concurrency")
    ap.add_argument("--photo-size", default="web",
                    help="serve the photos re-encoded as JPEG q90: 'web' (each at two longer sides of "
                         "640…1600 px), a number (that longer side), or 0 (the originals)")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--resize-mode", default="keep_ratio")
    ap.add_argument("--samples-per-shard", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two tools this many times")
    ap.add_argument("--slow-every", type=int, default=0,
                    help="make every K-th URL a stalled host (trickles 1 byte/s for 30 s); 0: none")
    ap.add_argument("--tools", default="img2dataset,openwit",
                    help="which tools, in the order they alternate; NAME-1core runs NAME under "
                         "`taskset -c 0` (e.g. openwit-1core,openwit: parallel efficiency)")
    ap.add_argument("--openwit-args", default="", help="extra flags for openwit (e.g. '--workers 1')")
    ap.add_argument("--pin", default=None, help="run the tools under `taskset -c PIN` (e.g. 0: one core)")
    ap.add_argument("--server-on-tool-cores", action="store_true",
                    help="pin the loopback server to each run's cores (a NAME-1core run shares core 0 with "
                         "it, as the unpinned runs share theirs): both sides of a parallel-efficiency "
                         "ratio pay for the server")
    ap.add_argument("--baseline", default=None,
                    help="an earlier openwit checkout, run as the tool 'baseline' (A/B of a change)")
    a = ap.parse_args()
    tools = {"img2dataset": run_img2dataset, "openwit": run_openwit, "baseline": run_baseline}
    if "baseline" in a.tools and not a.baseline:
        sys.exit("--tools baseline needs --baseline CHECKOUT (e.g. git worktree add /tmp/base COMMIT)")
    names = a.tools.split(",")
    if any(n.startswith("img2dataset") for n in names) and not I2D_BIN.exists():
        sys.exit(f"missing {I2D_BIN}: python3 -m venv benchmarks/.venv-img2dataset && "
                 "benchmarks/.venv-img2dataset/bin/pip install img2dataset==1.47.0")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    for checkout in {ROOT, *([Path(a.baseline).resolve()] if a.baseline else [])}:
        compile_sources(checkout)
    photos = None if str(a.photo_size) == "0" else web_sized_copies(str(a.photo_size))
    server, port, paths = start_server(photos)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    sizes: dict[str, dict] = {}
    try:
        urls = write_urls(port, paths, a.n, a.slow_every)
        for r in range(a.repeat):
            for name in names:
                out = WORK / f"{name}-{r}"
                before = load()
                tool, _, cores = name.partition("-")
                pin = "0" if cores == "1core" else None
                if a.server_on_tool_cores:
                    pin_process(server.pid, cpu_list(pin or a.pin) or set(range(os.cpu_count())))
                served = _proc_cpu(server.pid) or 0.0
                run = tools[tool](urls, out, a, pin=pin)
                run.update(ok=successes(out), load=before, server_cpu=(_proc_cpu(server.pid) or 0.0) - served)
                if tool in ("openwit", "baseline"):
                    run.update(steady_rate(out, run))
                sizes.setdefault(name, output_sizes(out))
                runs[name].append(run)
                extra = (f", start-up {run['startup']:.1f} s, exit {run['exit']:.1f} s, steady "
                         f"{run['steady']:.0f} samples/s" if "steady" in run else "")
                print(f"run {r + 1}/{a.repeat} {name:12s} load {before}: {run['ok']} images in "
                      f"{run['wall']:5.1f} s = {run['ok'] / run['wall']:6.1f} images/s, CPU {run['cpu']:5.1f} s "
                      f"= {run['cpu'] / run['ok'] * 1000:5.2f} ms/image (first process {run['main_cpu']:.1f} s), "
                      f"{run['cpu'] / run['wall']:.2f} cores{extra}; the server {run['server_cpu']:.1f} s "
                      f"({run['server_cpu'] / run['wall']:.2f} cores)",
                      flush=True)
    finally:
        server.kill()
    what = {"web": "web-sized JPEG copies (640…1600 px) of"}.get(str(a.photo_size), f"JPEG {a.photo_size} px copies of")
    what = "original" if photos is None else what
    slow = f", every {a.slow_every}th a stalled host" if a.slow_every else ""
    pin = f", pinned to CPU {a.pin}" if a.pin else ""
    pin += ", the server on each run's cores" if a.server_on_tool_cores else ""
    print(f"urls: {a.n} on 127.0.0.1 ({len(paths)} distinct {what} real images{slow}), {a.image_size} px "
          f"{a.resize_mode}, {a.samples_per_shard} per shard, cpus: {os.cpu_count()}{pin}, load now: {load()}")
    med = {name: {k: statistics.median(run[k] for run in rs) for k in ("wall", "cpu", "ok")}
           for name, rs in runs.items()}
    for name, m in med.items():
        steady = [run["steady"] for run in runs[name] if "steady" in run]
        more = (f", start-up {statistics.median(run['startup'] for run in runs[name]):.2f} s, first process "
                f"{statistics.median(run['main_cpu'] for run in runs[name]):.2f} s of CPU, steady "
                f"{statistics.median(steady):.0f} samples/s" if steady else "")
        print(f"{name:12s} median of {len(runs[name])}: {m['wall']:.1f} s wall ({m['ok'] / m['wall']:.1f} images/s), "
              f"{m['cpu'] / m['ok'] * 1000:.2f} CPU-ms/image, {m['cpu'] / m['wall']:.2f} cores{more}")
    if {"openwit-1core", "openwit"} <= set(med):
        one = statistics.median(run["steady"] for run in runs["openwit-1core"])
        every = statistics.median(run["steady"] for run in runs["openwit"])
        print(f"parallel efficiency: steady rate on {os.cpu_count()} cores / pinned to one core = "
              f"{every:.0f} / {one:.0f} = {every / one:.2f}x")
    if len(sizes) == 2:
        (n1, s1), (n2, s2) = sizes.items()
        same = sum(s1.get(u) == s for u, s in s2.items())
        print(f"same output size: {same}/{len(s2)} of {n2}'s successes ({len(s1)} {n1} successes)")
    if {"baseline", "openwit"} <= set(med):
        base, ow = med["baseline"], med["openwit"]
        print(f"openwit vs baseline: wall {ow['wall'] / base['wall']:.3f}x, CPU per image "
              f"{(ow['cpu'] / ow['ok']) / (base['cpu'] / base['ok']):.3f}x")
    if {"img2dataset", "openwit"} <= set(med):
        i2d, ow = med["img2dataset"], med["openwit"]
        print(f"openwit vs img2dataset: wall {i2d['wall'] / ow['wall']:.2f}x faster, CPU per image "
              f"{(ow['cpu'] / ow['ok']) / (i2d['cpu'] / i2d['ok']):.2f}x")


if __name__ == "__main__":
    main()
