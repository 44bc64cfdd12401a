"""The trainer's data-wait fraction with and without `--device-augment` (issue 15), on CPU.

Runs `openwit-train` (tiny-vit, CLIP's BPE) over the 256 px shards bench_loader.py writes
(benchmarks/work/loader256), alternating the two modes, and prints the median share of wall time
the training loop waited for the loader, and samples/s, per mode. On a CPU both the loader workers
and the device-side resize compete for the same cores, so this shows the cost moved, not a GPU gain.

    .venv/bin/python benchmarks/bench_train_wait.py [--steps 40] [--workers 1] [--repeat 2]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARDS = ROOT / "benchmarks" / "work" / "loader256"
BPE = ROOT.parent / "shared" / "data" / "clip" / "bpe_simple_vocab_16e6.txt.gz"


def run(mode: str, steps: int, workers: int, batch: int, out: str) -> dict:
    shards = sorted(SHARDS.glob("*.tar"))
    urls = "::".join(map(str, shards))
    cmd = [sys.executable, "-m", "openwit.trainer", "--train-data", urls, "--model", "tiny-vit", "--out", out,
           "--batch-size", str(batch), "--max-steps", str(steps), "--workers", str(workers), "--warmup", "5",
           "--log-every", "5", "--tokenizer", str(BPE), "--device-augment", mode, "--dataset-resampled",
           "--train-num-samples", str(steps * batch)]
    subprocess.run(cmd, check=True, capture_output=True)
    rows = [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("kind") == "train"][1:]  # skip the first window (start-up)
    return {"data_wait": statistics.mean(r["data_wait"] for r in rows),
            "samples_per_s": statistics.mean(r["samples_per_s"] for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    if not SHARDS.exists():
        sys.exit(f"no shards in {SHARDS}: run benchmarks/bench_loader.py once first")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    results: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(a.repeat):
        for mode in results:
            with tempfile.TemporaryDirectory() as out:
                results[mode].append(run(mode, a.steps, a.workers, a.batch_size, out))
    for mode, rs in results.items():
        print(f"device-augment {mode:3}: data wait {statistics.median(r['data_wait'] for r in rs):.1%}, "
              f"{statistics.median(r['samples_per_s'] for r in rs):.1f} samples/s "
              f"(tiny-vit, batch {a.batch_size}, {a.workers} loader worker(s), 256 px shards → 32 px)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
