"""A pool of image worker processes (images/worker.py), so decoding uses every core.

One Python process decodes on one core at a time (Pillow holds the GIL for part of each image),
so a shard worker that downloads with one event loop hands its images to `ImagePool.process`, a
coroutine that sends the bytes to a worker process and awaits the ImageResult. The pipes are read
and written by that same event loop — no thread per image or per worker: handing each image over
through threads (an executor thread, a reader thread per worker, the GIL passed between them and the
loop four times an image) made a whole run's CPU per image 14% higher (benchmarks/RESULTS.md). Workers are plain subprocesses with their own pipes:
no Beam or multiprocessing machinery is imported or inherited, a killed parent leaves no worker
behind (they end at end of stdin), and a worker that dies on an image (a crash in a decoder) costs
that image only: it fails with `ImageWorkerDied`, and a fresh worker takes the slot. The results are
the same bytes as `process_image` in-process. A pool belongs to the event loop that started it
(`await ImagePool.start(...)`) and is used and closed on that loop.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import pickle
import subprocess

from openwit.pipeline import prestart
from openwit.pipeline.images.frames import HEADER
from openwit.pipeline.images.resizer import ImageResult, ImageSettings
from openwit.pipeline.prestart import PIPE_BYTES

log = logging.getLogger(__name__)


class ImageWorkerDied(RuntimeError):
    """The worker process ended while it had this image: the image is lost, the pool goes on.
    `culprit` is False for an image that was only queued behind the one being decoded (retried)."""

    def __init__(self, message: str, culprit: bool = True):
        super().__init__(message)
        self.culprit = culprit


async def _exit_status(proc: subprocess.Popen, timeout: float) -> int:
    """The exit status of a worker that is ending, without blocking the loop; killed after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (status := proc.poll()) is None:
        if loop.time() > deadline:
            proc.kill()
            return proc.wait()
        await asyncio.sleep(0.01)
    return status


class _Worker:
    """One worker process. Requests are written in order and answered in order, so up to DEPTH
    images can be queued in its pipe: it starts the next image the moment it has sent an answer,
    however busy the parent's loop is. A reader task hands the answers to the waiting callers."""

    def __init__(self, proc: subprocess.Popen, reader: asyncio.StreamReader, writer: asyncio.WriteTransport):
        self.proc, self._reader, self._writer = proc, reader, writer
        self._pending: collections.deque[tuple[asyncio.Future, bool]] = collections.deque()  # (future, delivered)
        self._dead = False
        self._task = asyncio.get_running_loop().create_task(self._read_answers())

    @classmethod
    async def start(cls, settings_frame: bytes, proc: subprocess.Popen | None = None) -> "_Worker":
        """A worker on this loop: `proc` (one started earlier, see pipeline/prestart.py) or a new one."""
        proc = proc or prestart.spawn_worker()
        try:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=PIPE_BYTES)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), proc.stdout)
            writer, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, proc.stdin)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        worker = cls(proc, reader, writer)
        worker._send(settings_frame)
        return worker

    def _send(self, payload: bytes) -> None:
        """One frame (frames.py) into the worker's stdin; the payload is not copied."""
        self._writer.write(HEADER.pack(len(payload)))
        self._writer.write(payload)

    def submit(self, raw: bytes) -> asyncio.Future:
        if self._dead or self._writer.is_closing():  # closing: a write found its stdin's reader gone
            raise ImageWorkerDied("image worker already gone", culprit=False)
        fut = asyncio.get_running_loop().create_future()
        self._send(raw)
        # a write that found the worker gone closes the transport at once: it never read this image
        self._pending.append((fut, not self._writer.is_closing()))
        return fut

    async def _read_answers(self) -> None:
        while True:
            try:
                head = await self._reader.readexactly(HEADER.size)
                result = pickle.loads(await self._reader.readexactly(HEADER.unpack(head)[0]))
                if not isinstance(result, ImageResult):
                    raise TypeError(f"answer is a {type(result).__name__}, not an ImageResult")
                fut, _ = self._pending.popleft()
            except (asyncio.IncompleteReadError, OSError):  # end of stream, cut frame
                break
            except Exception as e:  # not the worker's protocol (an unasked answer, bad bytes): end it, never hang
                log.error("image worker %d broke the protocol (%s); ending it", self.proc.pid, e)
                self.proc.kill()
                break
            if not fut.done():  # a caller that was cancelled no longer waits
                fut.set_result(result)
        self._dead = True
        pending, self._pending = list(self._pending), collections.deque()
        if pending:
            status = await _exit_status(self.proc, 30)
            for i, (fut, delivered) in enumerate(pending):  # the oldest was being decoded; the rest only queued
                if not fut.done():
                    fut.set_exception(ImageWorkerDied(f"image worker exited with status {status}",
                                                      culprit=i == 0 and delivered))

    async def close(self, timeout: float = 30) -> None:
        """End the worker (end of stdin, after what was written) and reap it; killed if it does not
        end in `timeout`."""
        self._writer.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self._task
        await _exit_status(self.proc, timeout)


class ImagePool:
    """`processes` worker processes running process_image with `settings`; `process` may be awaited
    by any number of tasks of the pool's loop at once (DEPTH images queued per worker, the rest wait)."""

    # images queued per worker: with 4 a worker never waits for the loop, which may be busy for a
    # while (a burst of downloads, the writer thread's turn with the GIL); 2 → 4 gave +8% steady rate
    # and −6% CPU per image (6 alternating pairs of benchmarks/bench_download.py), 8 no more than 4
    DEPTH = 4
    TRIES = 4  # workers an image may be handed to when the ones before died before decoding it

    def __init__(self, settings: ImageSettings, processes: int):
        """Use `await ImagePool.start(settings, processes)`: the workers belong to the running loop."""
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.settings, self.processes = settings, processes
        self._frame = pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL)
        self._slots: asyncio.Queue[int] = asyncio.Queue()  # worker index, DEPTH times each
        self._workers: list[_Worker] = []
        self._replacing = [asyncio.Lock() for _ in range(processes)]
        self._closed = False

    @classmethod
    async def start(cls, settings: ImageSettings, processes: int) -> "ImagePool":
        pool = cls(settings, processes)
        started = prestart.adopt(processes)  # workers the command started first thing, ready by now
        try:
            for i in range(processes):
                pool._workers.append(await _Worker.start(pool._frame, started.pop() if started else None))
                for _ in range(cls.DEPTH):
                    pool._slots.put_nowait(i)
        except BaseException:
            for proc in started:
                proc.kill()
                proc.wait()
            await pool.close()
            raise
        return pool

    async def process(self, raw: bytes) -> ImageResult:
        """process_image(raw, settings) in a worker process. Raises ImageWorkerDied when the worker
        died decoding this very image; a fresh worker takes its place."""
        slot = await self._slots.get()
        try:
            for attempt in range(1, self.TRIES + 1):
                worker = self._workers[slot]
                try:
                    return await worker.submit(raw)
                except ImageWorkerDied as e:
                    await self._replace(slot, worker, len(raw) if e.culprit else None)
                    if e.culprit or attempt == self.TRIES:  # workers that die before reading: give up
                        raise
        finally:
            self._slots.put_nowait(slot)

    async def _replace(self, slot: int, dead: _Worker, culprit_bytes: int | None) -> None:
        async with self._replacing[slot]:  # the worker's other caller waits for the same replacement
            if self._closed or self._workers[slot] is not dead:
                return  # closing, or another caller replaced it already
            if culprit_bytes is not None:
                log.warning("an image worker died on an image (%d bytes); starting a new one", culprit_bytes)
            self._workers[slot] = await _Worker.start(self._frame)
        await dead.close(timeout=5)  # reap it

    async def close(self) -> None:
        """End every worker and wait for them (their CPU time then counts as this process's children)."""
        self._closed = True
        workers, self._workers = list(self._workers), []
        await asyncio.gather(*(w.close() for w in workers))

    async def __aenter__(self) -> "ImagePool":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
