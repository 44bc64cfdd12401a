"""openwit-stats on a generated shard folder: every number is recomputed here independently."""
import bisect
import json
import random
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from openwit.pipeline.stats import compute_stats, write_report
from openwit.pipeline.stats.cli import main

T = 30
N_QUERIES = 50
TIMES = {0: (1000.0, 1060.0), 1: (1030.0, 1150.0)}  # shard 2's marker has no times
ERRORS = {
    "failed_to_download": ["http_error: 404 Not Found", "timeout: read timed out", "dns_error: x"],
    "failed_to_resize": ["decode_error: cannot identify", "truncated_image: cut"],
    "filtered": ["image_too_small: 10x12 < 64", "aspect_ratio_too_large: 9"],
}
WORDS = "a cat on the red mat near two old trees under blue sky".split()
SCHEMA = pa.schema([
    ("key", pa.string()), ("url", pa.string()), ("caption", pa.string()), ("status", pa.string()),
    ("error_message", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("original_width", pa.int32()), ("original_height", pa.int32()), ("sha256", pa.string()),
    ("exif", pa.string()), ("uid", pa.string()), ("query_ids", pa.list_(pa.int32())),
])


def _rows(shard, n, rng):
    rows = []
    for i in range(n):
        status = rng.choices(["success", "failed_to_download", "failed_to_resize", "filtered"], [6, 2, 1, 1])[0]
        ow, oh = rng.randint(20, 3000), rng.randint(20, 3000)
        row = dict(key=f"{shard:05d}{i:04d}", url=f"http://x/{shard}/{i}", caption=None, status=status,
                   error_message=None, width=None, height=None, original_width=None,
                   original_height=None, sha256=None, exif=None, uid=f"{shard}-{i}", query_ids=None)
        if status == "success":
            row.update(caption=" ".join(rng.choices(WORDS, k=rng.randint(0, 40))), width=256,
                       height=rng.choice([256, 170, 144]), original_width=ow, original_height=oh,
                       query_ids=sorted(rng.sample(range(N_QUERIES), rng.randint(0, 3))))
        else:
            row["error_message"] = rng.choice(ERRORS[status])
            if status != "failed_to_download":
                row.update(original_width=ow, original_height=oh)
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    rng = random.Random(7)
    shards = {}
    for shard, n in ((0, 150), (1, 220), (2, 90), (3, 40)):
        rows = _rows(shard, n, rng)
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), out / f"{shard:05d}.parquet")
        if shard == 3:
            continue  # no marker: an unfinished shard, must be ignored
        marker = {"shard": shard, "count": n, "successes": sum(r["status"] == "success" for r in rows),
                  "fingerprint": f"per-shard-{shard}"}
        if shard != 1:  # shard 1 is an older marker: fingerprint only
            marker["settings"] = {"image_size": 256, "resize_mode": "border"}
        marker.update(dict(zip(("start_time", "end_time"), TIMES.get(shard, ()))))
        (out / f"{shard:05d}_stats.json").write_text(json.dumps(marker))
        shards[shard] = (rows, marker)
    matched = [0] * 10 + [rng.randint(1, T) for _ in range(30)] + [rng.randint(T + 1, 500) for _ in range(10)]
    kept = [min(m, T) for m in matched]
    pq.write_table(pa.table({"query_id": list(range(N_QUERIES)), "query": [f"q{i}" for i in range(N_QUERIES)],
                             "matched": matched, "kept": kept}), out / "query_counts.parquet")
    (out / "queries_meta.json").write_text(json.dumps({"max_per_query": T}))
    return out, shards, matched, kept


def _hist_counts(values, edges):
    counts = [0] * (len(edges) - 1)
    for v in values:
        counts[min(max(bisect.bisect_right(edges, v) - 1, 0), len(counts) - 1)] += 1
    return counts


def test_numbers_match_independent_computation(built):
    out, shards, matched, kept = built
    stats = compute_stats(str(out))
    rows = [r for rs, _ in shards.values() for r in rs]
    ok = [r for r in rows if r["status"] == "success"]
    assert stats["shards"]["committed"] == 3 and stats["shards"]["uncommitted"] == [3]
    assert stats["shards"]["settings_variants"] == 2  # one settings dict + one bare fingerprint
    assert stats["shards"]["settings"] == {"image_size": 256, "resize_mode": "border"}
    assert stats["samples"] == {"attempted": len(rows), "successes": len(ok),
                                "success_rate": round(len(ok) / len(rows), 6)}
    assert stats["status_counts"] == dict(Counter(r["status"] for r in rows))
    reasons = Counter((r["status"], r["error_message"].split(":")[0]) for r in rows if r["status"] != "success")
    assert {(s, k): n for s, d in stats["reason_counts"].items() for k, n in d.items()} == dict(reasons)

    sizes = stats["image_sizes"]
    for name, values in (("original_width", [r["original_width"] for r in ok]),
                         ("height", [r["height"] for r in ok]),
                         ("aspect", [r["width"] / r["height"] for r in ok]),
                         ("original_min_side_all", [min(r["original_width"], r["original_height"])
                                                    for r in rows if r["original_width"]])):
        assert sizes[name]["counts"] == _hist_counts(values, sizes[name]["edges"]), name
        assert sizes[name]["count"] == len(values)
        assert sizes[name]["mean"] == pytest.approx(np.mean(values), abs=1e-4)
    caps = stats["captions"]
    assert caps["words"]["mean"] == pytest.approx(np.mean([len(r["caption"].split()) for r in ok]), abs=1e-4)
    assert caps["chars"]["counts"] == _hist_counts([len(r["caption"]) for r in ok], caps["chars"]["edges"])
    assert caps["empty"] == sum(r["caption"] == "" for r in ok)

    tp = stats["throughput"]
    s0, s1 = shards[0][1]["successes"], shards[1][1]["successes"]
    assert (tp["shards_timed"], tp["shards_untimed"], tp["wall_seconds"]) == (2, 1, 150.0)
    assert tp["successes_per_minute"] == pytest.approx((s0 + s1) / 150 * 60, abs=1e-3)
    assert tp["step_minutes"] == [0.0, 0.5, 1.0, 2.5]
    assert tp["step_rates"] == pytest.approx([s0, s0 + s1 / 2, s1 / 2], abs=1e-3)

    q = stats["queries"]
    head = [m for m in matched if m > T]
    assert q["t"] == T and q["balance"] == {
        "entries": N_QUERIES, "entries_zero_match": 10, "entries_tail": 30, "entries_head": len(head),
        "matches": sum(matched), "matches_in_head": sum(head),
        "head_match_share": round(sum(head) / sum(matched), 6), "kept_sum": sum(kept),
        "kept_in_head": T * len(head), "entries_kept_above_t": 0}
    hits = Counter(i for r in ok for i in r["query_ids"])
    cov = q["coverage"]
    assert cov["queries_with_success"] == len(hits)
    assert cov["successes_with_query"] == sum(bool(r["query_ids"]) for r in ok)
    assert cov["entries_with_success_share"] == round(len(hits) / N_QUERIES, 6)
    assert q["curves"]["kept"][0] == T and q["curves"]["matched"][0] == max(matched)
    assert q["curves"]["successes"][0] == max(hits.values())
    top = q["top"][0]
    assert (top["matched"], top["successes"]) == (max(matched), hits[top["query_id"]])


def test_report_files_deterministic_and_linked(built, monkeypatch):
    out = built[0]
    report = write_report(str(out))
    first = {p.name: p.read_bytes() for p in sorted((out / "report").iterdir())}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the page's one non-data line: when it was made
    write_report(str(out))
    second = {p.name: p.read_bytes() for p in sorted((out / "report").iterdir())}
    write_report(str(out))
    third = {p.name: p.read_bytes() for p in sorted((out / "report").iterdir())}
    assert second == third  # byte-identical stats.json, html and PNGs
    assert {k: v for k, v in first.items() if k != "report.html"} == {k: v for k, v in second.items() if k != "report.html"}
    assert b"2023-11-14 22:13:20 UTC" in second["report.html"]
    assert report.endswith("report")
    pngs = sorted(n for n in first if n.endswith(".png"))
    assert pngs == ["aspect.png", "balance.png", "captions.png", "domains.png", "funnel.png", "sizes.png",
                    "status.png", "throughput.png"]
    for name in pngs:
        with Image.open(out / "report" / name) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] >= 500
    html = first["report.html"].decode()
    for name in pngs:
        assert f'<img class="plot" src="{name}"' in html
    assert "<script" not in html and ">0 matches</th>" in html
    assert "2 different settings" in html and "<td>--resize-mode</td><td>border</td>" in html
    stats = json.loads(first["stats.json"])
    assert f">{stats['queries']['balance']['entries_head']:,}<" in html
    assert json.dumps(stats, sort_keys=True, indent=1, ensure_ascii=False) + "\n" == first["stats.json"].decode()


def test_cli(built, tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no shard files (*.parquet with _stats.json)") and "openwit-build" in err
    assert main([str(built[0])]) == 0
    assert capsys.readouterr().out == f"{built[0] / 'report' / 'report.html'}\n"  # absolute


def test_cli_points_to_the_dataset_and_writes_where_asked(built, tmp_path, capsys):
    out = built[0]
    assert main([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope'} does not exist (no such folder): give the --out " \
                                      f"folder of an openwit-build run\n"
    root = tmp_path / "demo-out"  # like the demo's output root: the dataset is one folder down
    (root / "queries").mkdir(parents=True)
    (root / "dataset").symlink_to(out, target_is_directory=True)
    assert main([str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no shard files in {root}, but its sub-folder {root / 'dataset'} holds a built "
                          f"dataset") and err.endswith(f"run openwit-stats {root / 'dataset'}\n")
    assert not (root / "report").exists()
    elsewhere = tmp_path / "reports" / "run1"
    assert main([str(out), "--report-dir", str(elsewhere)]) == 0
    assert capsys.readouterr().out == f"{elsewhere / 'report.html'}\n"
    assert (elsewhere / "stats.json").exists() and (elsewhere / "funnel.png").exists()
