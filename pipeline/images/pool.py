"""A pool of image worker processes (images/worker.py), so decoding uses every core.

One Python process decodes on one core at a time (Pillow holds the GIL for part of each image),
so a shard worker that downloads with one event loop hands its images to `ImagePool.process`,
which sends the bytes to an idle worker process and waits for the ImageResult. Up to `processes`
threads may call it at once (the shard builder's image threads, one per worker). Workers are
plain subprocesses with their own pipes: no Beam or multiprocessing machinery is imported or
inherited, a killed parent leaves no worker behind (they end at end of stdin), and a worker that
dies on an image (a crash in a decoder) costs that image only: it fails with `ImageWorkerDied`,
and a fresh worker takes the slot. The results are the same bytes as `process_image` in-process.
"""
from __future__ import annotations

import logging
import pickle
import queue
import struct
import subprocess
import sys
import threading

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
    """The worker process ended while it had an image (the image is lost, the pool goes on)."""


class _Worker:
    def __init__(self, settings_frame: bytes):
        self.proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, close_fds=True)
        for pipe in (self.proc.stdin, self.proc.stdout):
            _widen(pipe)
        write_frame(self.proc.stdin, settings_frame)

    def call(self, raw: bytes) -> ImageResult:
        try:
            write_frame(self.proc.stdin, raw)
            payload = read_frame(self.proc.stdout)
        except (OSError, EOFError, ValueError):  # broken pipe, cut frame, closed file
            payload = None
        if payload is None:
            self.close(timeout=5)
            raise ImageWorkerDied(f"image worker exited with status {self.proc.returncode}")
        return pickle.loads(payload)

    def close(self, timeout: float = 30) -> None:
        """End the worker (end of stdin) and reap it; killed if it does not end in `timeout`."""
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ImagePool:
    """`processes` worker processes running process_image with `settings`; thread-safe `process`."""

    def __init__(self, settings: ImageSettings, processes: int):
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.settings, self.processes = settings, processes
        self._frame = pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL)
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            for _ in range(processes):
                self._add()
        except BaseException:
            self.close()
            raise

    def _add(self) -> _Worker:
        worker = _Worker(self._frame)
        with self._lock:
            self._workers.append(worker)
        self._idle.put(worker)
        return worker

    def process(self, raw: bytes) -> ImageResult:
        """process_image(raw, settings) in a worker process (blocks until one is free and done)."""
        worker = self._idle.get()
        try:
            result = worker.call(raw)
        except ImageWorkerDied:
            with self._lock:
                self._workers.remove(worker)
                closed = self._closed
            if not closed:
                log.warning("an image worker died on an image (%d bytes); starting a new one", len(raw))
                self._add()
            raise
        self._idle.put(worker)
        return result

    def close(self) -> None:
        """End every worker and wait for them (their CPU time then counts as this process's children)."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()

    def __enter__(self) -> "ImagePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
