"""Build shards: fetch their URLs concurrently on one asyncio loop, decode/resize on every core.

`ShardBuilder` owns the loop (run in its own thread), the Fetcher (one aiohttp session), the image
workers (`cfg.workers` > 1: an images.ImagePool of worker processes whose pipes the same loop
feeds; else a thread pool in this process) and a writer thread; the Beam DoFn makes one in `setup` and
closes it in `teardown`. Either way an image gives the same bytes.
`submit` decides resume/retry/fresh and starts a shard (several can be in flight); the shard is
written through `shard_writer` and its Future yields the stats. Each sample is reported to a callback.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace
from typing import Callable

from openwit.common.errors import UserError
from openwit.pipeline.shards import writer as sw
from openwit.pipeline.shards.config import ShardConfig
from openwit.pipeline.shards.plan import (
    candidates_hash,
    changed_settings,
    original_flags,
    sample_key,
    settings_fingerprint,
)
from openwit.pipeline.shards.sample import dedup_by_sha256, make_sample
from openwit.pipeline.shards.spool import Spool

log = logging.getLogger(__name__)
OnSample = Callable[[dict], None]


def check_committed(stats: dict, cfg: ShardConfig, fingerprint: str, shard: int) -> None:
    """Raise a one-line UserError naming what changed when a committed shard's fingerprint differs."""
    if stats.get("fingerprint") == fingerprint:
        return
    old = stats.get("settings") or {}
    changed = changed_settings(old, cfg.settings)
    what = "; ".join(changed) if changed else "the candidates assigned to it changed (different input)"
    flags = original_flags(old, cfg.settings)
    hint = f" ({' '.join(flags)} builds as it was built)" if flags else ""
    raise UserError(f"shard {shard:05d} in {cfg.out} was built with different settings: {what}. "
                    f"Rerun with the original settings{hint}, write to a new --out, or start over with --overwrite")


def shard_identity(cfg: ShardConfig, shard: int, items: list[tuple[int, dict]]) -> tuple[list, str, str]:
    """(keyed candidates in key order, candidates hash, settings fingerprint) of one planned shard."""
    keyed = [(sample_key(shard, i, cfg.samples_per_shard), c) for i, c in sorted(items, key=lambda x: x[0])]
    cand_hash = candidates_hash(c["uid"] for _, c in keyed)
    return keyed, cand_hash, settings_fingerprint(cfg.settings, cand_hash)


def check_planned(cfg: ShardConfig, shard: int, items: list[tuple[int, dict]]) -> None:
    """UserError when the shard is committed in OUT with other settings or other candidates."""
    old = sw.read_stats(cfg.out, shard)
    if old is not None:
        check_committed(old, cfg, shard_identity(cfg, shard, items)[2], shard)


def _image_error(e: BaseException) -> SimpleNamespace:
    """An image that could not be processed at all (process_image never raises for bad bytes)."""
    return SimpleNamespace(status="failed_to_resize", reason="image_error", error=repr(e)[:300],
                           original_width=None, original_height=None, sha256=None)


class ShardBuilder:
    """One event loop (in its own thread) + Fetcher + image workers + writer thread, reused for
    every shard a worker builds. `submit` starts a shard and returns at once, so several shards can
    be in flight: the next shard's downloads fill the slots that the previous one's slow or
    timing-out URLs would leave idle, and a shard is written while the next one downloads."""

    def __init__(self, cfg: ShardConfig):
        from openwit.pipeline.fetch import Fetcher
        from openwit.pipeline.images import ImagePool, raise_pillow_limit

        raise_pillow_limit(cfg.image)  # before the threads start: Pillow's own bomb limit is process-wide
        self.cfg = cfg
        self._building: set[asyncio.Task] = set()  # shards being attempted (on the loop)
        self._pool = self._executor = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="openwit-write")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openwit-fetch-loop", daemon=True)
        self._thread.start()

        async def _open():
            fetcher = Fetcher(cfg.fetch)
            await fetcher.__aenter__()
            return fetcher

        try:
            if cfg.workers > 1:
                try:
                    self._pool = self._run(ImagePool.start(cfg.image, cfg.workers))
                except OSError as e:  # no usable interpreter to start (embedded Python, fd limits, ...)
                    log.warning("image worker processes could not start (%s): decoding in this process", e)
            if self._pool is None:
                self._executor = ThreadPoolExecutor(cfg.worker_threads, thread_name_prefix="openwit-image")
            self._fetcher = self._run(_open())
        except BaseException:
            self._stop()
            raise

    def _run(self, coro):
        """Run a coroutine on the builder's loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """End the builder (DoFn.teardown: also when a run is interrupted or a bundle failed). Shards
        still being attempted are abandoned before the downloader closes, not written: closing it
        would fail their fetches in flight, and a shard completed by those failures would commit
        samples that never had their chance (and a resumed run would skip it). The next run builds
        them again."""
        try:
            self._run(self._abandon_unfinished())
            self._run(self._fetcher.__aexit__(None, None, None))
        finally:
            self._stop()

    async def _abandon_unfinished(self) -> None:
        """Cancel the shards still downloading (a shard already handed to the writer is complete and
        is written) and wait for them to unwind."""
        tasks = list(self._building)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stop(self) -> None:
        try:
            if self._pool is not None:  # on the loop that owns its pipes, before the loop stops
                self._run(self._pool.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._writer.shutdown(wait=True)

    def _image(self, raw: bytes):
        """process_image in this process (an image thread: --workers 1, or no worker could start)."""
        from openwit.pipeline.images import process_image

        try:
            return process_image(raw, self.cfg.image)
        except Exception as e:  # noqa: BLE001  (process_image should not raise; never lose a shard)
            return _image_error(e)

    async def _decode(self, raw: bytes):
        """The image's ImageResult: from a worker process of the pool, or from an image thread."""
        if self._pool is None:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._image, raw)
        try:
            return await self._pool.process(raw)
        except Exception as e:  # noqa: BLE001  (ImageWorkerDied: a decoder crashed on this image)
            return _image_error(e)

    async def _attempt(self, keyed: list[tuple[str, dict]], on_sample: OnSample | None,
                       spool: Spool | None = None) -> list[dict]:
        todo = iter(keyed)
        done: dict[str, dict] = {}

        async def worker() -> None:
            for key, cand in todo:  # one shared iterator: workers pull the next candidate
                try:
                    fetched = await self._fetcher.fetch(cand["url"])
                except Exception as e:  # noqa: BLE001  (fetch never raises by contract; be safe)
                    fetched = SimpleNamespace(ok=False, reason="fetch_error", error=repr(e)[:300], data=None)
                image = None
                if fetched.ok:
                    image = await self._decode(fetched.data)
                done[key] = sample = make_sample(key, cand, fetched, image)
                if spool is not None and "data" in sample:
                    sample["data"] = spool.keep(sample["data"])
                if on_sample is not None:
                    on_sample(done[key])

        await asyncio.gather(*(worker() for _ in range(min(self.cfg.concurrency, len(keyed)))))
        return [done[key] for key, _ in keyed]

    def attempt(self, keyed: list[tuple[str, dict]], on_sample: OnSample | None = None) -> list[dict]:
        """Fetch and process every (key, candidate); one sample per candidate, in input order."""
        if not keyed:
            return []
        return self._run(self._attempt(keyed, on_sample))

    def build(self, shard: int, items: list[tuple[int, dict]], on_sample: OnSample | None = None
              ) -> tuple[str, dict]:
        """Build (or skip, or retry) one shard and wait for it; returns (what happened, its stats)."""
        return self.submit(shard, items, on_sample).result()

    def submit(self, shard: int, items: list[tuple[int, dict]], on_sample: OnSample | None = None
               ) -> Future:
        """Start building one shard; a Future of (what happened, its stats).

        The resume decision is made here, in the caller's thread: a shard committed with other
        settings raises UserError at once. `on_sample` is called from the loop's thread."""
        cfg = self.cfg
        keyed, cand_hash, fingerprint = shard_identity(cfg, shard, items)
        old = sw.read_stats(cfg.out, shard)
        if old is not None:
            check_committed(old, cfg, fingerprint, shard)
            if not cfg.retry_failed or not old.get("failed_to_download"):
                skipped: Future = Future()
                skipped.set_result(("skipped", old))
                return skipped
        else:
            sw.remove_stale_temps(cfg.out, shard)
        job = SimpleNamespace(shard=shard, keyed=keyed, cand_hash=cand_hash, fingerprint=fingerprint,
                              retry=old is not None, start=time.monotonic(), start_wall=time.time(),
                              spool=Spool())
        return asyncio.run_coroutine_threadsafe(self._build(job, on_sample), self._loop)

    async def _build(self, job: SimpleNamespace, on_sample: OnSample | None) -> tuple[str, dict]:
        loop = asyncio.get_running_loop()
        self._building.add(task := asyncio.current_task())
        try:
            if job.retry:
                samples = await loop.run_in_executor(self._writer, sw.read_shard, self.cfg.out, job.shard,
                                                     job.spool.keep)
                failed = [(s["key"], s) for s in samples if s["status"] == "failed_to_download"]
                retried = ({s["key"]: s for s in await self._attempt(failed, on_sample, job.spool)}
                           if failed else {})
                samples = [retried.get(s["key"], s) for s in samples]
                action = "retried"
            else:
                samples = await self._attempt(job.keyed, on_sample, job.spool) if job.keyed else []
                action = "written"
            end_wall = time.time()
            self._building.discard(task)  # complete: written even if the builder closes meanwhile
            return await loop.run_in_executor(self._writer, self._write, job, samples, action, end_wall)
        finally:
            self._building.discard(task)
            job.spool.close()

    def _write(self, job: SimpleNamespace, samples: list[dict], action: str, end_wall: float
               ) -> tuple[str, dict]:
        """Stats, timing and the shard files (writer thread: the loop keeps downloading meanwhile)."""
        cfg = self.cfg
        if cfg.dedup_sha256:
            samples = dedup_by_sha256(samples)
        stats = sw.shard_stats(job.shard, samples, job.fingerprint, cfg.settings, job.cand_hash)
        sw.write_timing(cfg.out, job.shard, job.start_wall, end_wall, action)
        sw.write_shard(cfg.out, job.shard, samples, stats)
        secs = time.monotonic() - job.start
        log.info("shard %05d %s: %d/%d ok, %.1f s, %.0f samples/s", job.shard, action, stats["successes"],
                 stats["count"], secs, len(samples) / max(secs, 1e-9))
        if job.spool.parked:
            log.info("shard %05d: %.3g MB of its images waited in a temporary file (past the %.3g MB held in "
                     "memory per shard)", job.shard, job.spool.parked / 1e6, job.spool.held_bytes / 1e6)
        return action, stats
