"""ImagePool: process_image in worker processes gives the same results as in-process; a dead
worker costs one image only; closing reaps every worker."""
import asyncio
import os
import signal
import subprocess
import sys

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

    async def pooled():
        async with await ImagePool.start(settings, 2) as pool:  # more callers than the 2 × DEPTH slots
            return await asyncio.gather(*(pool.process(r) for r in raws * 2))

    assert asyncio.run(pooled()) == serial * 2  # every field: status, reason, bytes, sizes, sha256, EXIF
    assert {r.status for r in serial} == {"success", "failed_to_resize"}


async def _until(condition) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_a_worker_that_dies_costs_only_the_image_it_was_decoding(raws):
    """A worker killed with two images in its pipe: the first (the one it was decoding) fails with
    ImageWorkerDied, the one queued behind it is decoded by the replacement, the pool goes on."""
    settings = ImageSettings(image_size=32)
    expected = [process_image(r, settings) for r in raws[:2]]

    async def scenario():
        async with await ImagePool.start(settings, 1) as pool:
            worker = pool._workers[0]
            victim = worker.proc
            os.kill(victim.pid, signal.SIGSTOP)  # it cannot answer: both images wait in its pipe
            first = asyncio.ensure_future(pool.process(raws[0]))
            await _until(lambda: len(worker._pending) == 1)
            second = asyncio.ensure_future(pool.process(raws[1]))
            await _until(lambda: len(worker._pending) == 2)
            victim.kill()
            outcome = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 30)
            assert isinstance(outcome[0], ImageWorkerDied) and "status -9" in str(outcome[0])
            assert outcome[1] == expected[1]  # retried on the fresh worker
            assert await pool.process(raws[0]) == expected[0] and pool._workers[0].proc.pid != victim.pid
            # a worker that dies between images costs nothing: the next image goes to a fresh one
            idle = pool._workers[0].proc
            idle.kill()
            idle.wait()  # the loop has not run since: the pool learns of it only from the write
            assert await pool.process(raws[0]) == expected[0] and pool._workers[0].proc.pid != idle.pid
            # and one whose death the loop saw first, the same
            idle = pool._workers[0].proc
            idle.kill()
            await _until(lambda: pool._workers[0]._dead)
            assert await pool.process(raws[1]) == expected[1] and pool._workers[0].proc.pid != idle.pid
        assert victim.returncode == -9

    asyncio.run(scenario())


def test_a_hung_worker_is_killed_at_close(raws):
    """close() waits for a worker with work in its pipe, then kills it: it never hangs the run."""
    async def scenario():
        pool = await ImagePool.start(ImageSettings(image_size=32), 1)
        proc = pool._workers[0].proc
        os.kill(proc.pid, signal.SIGSTOP)  # stands for a decoder stuck in a loop
        task = asyncio.ensure_future(pool.process(raws[0]))
        await _until(lambda: len(pool._workers[0]._pending) == 1)
        await pool._workers[0].close(timeout=0.5)
        with pytest.raises(ImageWorkerDied):
            await task
        await pool.close()
        return proc

    assert asyncio.run(asyncio.wait_for(scenario(), 60)).returncode == -9


@pytest.mark.parametrize("program", ["import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer, 1)",
                                     "import sys; sys.exit(3)"], ids=["echoes", "exits_at_start"])
def test_workers_that_never_answer_fail_the_image_without_hanging(raws, monkeypatch, caplog, program):
    """A process that answers what it was not asked (it echoes its input: killed as a protocol break)
    or that dies before reading anything: the image fails with ImageWorkerDied after at most TRIES
    fresh workers, and the pool neither hangs nor starts workers forever."""
    from openwit.pipeline import prestart

    started = []

    def command(warm=False):
        started.append(1)
        return [sys.executable, "-c", program]

    monkeypatch.setattr(prestart, "worker_command", command)

    async def scenario():
        async with await ImagePool.start(ImageSettings(image_size=32), 1) as pool:
            with pytest.raises(ImageWorkerDied):
                await pool.process(raws[0])

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert 2 <= len(started) <= ImagePool.TRIES + 1
    assert ("broke the protocol" in caplog.text) == program.startswith("import shutil")


def test_workers_outlive_ctrl_c_and_sigterm_sent_to_the_group(raws):
    """Ctrl-C, or a SIGTERM to the whole process group, leaves the workers to the parent: they go on
    decoding (the parent winds down and closes their stdin), so no image fails because of it."""
    settings = ImageSettings(image_size=32)

    async def scenario():
        async with await ImagePool.start(settings, 2) as pool:
            procs = [w.proc for w in pool._workers]
            for proc in procs:  # once it runs (before, Python's own start-up handles signals)
                await _until(lambda: _ignored(proc.pid) >= {signal.SIGINT, signal.SIGTERM})
                os.kill(proc.pid, signal.SIGINT)
                os.kill(proc.pid, signal.SIGTERM)
            results = await asyncio.gather(*(pool.process(r) for r in raws[:4]))
            assert [w.proc for w in pool._workers] == procs  # the same workers answered
            return results, procs

    results, procs = asyncio.run(scenario())
    assert results == [process_image(r, settings) for r in raws[:4]]
    assert all(p.returncode == 0 for p in procs)  # ended by the pool's close (end of stdin)


def test_close_reaps_every_worker(raws):
    async def scenario():
        pool = await ImagePool.start(ImageSettings(image_size=32), 3)
        procs = [w.proc for w in pool._workers]
        await pool.process(raws[0])
        await pool.close()
        return procs

    assert all(p.returncode == 0 for p in asyncio.run(scenario()))


def test_worker_ends_when_its_parent_is_killed(tmp_path):
    """kill -9 of the parent: the workers see the end of stdin and exit (no orphans left behind)."""
    script = ("import asyncio, sys, time\nfrom openwit.pipeline.images import ImagePool, ImageSettings\n"
              "async def main():\n"
              "    pool = await ImagePool.start(ImageSettings(), 2)\n"
              "    print(*(w.proc.pid for w in pool._workers), flush=True)\n    time.sleep(60)\n"
              "asyncio.run(main())\n")
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


def _ignored(pid: int) -> set[int]:
    """The signals a process ignores (SigIgn in /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        mask = int(next(line for line in f if line.startswith("SigIgn:")).split()[1], 16)
    return {n for n in range(1, 65) if mask >> (n - 1) & 1}


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
