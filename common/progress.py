"""Throttled progress lines for long runs: totals and a rate, at most one line every few seconds.

DoFns share one `Progress` per label through `progress(label)` (local runs execute them in this
process, several threads at once). Lines go to the `openwit.progress` logger at INFO, which stays
visible when the CLIs quiet other INFO logs; on Dataflow they land in the worker logs (the Beam
counters are the job-wide view there).
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("openwit.progress")
log.setLevel(logging.INFO)

_REGISTRY: dict[str, "Progress"] = {}
_REGISTRY_LOCK = threading.Lock()


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


class Progress:
    """Running totals; `add(**amounts)` logs `label: a 1,234, b 5.0 (1,000 a/s)` every `every` seconds."""

    def __init__(self, label: str, every: float = 10.0):
        self.label, self.every = label, every
        self.totals: dict[str, float] = {}
        self._lock = threading.Lock()
        self._start = self._last = None

    def add(self, **amounts: float) -> None:
        with self._lock:
            now = time.monotonic()
            if self._start is None:
                self._start = self._last = now
            for key, value in amounts.items():
                self.totals[key] = self.totals.get(key, 0) + value
            if now - self._last >= self.every:
                self._last = now
                log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """The current progress line (also what `add` logs)."""
        elapsed = max((now or time.monotonic()) - (self._start or 0.0), 1e-9)
        parts = ", ".join(f"{k} {_fmt(v)}" for k, v in self.totals.items())
        first = next(iter(self.totals), None)
        rate = f" ({self.totals[first] / elapsed:,.0f} {first}/s)" if first else ""
        return f"{self.label}: {parts}{rate}"


def progress(label: str, every: float = 10.0) -> Progress:
    """The process-wide Progress for `label` (made on first use)."""
    with _REGISTRY_LOCK:
        if label not in _REGISTRY:
            _REGISTRY[label] = Progress(label, every)
        return _REGISTRY[label]
