"""Scale check for openwit-stats: 50 shards x 20,000 rows (1M samples) + a 500k-entry query_counts.

No other tool makes this report, so this only measures openwit: wall time and peak memory.

    .venv/bin/python benchmarks/bench_stats.py [SHARDS] [ROWS_PER_SHARD]
"""
import json
import os
import resource
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benchmarks", "work", "bench_stats")
STATUSES = np.array(["success", "failed_to_download", "filtered", "failed_to_resize"])


def generate(shards: int, n: int) -> None:
    rng = np.random.default_rng(0)
    os.makedirs(OUT, exist_ok=True)
    for s in range(shards):
        st = rng.choice(STATUSES, n, p=[0.6, 0.3, 0.05, 0.05])
        qlen = rng.integers(0, 4, n)
        offsets = np.concatenate([[0], np.cumsum(qlen)]).astype(np.int32)
        ids = rng.integers(0, 500_000, int(qlen.sum())).astype(np.int32)
        pq.write_table(pa.table({
            "key": [f"{s:05d}{i:05d}" for i in range(n)],
            "caption": [f"a caption number {i} with some words" for i in range(n)],
            "status": st, "error_message": np.where(st == "success", None, "http_error: 404").tolist(),
            **{c: rng.integers(10, 4000, n).astype(np.int32)
               for c in ("width", "height", "original_width", "original_height")},
            "query_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids)),
        }), f"{OUT}/{s:05d}.parquet")
        with open(f"{OUT}/{s:05d}_stats.json", "w") as f:
            json.dump({"shard": s, "count": n, "successes": int((st == "success").sum()),
                       "start_time": 1000 + 10 * s, "end_time": 1100 + 10 * s}, f)
    m = rng.integers(0, 100_000, 500_000)
    pq.write_table(pa.table({"query_id": np.arange(500_000), "query": [f"q{i}" for i in range(500_000)],
                             "matched": m, "kept": np.minimum(m, 20_000)}), f"{OUT}/query_counts.parquet")


def main():
    shards = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    generate(shards, n)
    from openwit.pipeline.stats import write_report

    t = time.perf_counter()
    write_report(OUT)
    secs = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"openwit-stats: {shards * n:,} rows in {shards} shards: {secs:.2f} s "
          f"({shards * n / secs:,.0f} rows/s), peak RSS {peak:.0f} MiB (incl. generation)")


if __name__ == "__main__":
    main()
