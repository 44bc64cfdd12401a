"""ImagePool: process_image in worker processes gives the same results as in-process; a dead
worker costs one image only; closing reaps every worker."""
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from openwit.pipeline.images import ImagePool, ImageSettings, ImageWorkerDied, process_image


@pytest.fixture(scope="module")
def raws(shared_data):
    base = shared_data / "images"
    paths = sorted((base / "img2dataset_tests").glob("*.*")) + sorted((base / "skimage").glob("*.jpg"))
    return [p.read_bytes() for p in paths] + [b"", b"not an image", paths[0].read_bytes()[:2000]]


def test_pool_gives_the_same_results_as_in_process(raws):
    settings = ImageSettings(image_size=96, resize_mode="keep_ratio", output_format="jpg", decode_margin=1)
    serial = [process_image(r, settings) for r in raws]
    with ImagePool(settings, 2) as pool, ThreadPoolExecutor(2) as threads:
        pooled = list(threads.map(pool.process, raws * 2))
    assert pooled == serial * 2  # every field: status, reason, bytes, sizes, sha256, EXIF
    assert {r.status for r in serial} == {"success", "failed_to_resize"}


def test_a_worker_that_dies_costs_only_the_image_it_was_decoding(raws):
    """A worker killed with two images in its pipe: the first (the one it was decoding) fails with
    ImageWorkerDied, the one queued behind it is decoded by the replacement, the pool goes on."""
    import threading
    import time

    settings = ImageSettings(image_size=32)
    expected = [process_image(r, settings) for r in raws[:2]]
    with ImagePool(settings, 1) as pool:
        worker = pool._workers[0]
        victim = worker.proc
        os.kill(victim.pid, signal.SIGSTOP)  # it cannot answer: both images wait in its pipe
        outcome = {}

        def call(i):
            try:
                outcome[i] = pool.process(raws[i])
            except ImageWorkerDied as e:
                outcome[i] = e

        first = threading.Thread(target=call, args=(0,))
        first.start()
        while len(worker._pending) < 1:
            time.sleep(0.01)
        second = threading.Thread(target=call, args=(1,))
        second.start()
        while len(worker._pending) < 2:
            time.sleep(0.01)
        victim.kill()
        first.join(30)
        second.join(30)
        assert isinstance(outcome[0], ImageWorkerDied) and "status -9" in str(outcome[0])
        assert outcome[1] == expected[1]  # retried on the fresh worker
        assert pool.process(raws[0]) == expected[0] and pool._workers[0].proc.pid != victim.pid
        # a worker that dies between images costs nothing: the next image goes to a fresh one
        idle = pool._workers[0].proc
        idle.kill()
        idle.wait()
        assert pool.process(raws[0]) == expected[0] and pool._workers[0].proc.pid != idle.pid
    assert victim.returncode == -9


def test_close_reaps_every_worker(raws):
    pool = ImagePool(ImageSettings(image_size=32), 3)
    procs = [w.proc for w in pool._workers]
    pool.process(raws[0])
    pool.close()
    assert all(p.returncode == 0 for p in procs)


def test_worker_ends_when_its_parent_is_killed(tmp_path):
    """kill -9 of the parent: the workers see the end of stdin and exit (no orphans left behind)."""
    script = ("import sys, time\nfrom openwit.pipeline.images import ImagePool, ImageSettings\n"
              "pool = ImagePool(ImageSettings(), 2)\n"
              "print(*(w.proc.pid for w in pool._workers), flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for pid in pids:  # reparented to init, which reaps them once they exit
        for _ in range(200):
            if not _alive(pid):
                break
            subprocess.run(["sleep", "0.05"])
        assert not _alive(pid), f"worker {pid} outlived its killed parent"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_builder_decodes_in_process_when_workers_cannot_start(monkeypatch, raws):
    from openwit.pipeline.shards import ShardConfig
    from openwit.pipeline.shards.builder import ShardBuilder
    from openwit.pipeline.fetch import FetchSettings

    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    settings = ImageSettings(image_size=32)
    builder = ShardBuilder(ShardConfig(out="unused", fetch=FetchSettings(), image=settings, workers=2))
    try:
        assert builder._pool is None and builder._image(raws[0]) == process_image(raws[0], settings)
    finally:
        builder.close()
