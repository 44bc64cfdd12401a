"""stats' pure pieces directly: fitted distributions and percentiles, string hashes and duplicate
counts, per-domain tallies, per-batch folding independent of batch boundaries, the throughput
sweep and the human units."""
import math

import numpy as np
import pyarrow as pa
import pytest

from openwit.pipeline.stats.aggregate import COLUMNS, ShardRows, throughput
from openwit.pipeline.stats.dist import Dist
from openwit.pipeline.stats.distinct import Distinct, hash_strings
from openwit.pipeline.stats.domains import DomainTally, hosts
from openwit.pipeline.stats.units import duration, pct, rate, size

ROWS = [
    {"url": "http://a.org/1.jpg", "status": "success", "error_message": None, "width": 256, "height": 128,
     "original_width": 800, "original_height": 400, "caption": "a red square", "query_ids": [0, 2], "sha256": "aa"},
    {"url": "http://www.a.org/2.jpg", "status": "success", "error_message": None, "width": 128, "height": 128,
     "original_width": 64, "original_height": 64, "caption": "", "query_ids": [], "sha256": "aa"},
    {"url": "https://b.net/x", "status": "failed_to_download", "error_message": "http_404: Not Found", "width": None,
     "height": None, "original_width": None, "original_height": None, "caption": "gone", "query_ids": [1],
     "sha256": None},
    {"url": "https://b.net/y", "status": "filtered", "error_message": "image_too_small", "width": None, "height": None,
     "original_width": 4, "original_height": 4, "caption": "tiny", "query_ids": [1], "sha256": "bb"},
    {"url": "http://a.org/1.jpg", "status": "success", "error_message": None, "width": 100, "height": 50,
     "original_width": 100, "original_height": 50, "caption": "two  words", "query_ids": [2, -1], "sha256": "cc"},
]
SCHEMA = pa.schema([("url", pa.string()), ("status", pa.string()), ("error_message", pa.string()),
                    ("width", pa.int32()), ("height", pa.int32()), ("original_width", pa.int32()),
                    ("original_height", pa.int32()), ("caption", pa.string()), ("query_ids", pa.list_(pa.int32())),
                    ("sha256", pa.string()), ("original_format", pa.string()), ("original_bytes", pa.int64()),
                    ("image_bytes", pa.int64())])
FILES = [("jpeg", 90_000, 20_000), ("png", 5_000, 3_000), (None, None, None), ("png", 40, None), ("jpeg", 7_000, 6_000)]
for _row, (_fmt, _raw, _written) in zip(ROWS, FILES):
    _row.update(original_format=_fmt, original_bytes=_raw, image_bytes=_written)


def _fold(batch_rows: int) -> ShardRows:
    rows = ShardRows(source_of=np.array([0, 1, 1]))
    for batch in pa.Table.from_pylist(ROWS, schema=SCHEMA).to_batches(max_chunksize=batch_rows):
        rows.add(batch)
    return rows


def _nearest_rank(values, q):
    return sorted(values)[max(1, math.ceil(q / 100 * len(values))) - 1]


def test_dist_percentiles_and_fitted_bins():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.integers(20, 3000, 5000), [9000, 123_456]])
    d = Dist("int", "log")
    for part in np.array_split(values, 7):
        d.add(part)
    out = d.to_dict()
    for q in (1, 5, 50, 95, 99):  # exact below 4,096 (one bin per integer)
        assert out["percentiles"][f"p{q}"] == _nearest_rank(values.tolist(), q)
    assert (out["min"], out["max"], out["count"]) == (values.min(), 123_456, values.size)
    assert out["edges"][0] <= values.min() and out["edges"][-1] > values.max() and sum(out["counts"]) == values.size
    assert 20 <= len(out["counts"]) <= 60 and out["scale"] == "log"

    lin = Dist("int")  # linear: the long tail folds into a last "≥ x" bin
    lin.add(np.concatenate([np.arange(100), [5000]]))
    out = lin.to_dict()
    assert out["overflow_from"] == 100 and out["counts"][-1] == 1 and out["edges"][:3] == [0, 2, 4]
    assert sum(out["counts"]) == 101 and out["edges"][-1] > 5000

    ratio = Dist("ratio", "log")
    ratio.add([0.5, 1.0, 1.0, 4 / 3, 2.0])
    assert ratio.percentiles() == {"p1": 0.5, "p5": 0.5, "p50": 1, "p95": 2, "p99": 2}  # real values, not bin middles
    assert Dist().to_dict()["percentiles"]["p50"] is None and Dist().to_dict()["counts"] == []


def test_hashes_and_duplicates():
    urls = pa.array([f"http://127.0.0.1:8000/img/{i:05d}.jpg" for i in range(50_000)])
    h = hash_strings(urls)
    assert np.unique(h).size == 50_000  # near-identical strings stay apart
    assert np.array_equal(hash_strings(urls.slice(10, 20)), h[10:30])  # sliced arrays hash the same
    assert len(set(hash_strings(pa.array(["", "a", "a\x00", "\x00a", "ab", "ba", None])).tolist())) == 6  # None == ""
    d = Distinct()
    texts = pa.array(["x", "y", "x", "z", "x"])
    d.add(hash_strings(texts), texts)
    d.add(hash_strings(pa.array(["y", "w"])), pa.array(["y", "w"]))
    out = d.to_dict()
    assert (out["values"], out["distinct"], out["duplicates"], out["repeated_values"]) == (7, 4, 3, 2)
    assert out["top"] == [{"count": 3, "example": "x"}, {"count": 2, "example": "y"}]
    small = Distinct(cap=40)  # past the cap: a deterministic hash sample, counts marked as estimates
    many = pa.array([f"v{i % 50}" for i in range(400)])
    small.add(hash_strings(many), many)
    est = small.to_dict()
    assert est["sampled_1_in"] > 1 and est["duplicates"] % est["sampled_1_in"] == 0


def test_domains():
    assert hosts(pa.array(["http://www.Example.com/a", "https://u@img.x.org:8080/p?q", "//x", None,
                           "http://[::1]:80/"])).to_pylist() == [
        "example.com", "img.x.org", "(no host)", "(no host)", "[::1]"]
    d = DomainTally(max_rows=1)  # re-grouping on every batch gives the same totals
    for part in range(2):
        d.add(pa.array(["http://a.org/1", "http://a.org/2", "http://b.org/3"]), pa.array([True, False, False]),
              pa.array([None, "robots_txt", "opt_out_noai"]))
    out = d.to_dict()
    assert [(r["domain"], r["attempted"], r["successes"], r["robots_txt"], r["x_robots_tag"])
            for r in out["top_by_samples"]] == [("a.org", 4, 2, 2, 0), ("b.org", 2, 0, 0, 2)]
    assert [r["domain"] for r in out["top_by_failure_rate"]] == ["b.org", "a.org"]
    assert out["opt_outs"] == {"robots_txt": 2, "x_robots_tag": 2, "domains": 2} and out["top10_success_share"] == 1.0


def test_rows_fold_the_same_in_any_batching():
    whole, one_by_one = _fold(len(ROWS)), _fold(1)
    for r in (whole, one_by_one):
        assert dict(r.status) == {"success": 3, "failed_to_download": 1, "filtered": 1}
        assert dict(r.reasons) == {("failed_to_download", "http_404"): 1, ("filtered", "image_too_small"): 1}
        assert r.empty_captions == 1 and r.with_query == 2 and r.bad_query_ids == 1 and r.query_links == 3
        assert r.query_hits.tolist() == [1, 0, 2]  # successes per query id (failures do not count)
        assert r.source_samples.tolist() == [1, 2]  # successes with ≥1 entry of source 0 / 1
        assert r.hist["width"].n == 3 and r.hist["original_min_side_all"].n == 4  # the 404 has no size
        assert r.words.percentiles()["p50"] == 2 and r.token_captions == ["a red square", "", "two  words"]
        assert (r.urls.to_dict()["duplicates"], r.images.to_dict()["duplicates"]) == (1, 1)
        assert dict(r.formats) == {"jpeg": 2, "png": 2}  # every downloaded file, written or not
        assert (r.original_bytes.n, r.original_bytes.lo, r.original_bytes.hi) == (4, 40, 90_000)
        assert (r.image_bytes.n, r.image_bytes.lo, r.image_bytes.hi) == (3, 3_000, 20_000)
    assert whole.original_bytes.to_dict() == one_by_one.original_bytes.to_dict()
    assert {k: h.to_dict() for k, h in whole.hist.items()} == {k: h.to_dict() for k, h in one_by_one.hist.items()}
    assert whole.domains.to_dict() == one_by_one.domains.to_dict()
    assert set(COLUMNS) == set(SCHEMA.names)


def test_missing_columns_read_as_nulls():
    rows = ShardRows()
    rows.add(pa.RecordBatch.from_pylist([{"status": "success"}, {"status": None}]))
    assert dict(rows.status) == {"success": 1, "unknown": 1} and rows.hist["width"].n == 0
    assert rows.domains.to_dict()["distinct"] == 0


def test_throughput_sweep():
    shards = [{"start_time": 0, "end_time": 60, "successes": 60},
              {"start_time": 30, "end_time": 90, "successes": 120},
              {"start_time": 5, "end_time": 5, "successes": 9},  # zero length: untimed
              {"successes": 3}]
    t = throughput(shards)
    assert (t["shards_timed"], t["shards_untimed"], t["successes"], t["wall_seconds"]) == (2, 2, 180, 90)
    assert t["step_minutes"] == [0.0, 0.5, 1.0, 1.5] and t["step_rates"] == [60.0, 180.0, 120.0]
    assert t["peak_successes_per_minute"] == 180.0 and t["successes_per_minute"] == 120.0
    assert (t["successes_per_second"], t["peak_successes_per_second"]) == (2.0, 3.0)
    assert throughput([{"successes": 1}]) == {"shards_timed": 0, "shards_untimed": 1}


@pytest.mark.parametrize("fn,value,text", [
    (pct, 0.987, "98.7%"), (pct, 0.0086, "0.86%"), (pct, 0.99996, "99.996%"), (pct, 1, "100%"),
    (size, 3_400_000, "3.4 MB"), (size, 12, "12 B"), (duration, 0.925, "0.93 s"), (duration, 185, "3 min 05 s"),
    (rate, 14_980, "15 k/s"), (rate, 249.4, "249/s"), (rate, 0.5, "30/min")])
def test_units(fn, value, text):
    assert fn(value) == text
