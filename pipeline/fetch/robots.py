"""Optional robots.txt check for the downloader: one fetch per host, cached (urllib.robotparser).

How a robots.txt answer is read (as urllib.robotparser and Google do):
  200 → the rules; 401/403 → everything disallowed; other 4xx (no robots.txt) → everything allowed;
  5xx → everything disallowed for now (the site is in trouble); unreachable → allowed (the image
  fetch that follows then fails with its own, more telling network reason).
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Awaitable, Callable
from urllib.robotparser import RobotFileParser

from yarl import URL

MAX_ROBOTS_BYTES = 500_000  # Google reads the first 500 KiB; we cap the same way

# fetch_text(url) -> (reason, body): reason None on success, else e.g. "http_404", "timeout"
FetchText = Callable[[str], Awaitable[tuple[str | None, bytes | None]]]


def robots_url(url: str) -> str:
    u = URL(url)
    return str(u.origin().with_path("/robots.txt"))


def robots_policy(reason: str | None, body: bytes | None) -> RobotFileParser:
    """A parser holding the rules implied by one robots.txt fetch outcome (see the module doc)."""
    rp = RobotFileParser()
    if reason is None:
        text = (body or b"").decode("utf-8", errors="replace")
        rp.parse(text.splitlines())
    elif reason in ("http_401", "http_403") or (reason.startswith("http_5")):
        rp.disallow_all = True
    else:
        rp.allow_all = True
    rp.modified()  # can_fetch() refuses everything until the parser counts as "read"
    return rp


class RobotsCache:
    """can_fetch(url) with one robots.txt fetch per origin (scheme+host+port), LRU-bounded.

    Concurrent checks for the same origin share one fetch.
    """

    def __init__(self, fetch_text: FetchText, agent: str, max_hosts: int = 10_000):
        self._fetch_text = fetch_text
        self._agent = agent
        self._max = max_hosts
        self._cache: OrderedDict[str, asyncio.Future[RobotFileParser]] = OrderedDict()

    async def allowed(self, url: str) -> bool:
        key = robots_url(url)
        fut = self._cache.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._load(key))
            self._cache[key] = fut
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        rp = await asyncio.shield(fut)
        return rp.can_fetch(self._agent, url)

    async def _load(self, key: str) -> RobotFileParser:
        reason, body = await self._fetch_text(key)
        return robots_policy(reason, body)

    async def close(self) -> None:
        for fut in self._cache.values():
            fut.cancel()
        self._cache.clear()
