"""Image workers started before a build's imports are adopted by its pool: same results, none left."""
import asyncio

import pytest

from openwit.common import local as cores
from openwit.pipeline import prestart
from openwit.pipeline.images import ImagePool, ImageSettings, process_image


@pytest.mark.parametrize("argv,expected", [
    ([], 8),                                                   # one per usable core
    (["--workers", "3"], 3), (["--workers=3"], 3), (["--workers", "0"], 8),
    (["--workers", "1"], 0),                                   # decoded in the build's own process
    (["--workers", "x"], 0),                                   # the parser will complain
    (["--runner", "DirectRunner"], 8), (["--runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner"], 8),
    (["--runner", "DataflowRunner"], 0),                       # the shards are built on Dataflow's workers
    (["--direct_running_mode", "multi_processing"], 0),        # each SDK process has its own pool
    (["--help"], 0), (["-h"], 0), (["--dry_run=True"], 0),
])
def test_how_many_workers_a_command_line_will_want(argv, expected, monkeypatch):
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert prestart.planned_workers(["--out", "o", *argv]) == expected
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: {0})
    assert prestart.planned_workers(["--out", "o"]) == 0  # one core: nothing to start


@pytest.fixture
def parked():
    yield prestart._parked
    prestart.release()


@pytest.mark.parametrize("fork", [True, False])
def test_a_pool_adopts_the_started_workers_and_starts_what_it_lacks(shared_data, parked, fork):
    raws = [p.read_bytes() for p in sorted((shared_data / "images" / "skimage").glob("*.jpg"))]
    settings = ImageSettings(image_size=64, resize_mode="keep_ratio")
    prestart.prestart(2, fork=fork)
    assert all(isinstance(p, prestart.Forked) == fork for p in parked)
    early = {p.pid for p in parked}
    assert len(early) == 2

    async def pooled():
        async with await ImagePool.start(settings, 3) as pool:
            pids = {w.proc.pid for w in pool._workers}
            return pids, await asyncio.gather(*(pool.process(r) for r in raws))

    pids, results = asyncio.run(pooled())
    assert early < pids and len(pids) == 3 and not parked  # both adopted, one more started
    assert results == [process_image(r, settings) for r in raws]


@pytest.mark.parametrize("fork", [True, False])
def test_workers_nobody_adopts_are_ended_and_reaped(parked, fork):
    prestart.prestart(2, fork=fork)
    procs = list(parked)
    prestart.release()
    assert not parked and all(p.returncode is not None for p in procs)
    assert prestart.adopt(2) == []


def test_a_forked_worker_holds_no_other_workers_pipe(parked):
    """Each forked worker closes what it inherited: ending the first one's stdin ends it, though the
    second was forked while that pipe was open (it would otherwise wait forever)."""
    prestart.prestart(2, fork=True)
    first, second = parked
    first.stdin.close()
    assert first.wait(timeout=30) == 0
    assert second.poll() is None

