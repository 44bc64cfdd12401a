"""Balancing: MetaCLIP probabilities, keyed draws, exact bottom-k, and the two-pass Beam pipeline."""
import math

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openwit.common.beamrun import pipeline_options
from openwit.pipeline.candidates import balance
from openwit.pipeline.candidates import Candidates

T = 200
# texts matching exactly one query, by query; bravo is matched by 10·t texts
POOL = {"alpha": 100, "bravo": 10 * T, "charlie": 50, "delta": 150, "echo": 300, "foxtrot": 600, "golf": 1000}
MULTI = {"foxtrot golf": 400, "charlie golf": 60}  # texts matching two queries


def _five_sigma(n, p):
    return 5 * math.sqrt(n * p * (1 - p)) + 1


def _write_pool(tmp_path):
    names = list(POOL)
    qdir = tmp_path / "q"
    qdir.mkdir()
    pq.write_table(pa.table({"query": names, "source": ["unigram"] * len(names), "score": [1.0] * len(names)}),
                   qdir / "queries.parquet")
    urls, captions = [], []
    for words, count in {**POOL, **MULTI}.items():
        for i in range(count):
            urls.append(f"https://img.example/{words.replace(' ', '-')}/{i}.jpg")
            captions.append(f"{words} sample {i}")
    for i in range(50):  # match nothing
        urls.append(f"https://img.example/none/{i}.jpg")
        captions.append(f"nothing here {i}")
    pq.write_table(pa.table({"url": urls, "caption": captions}), tmp_path / "pool.parquet")
    return qdir


def _run(tmp_path, out, **kw):
    qdir = tmp_path / "q" if (tmp_path / "q").exists() else _write_pool(tmp_path)
    with beam.Pipeline(options=pipeline_options([])) as p:
        p | Candidates([str(tmp_path / "pool.parquet")], str(qdir), str(out), **kw)
    counts = pq.read_table(out / "query_counts.parquet").to_pylist()
    return {r["query"]: (r["matched"], r["kept"]) for r in counts}


def test_keep_probability_and_draws():
    assert balance.keep_probability([100], 200) == 1.0
    assert balance.keep_probability([400, 800], 200) == pytest.approx(1 - 0.5 * 0.75)
    assert balance.draw(0, "u1", 3) == balance.draw(0, "u1", 3) != balance.draw(1, "u1", 3)
    over = {1: 400, 2: 800}
    n = 20_000
    kept = sum(balance.keep_metaclip(f"uid{i}", [1, 2], over, 200, 0) for i in range(n))
    p = balance.keep_probability([400, 800], 200)
    assert abs(kept - n * p) <= _five_sigma(n, p)
    assert balance.keep_metaclip("u", [1, 7], over, 200, 0)  # query 7 is under the cap: always kept


def test_exact_keeps_bottom_k():
    uids = [f"u{i}" for i in range(1000)]
    ranks = sorted(balance.rank_key(5, u, 9) for u in uids)
    thresholds = {9: ranks[99]}
    kept = [u for u in uids if balance.keep_exact(u, [9], thresholds, 5)]
    assert len(kept) == 100
    assert balance.exact_cap(20_000, 1.5) == 30_000


def test_metaclip_pipeline_counts_and_rerun(tmp_path):
    got = _run(tmp_path, tmp_path / "out1", max_per_query=T, seed=3)
    for word, count in POOL.items():
        assert got[word][0] == count + sum(n for m, n in MULTI.items() if word in m.split())
    # under the cap: kept whole (alpha: 100 texts; charlie: 50 single + 60 shared with golf)
    assert got["alpha"] == (100, 100) and got["charlie"] == (110, 110) and got["delta"] == (150, 150)
    for word in ("bravo", "echo"):  # single-query texts over the cap: Binomial(count, t/count) ≈ t
        n = POOL[word]
        assert abs(got[word][1] - T) <= _five_sigma(n, T / n), (word, got[word])
    for word in ("foxtrot", "golf"):  # shared texts have two chances: a bit over t
        assert T - _five_sigma(1460, T / 1460) <= got[word][1] <= 2 * T
    files = sorted((tmp_path / "out1" / "candidates").glob("*.parquet"))
    table = pq.read_table(files[0])
    assert table.column_names == ["url", "caption", "query_ids", "source", "page_url", "uid"]
    assert table.schema.field("query_ids").type == pa.list_(pa.int32())
    uids = table.column("uid").to_pylist()
    assert uids == sorted(uids) and len(set(uids)) == len(uids)
    assert "nothing here 1" not in table.column("caption").to_pylist()

    _run(tmp_path, tmp_path / "out2", max_per_query=T, seed=3)
    for name in ("query_counts.parquet", f"candidates/{files[0].name}"):
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()
    other = _run(tmp_path, tmp_path / "out3", max_per_query=T, seed=4)
    assert pq.read_table(tmp_path / "out3" / "candidates").column("uid").to_pylist() != uids
    assert other["alpha"] == got["alpha"]


def test_exact_mode_and_oversample(tmp_path):
    got = _run(tmp_path, tmp_path / "exact", max_per_query=T, mode="exact", seed=1)
    for word, (matched, kept) in got.items():
        assert kept <= min(matched, T), (word, matched, kept)
    # single-query texts only: exactly min(count, t)
    assert [got[w][1] for w in ("alpha", "bravo", "delta", "echo")] == [100, T, 150, T]
    over = _run(tmp_path, tmp_path / "over", max_per_query=T, oversample=1.5, seed=1)
    n = POOL["bravo"]
    assert abs(over["bravo"][1] - 1.5 * T) <= _five_sigma(n, 1.5 * T / n)
    assert over["echo"] == (300, 300)  # 300 ≤ 1.5·t: kept whole


def test_many_files_and_stale_cleanup(tmp_path):
    out = tmp_path / "out"
    _run(tmp_path, out, max_per_query=T, seed=3)
    assert [f.name for f in (out / "candidates").glob("*.parquet")] == ["candidates-00000-of-00001.parquet"]
    before = pq.read_table(out / "candidates").column("uid").to_pylist()
    _run(tmp_path, out, max_per_query=T, seed=3, rows_per_file=300)
    names = sorted(f.name for f in (out / "candidates").glob("*.parquet"))
    n = len(names)
    assert n > 1 and names == [f"candidates-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert sorted(pq.read_table(out / "candidates").column("uid").to_pylist()) == sorted(before)
