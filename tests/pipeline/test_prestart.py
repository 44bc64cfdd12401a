"""Image workers started before a build's imports are adopted by its pool: same results, none left."""
import asyncio
import ctypes
import os
from pathlib import Path

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
    (["--stage", "candidates"], 0), (["--stage", "all"], 8),   # openwit-build: shards or not
])
def test_how_many_workers_a_command_line_will_want(argv, expected, monkeypatch):
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert prestart.planned_workers(["--out", "o", *argv]) == expected
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: {0})
    assert prestart.planned_workers(["--out", "o"]) == 0  # one core: nothing to start


MODES = ["zygote", "fork", "spawn"]


@pytest.fixture
def parked():
    """The started workers, once every zygote has handed over its own."""
    def settled():
        with prestart._lock:
            prestart._settle()
        return prestart._parked

    yield settled
    prestart.release()


def _parent(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()[1])


@pytest.mark.parametrize("mode", MODES)
def test_a_pool_adopts_the_started_workers_and_starts_what_it_lacks(shared_data, parked, mode):
    raws = [p.read_bytes() for p in sorted((shared_data / "images" / "skimage").glob("*.jpg"))]
    settings = ImageSettings(image_size=64, resize_mode="keep_ratio")
    prestart.prestart(2, mode=mode)
    assert all(isinstance(p, prestart.Forked) == (mode != "spawn") for p in parked())
    early = {p.pid for p in parked()}
    assert len(early) == 2
    assert all(_parent(pid) == os.getpid() for pid in early)  # a zygote's workers too: its subreaper

    async def pooled():
        async with await ImagePool.start(settings, 3) as pool:
            pids = {w.proc.pid for w in pool._workers}
            return pids, await asyncio.gather(*(pool.process(r) for r in raws))

    pids, results = asyncio.run(pooled())
    assert early < pids and len(pids) == 3 and not parked()  # both adopted, one more started
    assert results == [process_image(r, settings) for r in raws]


@pytest.mark.parametrize("mode", MODES)
def test_workers_nobody_adopts_are_ended_and_reaped(parked, mode):
    prestart.prestart(2, mode=mode)
    procs = list(parked())
    prestart.release()
    assert not parked() and all(p.returncode is not None for p in procs)
    assert prestart.adopt(2) == []


def test_a_command_that_ends_before_adopting_leaves_nothing_behind(parked):
    """A command that stops at once (a typo in a flag) while its zygote is still starting: every worker
    is ended and reaped, no process is left that this one started, and it is no subreaper any more."""
    before = _children()
    prestart.prestart(2, mode="zygote")
    assert _is_subreaper()
    prestart.release()
    assert _children() == before  # none left, not even a zombie
    assert not _is_subreaper()  # later orphans go where they would have


def _children() -> set[int]:
    """The pids of this process's children, zombies included (from /proc)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if _parent(int(stat.parent.name)) == os.getpid():
                pids.add(int(stat.parent.name))
        except (OSError, ValueError):  # ended meanwhile
            pass
    return pids


def _is_subreaper() -> bool:
    flag = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    return bool(flag.value)


@pytest.mark.parametrize("mode", ["zygote", "fork"])
def test_a_forked_worker_holds_no_other_workers_pipe(parked, mode):
    """Each forked worker closes what it inherited: ending the first one's stdin ends it, though the
    second was forked while that pipe was open (it would otherwise wait forever)."""
    prestart.prestart(2, mode=mode)
    first, second = parked()
    first.stdin.close()
    assert first.wait(timeout=30) == 0
    assert second.poll() is None

