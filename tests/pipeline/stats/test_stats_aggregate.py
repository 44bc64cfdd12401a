"""stats/aggregate.py directly: fixed-edge histograms, per-batch folding independent of batch
boundaries, and the throughput sweep."""
import numpy as np
import pyarrow as pa
import pytest

from openwit.pipeline.stats.aggregate import COLUMNS, Histogram, ShardRows, throughput

ROWS = [
    {"status": "success", "error_message": None, "width": 256, "height": 128, "original_width": 800,
     "original_height": 400, "caption": "a red square", "query_ids": [0, 2]},
    {"status": "success", "error_message": None, "width": 128, "height": 128, "original_width": 64,
     "original_height": 64, "caption": "", "query_ids": []},
    {"status": "failed_to_download", "error_message": "http_404: Not Found", "width": None, "height": None,
     "original_width": None, "original_height": None, "caption": "gone", "query_ids": [1]},
    {"status": "filtered", "error_message": "image_too_small", "width": None, "height": None,
     "original_width": 4, "original_height": 4, "caption": "tiny", "query_ids": [1]},
    {"status": "success", "error_message": None, "width": 100, "height": 50, "original_width": 100,
     "original_height": 50, "caption": "two  words", "query_ids": [2, -1]},
]
SCHEMA = pa.schema([("status", pa.string()), ("error_message", pa.string()), ("width", pa.int32()),
                    ("height", pa.int32()), ("original_width", pa.int32()), ("original_height", pa.int32()),
                    ("caption", pa.string()), ("query_ids", pa.list_(pa.int32()))])


def _fold(batch_rows: int) -> ShardRows:
    rows = ShardRows()
    for batch in pa.Table.from_pylist(ROWS, schema=SCHEMA).to_batches(max_chunksize=batch_rows):
        rows.add(batch)
    return rows


def test_histogram_bins_and_clipping():
    h = Histogram([0, 10, 20, 30])
    h.add(np.array([-5, 0, 9.5, 10, 29, 1000]))
    h.add(np.array([]))
    d = h.to_dict()
    assert d["counts"] == [3, 1, 2] and d["count"] == 6  # outside values go to the end bins
    assert (d["min"], d["max"]) == (-5, 1000) and d["mean"] == pytest.approx((-5 + 9.5 + 10 + 29 + 1000) / 6, abs=1e-4)
    assert Histogram([0, 1]).to_dict()["mean"] is None


def test_rows_fold_the_same_in_any_batching():
    whole, one_by_one = _fold(len(ROWS)), _fold(1)
    for r in (whole, one_by_one):
        assert dict(r.status) == {"success": 3, "failed_to_download": 1, "filtered": 1}
        assert dict(r.reasons) == {("failed_to_download", "http_404"): 1, ("filtered", "image_too_small"): 1}
        assert r.empty_captions == 1 and r.with_query == 2 and r.bad_query_ids == 1 and r.query_links == 3
        assert r.query_hits.tolist() == [1, 0, 2]  # successes per query id (failures do not count)
        assert r.hist["width"].n == 3 and r.hist["original_min_side_all"].n == 4  # the 404 has no size
        assert r.words.to_dict()["counts"][:2] == [1, 2]  # bins of 2 words: "" → [0, 2); 2 and 3 words → [2, 4)
    assert {k: h.to_dict() for k, h in whole.hist.items()} == {k: h.to_dict() for k, h in one_by_one.hist.items()}
    assert set(COLUMNS) == set(SCHEMA.names)


def test_missing_columns_read_as_nulls():
    rows = ShardRows()
    rows.add(pa.RecordBatch.from_pylist([{"status": "success"}, {"status": None}]))
    assert dict(rows.status) == {"success": 1, "unknown": 1} and rows.hist["width"].n == 0


def test_throughput_sweep():
    shards = [{"start_time": 0, "end_time": 60, "successes": 60},
              {"start_time": 30, "end_time": 90, "successes": 120},
              {"start_time": 5, "end_time": 5, "successes": 9},  # zero length: untimed
              {"successes": 3}]
    t = throughput(shards)
    assert (t["shards_timed"], t["shards_untimed"], t["successes"], t["wall_seconds"]) == (2, 2, 180, 90)
    assert t["step_minutes"] == [0.0, 0.5, 1.0, 1.5] and t["step_rates"] == [60.0, 180.0, 120.0]
    assert t["peak_successes_per_minute"] == 180.0 and t["successes_per_minute"] == 120.0
    assert throughput([{"successes": 1}]) == {"shards_timed": 0, "shards_untimed": 1}
