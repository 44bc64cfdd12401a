"""Build one shard: fetch its URLs concurrently on one asyncio loop, decode/resize in a thread pool.

`ShardBuilder` owns the loop, the Fetcher (one aiohttp session) and the thread pool; the Beam DoFn
makes one in `setup` and closes it in `teardown`. `build` decides resume/retry/fresh, writes the
shard through `shard_writer`, and returns its stats. Progress is reported per sample to a callback.
"""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Callable

from openwit.common.errors import UserError
from openwit.pipeline import shard_writer as sw
from openwit.pipeline.shard_config import ShardConfig
from openwit.pipeline.shard_plan import candidates_hash, changed_settings, sample_key, settings_fingerprint
from openwit.pipeline.shard_sample import dedup_by_sha256, make_sample

log = logging.getLogger(__name__)
OnSample = Callable[[dict], None]


def check_committed(stats: dict, cfg: ShardConfig, fingerprint: str, shard: int) -> None:
    """Raise a one-line UserError naming what changed when a committed shard's fingerprint differs."""
    if stats.get("fingerprint") == fingerprint:
        return
    changed = changed_settings(stats.get("settings") or {}, cfg.settings)
    what = "; ".join(changed) if changed else "the candidates assigned to it changed (different input)"
    raise UserError(f"shard {shard:05d} in {cfg.out} was built with different settings: {what}. "
                    f"Rerun with the original settings, or write to a new --out")


class ShardBuilder:
    """One event loop + Fetcher + thread pool, reused for every shard a worker builds."""

    def __init__(self, cfg: ShardConfig):
        from openwit.pipeline.fetch import Fetcher
        from openwit.pipeline.images import process_image, raise_pillow_limit

        raise_pillow_limit(cfg.image)  # before the threads start: Pillow's own bomb limit is process-wide
        self.cfg = cfg
        self._process_image = process_image
        self._loop = asyncio.new_event_loop()
        self._executor = ThreadPoolExecutor(cfg.worker_threads, thread_name_prefix="openwit-image")

        async def _open():
            fetcher = Fetcher(cfg.fetch)
            await fetcher.__aenter__()
            return fetcher

        self._fetcher = self._loop.run_until_complete(_open())

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._fetcher.__aexit__(None, None, None))
        finally:
            self._loop.close()
            self._executor.shutdown(wait=True)

    def _image(self, raw: bytes):
        try:
            return self._process_image(raw, self.cfg.image)
        except Exception as e:  # noqa: BLE001  (process_image should not raise; never lose a shard)
            return SimpleNamespace(status="failed_to_resize", reason="image_error", error=repr(e)[:300],
                                   original_width=None, original_height=None, sha256=None)

    async def _attempt(self, keyed: list[tuple[str, dict]], on_sample: OnSample | None) -> list[dict]:
        loop = asyncio.get_running_loop()
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
                    image = await loop.run_in_executor(self._executor, self._image, fetched.data)
                done[key] = make_sample(key, cand, fetched, image)
                if on_sample is not None:
                    on_sample(done[key])

        await asyncio.gather(*(worker() for _ in range(min(self.cfg.concurrency, len(keyed)))))
        return [done[key] for key, _ in keyed]

    def attempt(self, keyed: list[tuple[str, dict]], on_sample: OnSample | None = None) -> list[dict]:
        """Fetch and process every (key, candidate); one sample per candidate, in input order."""
        if not keyed:
            return []
        return self._loop.run_until_complete(self._attempt(keyed, on_sample))

    def build(self, shard: int, items: list[tuple[int, dict]], on_sample: OnSample | None = None
              ) -> tuple[str, dict]:
        """Build (or skip, or retry) one shard; returns (what happened, its stats)."""
        cfg = self.cfg
        keyed = [(sample_key(shard, i, cfg.samples_per_shard), c) for i, c in sorted(items, key=lambda x: x[0])]
        cand_hash = candidates_hash(c["uid"] for _, c in keyed)
        fingerprint = settings_fingerprint(cfg.settings, cand_hash)
        old = sw.read_stats(cfg.out, shard)
        start, start_wall = time.monotonic(), time.time()
        if old is not None:
            check_committed(old, cfg, fingerprint, shard)
            if not cfg.retry_failed or not old.get("failed_to_download"):
                return "skipped", old
            samples = sw.read_shard(cfg.out, shard)
            failed = [(s["key"], s) for s in samples if s["status"] == "failed_to_download"]
            retried = {s["key"]: s for s in self.attempt(failed, on_sample)}
            samples = [retried.get(s["key"], s) for s in samples]
            action = "retried"
        else:
            sw.remove_stale_temps(cfg.out, shard)
            samples = self.attempt(keyed, on_sample)
            action = "written"
        if cfg.dedup_sha256:
            samples = dedup_by_sha256(samples)
        stats = sw.shard_stats(shard, samples, fingerprint, cfg.settings, cand_hash)
        sw.write_timing(cfg.out, shard, start_wall, time.time(), action)
        sw.write_shard(cfg.out, shard, samples, stats)
        secs = time.monotonic() - start
        log.info("shard %05d %s: %d/%d ok, %.1f s, %.0f samples/s", shard, action, stats["successes"],
                 stats["count"], secs, len(samples) / max(secs, 1e-9))
        return action, stats
