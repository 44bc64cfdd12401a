"""Per-host politeness for the downloader: a connection cap and a request rate per host name.

One `HostGate` per Fetcher (per worker). Entries exist only while a host is busy or its rate
reservation is in the future, so a worker that meets millions of hosts does not grow without bound.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator


class _Host:
    __slots__ = ("sem", "next_time", "users")

    def __init__(self, connections: int):
        self.sem = asyncio.Semaphore(connections)
        self.next_time = 0.0  # loop time before which no new request may start (rate limit)
        self.users = 0


class HostGate:
    """`async with gate.slot(host):` waits for one of `connections` slots of `host`, then for its
    rate token (a token bucket of depth 1 refilled at `rps`/s: requests start at least 1/rps apart;
    rps=0 means unlimited). Waiters are served first come, first served."""

    def __init__(self, connections: int, rps: float = 0.0):
        if connections < 1:
            raise ValueError("connections must be >= 1")
        self._connections = connections
        self._interval = 1.0 / rps if rps > 0 else 0.0
        self._hosts: dict[str, _Host] = {}

    def __len__(self) -> int:
        return len(self._hosts)

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        key = host.lower()
        entry = self._hosts.get(key)
        if entry is None:
            entry = self._hosts[key] = _Host(self._connections)
        entry.users += 1
        try:
            async with entry.sem:
                if self._interval:
                    loop = asyncio.get_running_loop()
                    now = loop.time()
                    start = max(now, entry.next_time)
                    entry.next_time = start + self._interval
                    if start > now:
                        await asyncio.sleep(start - now)
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                self._forget_later(key, entry)

    def _forget_later(self, key: str, entry: _Host) -> None:
        loop = asyncio.get_running_loop()
        delay = entry.next_time - loop.time()
        if delay <= 0:
            self._forget(key, entry)
        else:
            loop.call_later(delay, self._forget, key, entry)

    def _forget(self, key: str, entry: _Host) -> None:
        # a later release may have pushed next_time further; its own callback forgets the entry then
        idle = entry.users == 0 and entry.next_time <= asyncio.get_running_loop().time() + 1e-6
        if idle and self._hosts.get(key) is entry:
            del self._hosts[key]
