"""End-to-end: real images and misbehaving routes on a loopback server → shards, resume, retry, errors.

Drives `python -m openwit.pipeline.shards` (in-process `main`, FnApiRunner) on candidate Parquet.
"""
import hashlib
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from loopback_server import LoopbackProxy, LoopbackServer

from openwit.common.hashing import blake_hex
from openwit.pipeline.shards import main

# route → (status, reason) with --timeout 3 --retries 1 (see tests/loopback_server.py for routes)
BAD = {
    "/status/404": ("failed_to_download", "http_404"),
    "/html-as-jpeg": ("failed_to_download", "not_an_image"),
    "/empty": ("failed_to_download", "empty_body"),
    "/truncated/images/sklearn/china.jpg": ("failed_to_resize", "truncated_image"),
    "/bomb.png": ("failed_to_resize", "decompression_bomb"),
    "/trickle/0.5/100000": ("failed_to_download", "timeout"),
    "/endless": ("failed_to_download", "too_large"),
    "/huge": ("failed_to_download", "too_large"),
    "/loop/0": ("failed_to_download", "too_many_redirects"),
    "/reset": ("failed_to_download", "connection_error"),
    "/robots-tag/images/sklearn/flower.jpg?v=noai": ("failed_to_download", "opt_out_noai"),
    "/flaky/503/2/images/skimage/rocket.jpg": ("failed_to_download", "http_503"),  # ok on a 3rd request
}
RECOVERS = {"/flaky/429/1/images/skimage/coffee.png?retry_after=1": ("success", None)}  # Retry-After honoured


@pytest.fixture(scope="module")
def server(shared_data):
    with LoopbackServer() as srv:
        yield srv


def _write_candidates(path: Path, urls: list[str]) -> str:
    rows = [{"url": u, "caption": f"photo {u.rsplit('/', 1)[-1]}"} for u in urls]
    for i, r in enumerate(rows):
        r.update(uid=blake_hex(r["url"], r["caption"]), query_ids=[len(r["caption"])], source=f"crawl-{i % 3}.warc.gz",
                 page_url=f"https://example.org/page/{i}" if i % 4 else None)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def _candidates(tmp_path: Path, srv: LoopbackServer) -> str:
    paths = srv.image_paths() + list(BAD) + list(RECOVERS)
    return _write_candidates(tmp_path / "cands.parquet", [srv.url(p) for p in paths])


def _flags(out, cands, *extra, workers="2"):
    """Two image worker processes unless told (the local default is one per core)."""
    return ["--candidates", cands, "--out", str(out), "--samples-per-shard", "8", "--image-size", "64",
            "--allow-private-addresses", "--timeout", "3", "--retries", "1", "--workers", workers, *extra]


def _digest(out: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())
            if p.is_file() and p.name[0].isdigit()}


@pytest.fixture(scope="module")
def built(server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    cands = _candidates(tmp, server)
    out = tmp / "out"
    start = time.monotonic()
    assert main(_flags(out, cands)) == 0
    return out, cands, server, time.monotonic() - start


def _rows(out: Path) -> list[dict]:
    return pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("*.parquet"))]).to_pylist()


def test_every_url_gets_its_status_and_reason(built):
    out, _, srv, secs = built
    rows = {r["url"]: r for r in _rows(out)}
    assert len(rows) == len(srv.image_paths()) + len(BAD) + len(RECOVERS)
    for p in srv.image_paths():
        assert rows[srv.url(p)]["status"] == "success", rows[srv.url(p)]
    for path, (status, reason) in {**BAD, **RECOVERS}.items():
        row = rows[srv.url(path)]
        got_reason = row["error_message"].split(":")[0] if row["error_message"] else None
        assert (row["status"], got_reason) == (status, reason), row
    stats = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    assert sum(s["status_dict"].get("too_large", 0) for s in stats) == 2
    # every URL ends by its deadline: (retries+1) x 3 s + backoff, shards built one after another
    assert secs < 45
    assert (out / "report" / "stats.json").exists()  # the run ends with openwit's stats report
    # fetch times are kept beside the shards (not in them, so reruns stay byte-identical) for the report
    timing = [json.loads(p.read_text()) for p in sorted((out / "timing").glob("*.json"))]
    assert len(timing) == len(stats) and all(t["end_time"] >= t["start_time"] > 1.7e9 for t in timing)
    report = json.loads((out / "report" / "stats.json").read_text())
    assert "throughput" in json.dumps(report) and (out / "report" / "throughput.png").exists()


def test_rows_trace_back_to_page_and_input_and_record_file_sizes(built):
    out, cands, srv, _ = built
    cand = {r["url"]: r for r in pq.read_table(cands).to_pylist()}
    rows = _rows(out)
    assert len(rows) == len(cand)
    for row in rows:
        assert (row["page_url"], row["source"]) == (cand[row["url"]]["page_url"], cand[row["url"]]["source"])
    by_url = {r["url"]: r for r in rows}
    for p in srv.image_paths():
        row = by_url[srv.url(p)]
        served = (srv.images_dir / p.split("/images/", 1)[1]).read_bytes()
        assert row["original_bytes"] == len(served)
        assert row["original_format"] == {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"}[p.rsplit(".", 1)[1].lower()]
        tar_name = f"{row['key']}.jpg"
        assert row["image_bytes"] == _tar_sizes(out)[tar_name]
    failed = by_url[srv.url("/status/404")]
    assert failed["original_bytes"] is None and failed["original_format"] is None and failed["image_bytes"] is None
    bad = by_url[srv.url("/bomb.png")]  # downloaded, not written
    assert bad["original_format"] == "png" and bad["original_bytes"] > 0 and bad["image_bytes"] is None
    files = json.loads((out / "report" / "stats.json").read_text())["files"]
    assert sum(files["original_formats"].values()) == files["original_bytes"]["count"] == sum(
        r["original_bytes"] is not None for r in rows)
    assert files["image_bytes"]["count"] == sum(r["status"] == "success" for r in rows)
    assert files["image_bytes"]["max"] == max(r["image_bytes"] or 0 for r in rows)


def _tar_sizes(out: Path) -> dict:
    import tarfile
    sizes = {}
    for p in sorted(out.glob("*.tar")):
        with tarfile.open(p) as tar:
            sizes.update({m.name: m.size for m in tar.getmembers()})
    return sizes


def test_shards_are_full_readable_and_counted(built):
    out, _, srv, _ = built
    names = srv.image_paths()
    n = len(names) + len(BAD) + len(RECOVERS)
    assert sorted(p.name for p in out.glob("*.tar")) == [f"{i:05d}.tar" for i in range((n + 7) // 8)]
    sizes = [pq.read_metadata(p).num_rows for p in sorted(out.glob("*.parquet"))]
    assert sizes[:-1] == [8] * (len(sizes) - 1)
    samples = list(wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False)
                   .decode("pil").to_tuple("jpg", "txt"))
    assert len(samples) == len(names) + len(RECOVERS)
    assert all(img.size == (64, 64) and txt.startswith("photo ") for img, txt in samples)


def test_rerun_skips_and_is_byte_identical(built):
    out, cands, *_ = built
    before = _digest(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("0*")}
    assert main(_flags(out, cands)) == 0
    assert _digest(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.glob("0*")} == mtimes  # skipped, not rewritten


def _stateless_candidates(server, tmp_path: Path) -> str:
    """The routes whose answer does not depend on how often they were asked (no /flaky/...)."""
    stateless = [p for p in server.image_paths() + list(BAD) if "/flaky/" not in p]
    return _write_candidates(tmp_path / "cands.parquet", [server.url(p) for p in stateless])


def test_same_bytes_with_one_process_and_with_worker_processes(server, tmp_path):
    """Decoding in this process or in 3 worker processes: the same shard bytes."""
    cands = _stateless_candidates(server, tmp_path)
    digests = []
    for workers in ("1", "3"):
        assert main(_flags(tmp_path / workers, cands, "--no-report", workers=workers)) == 0
        digests.append(_digest(tmp_path / workers))
    assert digests[0] == digests[1] and len(digests[0]) == 3 * 5  # 38 samples, 8 per shard


@pytest.mark.slow
def test_same_bytes_with_beam_worker_processes_each_with_image_workers(server, tmp_path):
    """Beam's multi-processing mode (several SDK worker processes, each with its own image worker
    pool: the recommended setting for many cores) writes the same shards as one process."""
    cands = _stateless_candidates(server, tmp_path)
    assert main(_flags(tmp_path / "one", cands, "--no-report", workers="1")) == 0
    assert main(_flags(tmp_path / "many", cands, "--no-report", "--direct_num_workers", "2",
                       "--direct_running_mode", "multi_processing")) == 0
    assert _digest(tmp_path / "many") == _digest(tmp_path / "one")


def test_decode_margin_and_resample_are_in_the_fingerprint(built, capsys):
    out, cands, *_ = built
    before = _digest(out)
    marker = json.loads(next(out.glob("*_stats.json")).read_text())
    assert "decode_margin" not in marker["settings"]  # the default (2) as before the setting existed
    assert marker["settings"]["resample"] == "area"  # not the Pillow BOX every earlier build used
    assert main(_flags(out, cands, "--decode-margin", "1")) == 2
    err = capsys.readouterr().err
    assert "decode_margin: 2 -> 1" in err and _digest(out) == before
    assert main(_flags(out, cands, "--resample", "box")) == 2
    assert "resample: 'area' -> 'box'" in capsys.readouterr().err and _digest(out) == before
    assert marker["settings"]["area_kernel"] == "openwit"
    assert main(_flags(out, cands, "--area-kernel", "opencv")) == 2
    assert "area_kernel: 'openwit' -> 'opencv'" in capsys.readouterr().err and _digest(out) == before


def test_folder_built_with_opencv_area_resumes_with_its_flag(server, tmp_path, capsys):
    """`--area-kernel opencv` writes the fingerprints of a folder whose area average OpenCV computed
    (openwit's default before its own kernel: no key): the default stops there with the flag that
    finishes it as built; with that flag the missing shard is built again, byte for byte."""
    cands, out = _candidates(tmp_path, server), tmp_path / "out"
    assert main(_flags(out, cands, "--area-kernel", "opencv", "--no-report")) == 0
    markers = [json.loads(p.read_text())["settings"] for p in out.glob("*_stats.json")]
    assert markers and all(m["resample"] == "area" and "area_kernel" not in m for m in markers)
    built = _digest(out)
    victim = next(p for p in sorted(out.glob("*.tar")) if p.stem + "_stats.json" in built)
    for p in out.glob(victim.stem + "*"):
        p.unlink()
    assert main(_flags(out, cands, "--no-report")) == 2
    err = capsys.readouterr().err
    assert "area_kernel: 'opencv' -> 'openwit'" in err and "(--area-kernel opencv builds as it was built)" in err
    assert "resample" not in err
    assert main(_flags(out, cands, "--no-report", "--area-kernel", "opencv")) == 0
    assert _digest(out) == built


def test_folder_built_before_resample_existed_resumes_with_its_flag(server, tmp_path, capsys):
    """`--resample box` writes the fingerprints of a folder built before the setting existed (Pillow
    BOX, no key): the default (area) stops there with the flag that finishes it as built; with that
    flag the missing shard is built again, byte for byte."""
    cands, out = _candidates(tmp_path, server), tmp_path / "out"
    assert main(_flags(out, cands, "--resample", "box", "--no-report")) == 0
    assert all("resample" not in json.loads(p.read_text())["settings"] for p in out.glob("*_stats.json"))
    built = _digest(out)
    victim = next(p for p in sorted(out.glob("*.tar")) if p.stem + "_stats.json" in built)
    for p in out.glob(victim.stem + "*"):
        p.unlink()  # one shard to build again on resume
    assert main(_flags(out, cands, "--no-report")) == 2
    err = capsys.readouterr().err
    assert "resample: 'box' -> 'area'" in err and "(--resample box builds as it was built)" in err
    assert main(_flags(out, cands, "--no-report", "--resample", "box")) == 0
    assert _digest(out) == built


def test_changed_setting_stops_with_one_line(built, capsys):
    out, cands, *_ = built
    before = _digest(out)
    assert main(_flags(out, cands, "--image-size", "32")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "image_size: 64 -> 32" in err[0]
    assert _digest(out) == before


def test_retry_failed_refetches_only_failures(built):
    out, cands, srv, _ = built
    flaky = srv.url("/flaky/503/2/images/skimage/rocket.jpg")
    before = {r["url"]: r for r in _rows(out)}
    assert main(_flags(out, cands, "--retry-failed")) == 0
    rows = {r["url"]: r for r in _rows(out)}
    assert rows[flaky]["status"] == "success"
    assert (rows[flaky]["page_url"], rows[flaky]["source"]) == (before[flaky]["page_url"], before[flaky]["source"])
    assert rows[flaky]["original_bytes"] > 0 and rows[flaky]["image_bytes"] > 0  # provenance kept, sizes filled
    assert rows[srv.url("/bomb.png")]["status"] == "failed_to_resize"  # not a download failure: kept
    assert {u: r for u, r in rows.items() if r["status"] == "success" and u != flaky} == \
        {u: r for u, r in before.items() if r["status"] == "success"}
    keys = [s["__key__"] for s in wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False)]
    assert rows[flaky]["key"] in keys and keys == sorted(keys)


def test_private_redirect_refused_through_proxy(server, tmp_path):
    """Without --allow-private-addresses (names resolved by a proxy): a redirect to 169.254.x is refused."""
    with LoopbackProxy({"images.test": f"127.0.0.1:{server.port}"}) as proxy:
        urls = ["http://images.test/images/skimage/chelsea.png", "http://images.test/to-private"]
        cands = _write_candidates(tmp_path / "c.parquet", urls)
        assert main(["--candidates", cands, "--out", str(tmp_path / "out"), "--image-size", "32",
                     "--proxy", proxy.url, "--timeout", "3"]) == 0
    rows = {r["url"]: r for r in _rows(tmp_path / "out")}
    assert rows[urls[0]]["status"] == "success"
    assert rows[urls[1]]["status"] == "failed_to_download"
    assert rows[urls[1]]["error_message"].startswith("private_address")


def test_counters_per_status_and_reason(server, tmp_path):
    """run_shards (library entry) on in-memory rows: Beam counters per status and per reason."""
    import argparse

    from openwit.pipeline.shards import run_shards

    urls = [server.url("/images/skimage/moon.png"), server.url("/status/404"), server.url("/html-as-jpeg")]
    rows = [{"url": u, "caption": "c", "uid": blake_hex(u), "query_ids": [1]} for u in urls]
    args = argparse.Namespace(image_size=32, allow_private_addresses=True, retries=0, report=False)
    totals = run_shards(rows, str(tmp_path / "out"), args, [])
    assert totals["successes"] == 1 and totals["failed_to_download"] == 2
    assert totals["counters"] == {"success": 1, "failed_to_download": 2, "reason_http_404": 1,
                                  "reason_not_an_image": 1, "shards_written": 1}
    again = run_shards(rows, str(tmp_path / "out"), args, [])
    assert again["counters"] == {"shards_skipped": 1}


def test_a_build_started_through_the_launcher_adopts_its_early_workers(server, tmp_path, monkeypatch):
    """The console path (`python -m openwit.pipeline.shards`, openwit-build): image workers started
    before the stage module loads (pipeline/prestart.py) are adopted by the pool, none is left over,
    and the shards are those of images decoded in-process."""
    import sys

    from openwit.common import launch
    from openwit.pipeline import prestart

    adopted = []
    real_adopt = prestart.adopt

    def adopt(n):
        adopted.extend(real_adopt(n))
        return list(adopted)

    monkeypatch.setattr(prestart, "adopt", adopt)
    cands = _write_candidates(tmp_path / "c.parquet", [server.url(p) for p in server.image_paths()])
    assert main(_flags(tmp_path / "one", cands, "--no-report", workers="1")) == 0
    monkeypatch.setattr(sys, "argv", ["python -m openwit.pipeline.shards", *_flags(tmp_path / "two", cands, "--no-report")])
    try:
        assert launch.run("openwit.pipeline.shards.stage:main", launch.BUILD_EARLY) == 0
    finally:
        prestart.release()
    assert len(adopted) == 2 and all(p.returncode is not None for p in adopted)  # adopted, then reaped
    assert _digest(tmp_path / "two") == _digest(tmp_path / "one")
