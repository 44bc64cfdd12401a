"""Scale check for openwit-stats: 50 shards x 20,000 rows (1M samples) + a 500k-entry query_counts.

The shards look like a real build's: URLs on ~30k Zipf-distributed hosts, sha256 for every decoded
image (1% repeated), captions of varied length (3% repeated boilerplate), the failure reasons of a
web crawl (HTTP codes, timeouts, robots.txt and X-Robots-Tag opt-outs, decode errors), query ids
from a 500k list with sources, provenance (page_url, source) and downloaded formats and bytes,
candidate_counts.json, timing files and a trained tokenizer.json
(so the token-length sample is measured too). No tar files: the gallery reads a handful of images
and is not what scales. No other tool makes this report, so this only measures openwit: wall
time, peak memory and the page's size.

    .venv/bin/python benchmarks/bench_stats.py [SHARDS] [ROWS_PER_SHARD] [--repeat N] [--regenerate]
"""
import argparse
import json
import os
import resource
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benchmarks", "work", "bench_stats")
STATUSES = np.array(["success", "failed_to_download", "filtered", "failed_to_resize"])
REASONS = {
    "failed_to_download": (["http_404: Not Found", "timeout: read timed out", "http_403: Forbidden",
                            "connection_error: reset", "dns_error: no such host", "robots_txt: disallowed",
                            "opt_out_noai: X-Robots-Tag noai", "not_an_image: text/html"],
                           [0.4, 0.2, 0.1, 0.1, 0.08, 0.05, 0.04, 0.03]),
    "filtered": (["image_too_small: 40x30 < 64", "duplicate_sha256: same image as 0000000001"], [0.8, 0.2]),
    "failed_to_resize": (["decode_error: cannot identify image", "truncated_image: cut"], [0.7, 0.3]),
}
WORDS = np.array("a the photo of red blue cat dog on in with old new house car tree street view man woman "
                 "portrait landscape city night beach mountain river flower garden food table wooden "
                 "vintage black white and for sale at near by".split())
SOURCES = ["numeral"] * 100 + ["wordnet"] * 86_554 + ["unigram"] * 251_465 + ["bigram"] * 100_646


def _captions(rng, n):
    lengths = np.clip(rng.lognormal(2.2, 0.6, n).astype(int), 1, 120)
    words = WORDS[rng.integers(0, WORDS.size, int(lengths.sum()))]
    ends = np.cumsum(lengths)
    caps = [" ".join(words[e - k: e]) for e, k in zip(ends, lengths)]
    boiler = rng.random(n) < 0.03
    for i in np.flatnonzero(boiler):
        caps[i] = ["image", "click to enlarge", "product photo"][i % 3]
    return caps


def generate(shards: int, n: int) -> None:
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(OUT, "timing"), exist_ok=True)
    hosts = np.minimum(rng.zipf(1.3, shards * n), 30_000)
    total = 0
    for s in range(shards):
        st = rng.choice(STATUSES, n, p=[0.6, 0.3, 0.05, 0.05])
        ok = st == "success"
        err = np.full(n, None, dtype=object)
        for status, (msgs, p) in REASONS.items():
            idx = np.flatnonzero(st == status)
            err[idx] = np.array(msgs, dtype=object)[rng.choice(len(msgs), idx.size, p=p)]
        qlen = np.where(ok, rng.integers(1, 6, n), 0)
        offsets = np.concatenate([[0], np.cumsum(qlen)]).astype(np.int32)
        ids = rng.integers(0, 500_000, int(qlen.sum())).astype(np.int32)
        decoded = ok | (st == "filtered") | (st == "failed_to_resize")
        sha = [None if not d else f"{(total + i) if rng.random() > 0.01 else 7:064x}" for i, d in enumerate(decoded)]
        h = hosts[total: total + n]
        downloaded = decoded | np.isin(err, ["not_an_image: text/html"])
        formats = rng.choice(np.array(["jpeg", "png", "webp", "gif"], dtype=object), n, p=[0.8, 0.12, 0.05, 0.03])
        raw_bytes = rng.lognormal(11.5, 1.0, n).astype(np.int64)
        ow = rng.integers(10, 4000, n).astype(np.int32)
        oh = rng.integers(10, 4000, n).astype(np.int32)
        pq.write_table(pa.table({
            "key": [f"{s:05d}{i:05d}" for i in range(n)],
            "url": [f"https://img{hh % 7}.site{hh}.com/images/{s}/{i}.jpg" for i, hh in enumerate(h)],
            "caption": _captions(rng, n),
            "status": st, "error_message": err.tolist(),
            "width": np.where(ok, 256, 0).astype(np.int32), "height": np.where(ok, 256, 0).astype(np.int32),
            "original_width": np.where(decoded, ow, 0).astype(np.int32),
            "original_height": np.where(decoded, oh, 0).astype(np.int32),
            "sha256": sha,
            "query_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids)),
            "page_url": [f"https://site{hh}.com/page/{i % 97}" for i, hh in enumerate(h)],
            "source": [f"CC-MAIN-{s % 9}.warc.gz"] * n,
            "original_format": pa.array(np.where(downloaded, formats, None), pa.string()),
            "original_bytes": pa.array(np.where(downloaded, raw_bytes, 0), pa.int64(), mask=~downloaded),
            "image_bytes": pa.array(rng.integers(8_000, 40_000, n), pa.int64(), mask=~ok),
        }), f"{OUT}/{s:05d}.parquet")
        with open(f"{OUT}/{s:05d}_stats.json", "w") as f:
            json.dump({"shard": s, "count": n, "successes": int(ok.sum()),
                       "settings": {"image_size": 256, "resize_mode": "border", "output_format": "jpg",
                                    "samples_per_shard": n, "seed": 0}}, f)
        with open(f"{OUT}/timing/{s:05d}.json", "w") as f:
            json.dump({"shard": s, "action": "written", "start_time": 1000 + 10 * s, "end_time": 1100 + 10 * s}, f)
        total += n
    m = rng.integers(0, 100_000, 500_000)
    pq.write_table(pa.table({"query_id": np.arange(500_000), "query": [f"q{i}" for i in range(500_000)],
                             "matched": m, "kept": np.minimum(m, 20_000),
                             "source": SOURCES + ["title"] * (500_000 - len(SOURCES))}),
                   f"{OUT}/query_counts.parquet")
    kept = shards * n
    with open(f"{OUT}/candidate_counts.json", "w") as f:
        json.dump({"format": "openwit candidate counts 1", "inputs": {"files": 90, "bad_files": 1, "listed": []},
                   "records_read": 3 * kept, "extracted": 2 * kept, "extract_drops": {"empty": kept // 2, "too_short": kept // 2},
                   "unique": 2 * kept - 1000, "duplicates": 1000, "matched": kept + kept // 2, "no_match": kept // 2 - 1000,
                   "kept": kept, "balanced_out": kept // 2}, f)
    with open(f"{OUT}/queries_meta.json", "w") as f:
        json.dump({"max_per_query": 20_000, "balance": "metaclip", "oversample": 1.0, "seed": 0,
                   "queries": "queries"}, f)
    from openwit.loader.dataset_tokenizer import train_dataset_tokenizer

    train_dataset_tokenizer(OUT, 2000, limit=20_000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shards", type=int, nargs="?", default=50)
    ap.add_argument("rows", type=int, nargs="?", default=20_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--regenerate", action="store_true", help="remake the shard folder (else reused when there)")
    a = ap.parse_args()
    shards, n, repeat = a.shards, a.rows, a.repeat
    marker = os.path.join(OUT, f"generated-v2-{shards}x{n}")  # v2: provenance and file-size columns
    generated = a.regenerate or not os.path.exists(marker)
    if generated:
        import shutil

        shutil.rmtree(OUT, ignore_errors=True)
        generate(shards, n)
        open(marker, "w").close()
    from openwit.pipeline.stats import write_report

    times = []
    for _ in range(repeat):
        load = os.getloadavg()[0]
        t = time.perf_counter()
        write_report(OUT)
        times.append(time.perf_counter() - t)
        print(f"  run: {times[-1]:.2f} s (load average {load:.1f})", flush=True)
    secs = sorted(times)[len(times) // 2]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    page = os.path.getsize(os.path.join(OUT, "report", "report.html"))
    folder = sum(os.path.getsize(os.path.join(OUT, "report", f)) for f in os.listdir(os.path.join(OUT, "report")))
    print(f"openwit-stats: {shards * n:,} rows in {shards} shards: median {secs:.2f} s of {len(times)} "
          f"({shards * n / secs:,.0f} rows/s), peak RSS {peak:.0f} MiB{' (incl. generation)' if generated else ''}, "
          f"report.html {page / 1e3:.0f} kB, report/ {folder / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
