"""A pool of image worker processes (images/worker.py), so decoding uses every core.

One Python process decodes on one core at a time (Pillow holds the GIL for part of each image),
so a shard worker that downloads with one event loop hands its images to `ImagePool.process`,
which sends the bytes to a worker process and waits for the ImageResult. Up to `max_callers`
threads may call it at once (the shard builder's image threads: two per worker, so that each
worker has its next image queued in its pipe). Workers are
plain subprocesses with their own pipes: no Beam or multiprocessing machinery is imported or
inherited, a killed parent leaves no worker behind (they end at end of stdin), and a worker that
dies on an image (a crash in a decoder) costs that image only: it fails with `ImageWorkerDied`,
and a fresh worker takes the slot. The results are the same bytes as `process_image` in-process.
"""
from __future__ import annotations

import collections
import logging
import pickle
import queue
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future

from openwit.pipeline.images.resizer import ImageResult, ImageSettings

try:
    import fcntl
except ImportError:  # not a Unix: pipes keep their default size
    fcntl = None

log = logging.getLogger(__name__)
WORKER_MODULE = "openwit.pipeline.images.worker"  # never imported here: it runs as __main__
HEADER = struct.Struct("<Q")
PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux's value; Python ≥ 3.10 names it


def read_frame(f) -> bytes | None:
    """One frame's payload, or None at a clean end of stream; EOFError when cut inside a frame."""
    head = f.read(HEADER.size)
    if not head:
        return None
    if len(head) < HEADER.size:
        raise EOFError("stream ended inside a frame header")
    (n,) = HEADER.unpack(head)
    data = f.read(n)
    if len(data) < n:
        raise EOFError(f"stream ended inside a frame ({len(data)} of {n} bytes)")
    return data


def write_frame(f, payload: bytes) -> None:
    f.write(HEADER.pack(len(payload)))
    f.write(payload)
    f.flush()


def _widen(pipe) -> None:
    """Let a pipe hold a typical image at once (Linux: 64 KiB by default → up to 1 MiB), so an
    image crosses it in one write and one read instead of a ping-pong of 64 KiB pieces."""
    if fcntl is None:
        return
    try:
        fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
    except (OSError, ValueError):  # not Linux, or above /proc/sys/fs/pipe-max-size: keep the default
        pass


class ImageWorkerDied(RuntimeError):
    """The worker process ended while it had this image: the image is lost, the pool goes on.
    `culprit` is False for an image that was only queued behind the one being decoded (retried)."""

    def __init__(self, message: str, culprit: bool = True):
        super().__init__(message)
        self.culprit = culprit


class _Worker:
    """One worker process. Requests are written in order and answered in order, so up to DEPTH
    images can be queued in its pipe: it starts the next image the moment it has sent an answer,
    however long the parent's threads take to get the GIL back (that wait would otherwise idle
    the worker between images). A reader thread hands the answers to the waiting callers."""

    def __init__(self, settings_frame: bytes):
        self.proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, close_fds=True)
        for pipe in (self.proc.stdin, self.proc.stdout):
            _widen(pipe)
        self._lock = threading.Lock()  # one writer at a time; pending in the order written
        self._pending: collections.deque[Future] = collections.deque()
        self._dead = False
        write_frame(self.proc.stdin, settings_frame)
        self._reader = threading.Thread(target=self._read_answers, name="openwit-image-reader", daemon=True)
        self._reader.start()

    def submit(self, raw: bytes) -> Future:
        fut: Future = Future()
        with self._lock:
            if self._dead:
                raise ImageWorkerDied("image worker already gone", culprit=False)
            self._pending.append(fut)
            try:
                write_frame(self.proc.stdin, raw)
            except (OSError, ValueError):  # the worker is gone: the reader fails what is pending,
                fut.undelivered = True  # and this image, which it never read, goes to the next one
        return fut

    def _read_answers(self) -> None:
        while True:
            try:
                payload = read_frame(self.proc.stdout)
            except (OSError, EOFError, ValueError):  # cut frame, closed file
                payload = None
            if payload is None:
                break
            self._pending.popleft().set_result(pickle.loads(payload))
        with self._lock:
            self._dead = True
            pending, self._pending = list(self._pending), collections.deque()
        if pending:
            status = self.proc.wait()
            for i, fut in enumerate(pending):  # the oldest was being decoded; the rest only queued
                culprit = i == 0 and not getattr(fut, "undelivered", False)
                fut.set_exception(ImageWorkerDied(f"image worker exited with status {status}", culprit=culprit))

    def close(self, timeout: float = 30) -> None:
        """End the worker (end of stdin) and reap it; killed if it does not end in `timeout`."""
        with self._lock:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout)
        self.proc.stdout.close()


class ImagePool:
    """`processes` worker processes running process_image with `settings`; thread-safe `process`,
    meant to be called by up to `max_callers` threads at once (DEPTH per worker)."""

    DEPTH = 2

    def __init__(self, settings: ImageSettings, processes: int):
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.settings, self.processes = settings, processes
        self.max_callers = processes * self.DEPTH
        self._frame = pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL)
        self._slots: queue.SimpleQueue[int] = queue.SimpleQueue()  # worker index, DEPTH times each
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            for i in range(processes):
                self._workers.append(_Worker(self._frame))
                for _ in range(self.DEPTH):
                    self._slots.put(i)
        except BaseException:
            self.close()
            raise

    def process(self, raw: bytes) -> ImageResult:
        """process_image(raw, settings) in a worker process (blocks until it is done). Raises
        ImageWorkerDied when the worker died decoding this very image; a fresh worker takes its place."""
        slot = self._slots.get()
        try:
            while True:
                worker = self._workers[slot]
                try:
                    return worker.submit(raw).result()
                except ImageWorkerDied as e:
                    self._replace(slot, worker, len(raw) if e.culprit else None)
                    if e.culprit:
                        raise
        finally:
            self._slots.put(slot)

    def _replace(self, slot: int, dead: _Worker, culprit_bytes: int | None) -> None:
        with self._lock:
            if self._closed or self._workers[slot] is not dead:
                return  # closing, or another caller replaced it already
            if culprit_bytes is not None:
                log.warning("an image worker died on an image (%d bytes); starting a new one", culprit_bytes)
            self._workers[slot] = _Worker(self._frame)
        dead.close(timeout=5)  # reap it

    def close(self) -> None:
        """End every worker and wait for them (their CPU time then counts as this process's children)."""
        with self._lock:
            self._closed = True
            workers, self._workers = list(self._workers), []
        for worker in workers:
            worker.close()

    def __enter__(self) -> "ImagePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
