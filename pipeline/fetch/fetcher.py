"""The image downloader: asyncio + aiohttp, bounded in time, size, concurrency and politeness; safe.

One `Fetcher` per worker (the shard writer's DoFn owns one event loop and one Fetcher). `fetch(url)`
never raises for network or content problems: it returns a FetchResult whose `reason` is one of
`fetch_rules.REASONS` (or `http_<code>` / `opt_out_<directive>`).

One attempt = the request plus its manually followed redirects (each hop is checked: scheme,
private address, robots.txt, X-Robots-Tag). The attempt's network time is bounded by `timeout`
(time spent waiting for a per-host slot or rate token is not counted); gaps between body chunks by
`read_timeout`. Failed attempts (timeouts, connection errors, 408/429/5xx) are retried up to
`retries` times with exponential backoff + jitter, or after `Retry-After` (capped). So one fetch
takes at most about (retries+1)·timeout + retries·max_retry_after seconds of wall time, plus queueing.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import asdict, dataclass

import aiohttp
from yarl import URL

from openwit.common.errors import UserError

from . import netsafety
from .errors import classify_exception
from .limits import HostGate
from .rules import (REDIRECT_CODES, RETRYABLE_REASONS, backoff_delay, failure, is_retryable_status,
                          parse_retry_after, robots_agent, sniff_image, user_agent, valid_host, valid_token,
                          x_robots_opt_out)
from .robots import MAX_ROBOTS_BYTES, RobotsCache

__all__ = ["FetchSettings", "FetchResult", "Fetcher", "fetch_all", "fetch_all_sync", "user_agent"]
log = logging.getLogger(__name__)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchSettings:
    timeout: float = 20.0            # total network time per attempt (connect + headers + body, all hops)
    read_timeout: float = 10.0       # max gap between body chunks (trickle guard)
    connect_timeout: float = 5.0
    max_bytes: int = 20_000_000      # bigger body (declared or actual) → "too_large"
    retries: int = 2                 # extra attempts on timeout/connection error/408/429/5xx
    backoff_base: float = 0.5        # exponential backoff with jitter; Retry-After honoured (capped)
    max_retry_after: float = 30.0
    concurrency: int = 64            # simultaneous requests per Fetcher (worker)
    per_host_connections: int = 4
    per_host_rps: float = 0.0        # 0 = unlimited; else requests/s per host (token bucket)
    max_redirects: int = 5
    user_agent_token: str | None = None
    proxy: str | None = None         # else HTTP(S)_PROXY from the environment; the proxy resolves names
    allow_private_addresses: bool = False
    respect_x_robots_tag: bool = True
    robots_txt: bool = False         # per-host robots.txt check, cached

    def __post_init__(self):
        for name in ("timeout", "read_timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise UserError(f"fetch {name} must be > 0 (got {getattr(self, name)})")
        if self.max_bytes < 1 or self.concurrency < 1 or self.per_host_connections < 1:
            raise UserError("fetch max_bytes, concurrency and per_host_connections must be >= 1")
        if self.retries < 0 or self.max_redirects < 0 or self.per_host_rps < 0:
            raise UserError("fetch retries, max_redirects and per_host_rps must be >= 0")
        if self.backoff_base < 0 or self.max_retry_after < 0:
            raise UserError("fetch backoff_base and max_retry_after must be >= 0")
        if self.user_agent_token is not None and not valid_token(self.user_agent_token):
            raise UserError(f"--user-agent-token must be one word of letters, digits, '.', '_' or '-' "
                            f"(got {self.user_agent_token!r})")
        if self.proxy is not None and URL(self.proxy).scheme not in ("http", "https"):
            raise UserError(f"--proxy must be an http:// or https:// URL (got {self.proxy!r})")

    def fingerprint_fields(self) -> dict:
        """Settings that change which samples end up in a shard (not mere timing or throughput)."""
        keys = ("max_bytes", "max_redirects", "user_agent_token", "allow_private_addresses",
                "respect_x_robots_tag", "robots_txt")
        return {k: v for k, v in asdict(self).items() if k in keys}


@dataclass
class FetchResult:
    url: str
    ok: bool
    data: bytes | None
    error: str | None        # None on success; else "<reason>: <detail>"
    reason: str | None       # the bare reason, for counters
    final_url: str | None
    attempts: int
    elapsed: float
    content_type: str | None = None
    image_format: str | None = None   # sniffed: jpeg, png, gif, webp, bmp, tiff, avif, heif
    status: int | None = None         # HTTP status of the last response, if any


@dataclass
class _Outcome:
    """What one attempt ended with (internal)."""
    reason: str | None = None
    detail: str = ""
    data: bytes | None = None
    final_url: str | None = None
    content_type: str | None = None
    image_format: str | None = None
    status: int | None = None
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        if self.reason in RETRYABLE_REASONS:
            return True
        return self.status is not None and self.reason == f"http_{self.status}" and is_retryable_status(self.status)


class _Redirect(Exception):
    def __init__(self, location: URL):
        self.location = location


class Fetcher:
    """Downloads images for one worker. Create and use inside a running event loop:

        async with Fetcher(FetchSettings()) as f:
            result = await f.fetch(url)
    """

    def __init__(self, settings: FetchSettings):
        self.settings = settings
        self._ua = user_agent(settings.user_agent_token)
        self._gate = HostGate(settings.per_host_connections, settings.per_host_rps)
        self._sem: asyncio.Semaphore | None = None
        self._session: aiohttp.ClientSession | None = None
        self._robots: RobotsCache | None = None
        self._env_proxies: dict[str, str] = {}
        self._rng = random.Random()  # jitter only: timing, never results

    async def __aenter__(self) -> "Fetcher":
        s = self.settings
        self._env_proxies = {} if s.proxy else netsafety.env_proxies()
        proxy_hosts = {URL(p).host or "" for p in [s.proxy, *self._env_proxies.values()] if p and "://" in p}
        resolver = netsafety.SafeResolver(s.allow_private_addresses, frozenset(proxy_hosts))
        connector = aiohttp.TCPConnector(limit=s.concurrency, limit_per_host=s.per_host_connections,
                                         resolver=resolver, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=s.connect_timeout, sock_read=s.read_timeout),
            headers={"User-Agent": self._ua, "Accept": "image/*,*/*;q=0.8"})
        self._sem = asyncio.Semaphore(s.concurrency)
        if s.robots_txt:
            self._robots = RobotsCache(self._fetch_robots, robots_agent(s.user_agent_token))
        return self

    async def __aexit__(self, *exc) -> None:
        if self._robots is not None:
            await self._robots.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> FetchResult:
        """Download one image; never raises for network or content problems."""
        if self._session is None:
            raise RuntimeError("use Fetcher as `async with Fetcher(settings) as f:`")
        start = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            out = await self._attempt_safely(url, image=True)
            if out.reason is None or not out.retryable or attempts > self.settings.retries:
                break
            delay = out.retry_after if out.retry_after is not None else backoff_delay(
                attempts, self.settings.backoff_base, self.settings.max_retry_after, self._rng)
            await asyncio.sleep(min(delay, self.settings.max_retry_after))
        return FetchResult(url=url, ok=out.reason is None, data=out.data,
                           error=None if out.reason is None else failure(out.reason, out.detail),
                           reason=out.reason, final_url=out.final_url, attempts=attempts,
                           elapsed=time.monotonic() - start, content_type=out.content_type,
                           image_format=out.image_format, status=out.status)

    async def _fetch_robots(self, url: str) -> tuple[str | None, bytes | None]:
        out = await self._attempt_safely(url, image=False)
        return out.reason, out.data

    async def _attempt_safely(self, url: str, image: bool) -> _Outcome:
        try:
            return await self._attempt(url, image)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug, not the network: keep the worker alive, count it, log it
            log.exception("unexpected error fetching %s", url)
            return _Outcome("error", f"{type(e).__name__}: {e}"[:300])

    async def _attempt(self, url: str, image: bool) -> _Outcome:
        """One attempt: request, follow redirects by hand, check every hop, read and check the body."""
        try:
            current = URL(url)
        except (ValueError, TypeError) as e:
            return _Outcome("bad_url", str(e)[:200])
        budget = self.settings.timeout
        for _ in range(self.settings.max_redirects + 1):
            problem = await self._check_target(current, check_robots=image)
            if problem is not None:
                return problem
            async with self._gate.slot(current.host), self._sem:
                began = time.monotonic()
                try:
                    async with asyncio.timeout(budget):
                        return await self._request(current, image)
                except _Redirect as r:
                    current = r.location
                except Exception as e:
                    return _Outcome(*classify_exception(e, self.settings), final_url=str(current))
                budget -= time.monotonic() - began
                if budget <= 0:
                    return _Outcome("timeout", f"total {self.settings.timeout:g}s", final_url=str(current))
        return _Outcome("too_many_redirects", f"more than {self.settings.max_redirects}", final_url=str(current))

    async def _check_target(self, u: URL, check_robots: bool) -> _Outcome | None:
        """Refusals decided before any byte is sent to `u`."""
        if u.scheme not in ("http", "https"):
            return _Outcome("bad_scheme", u.scheme or "(none)", final_url=str(u))
        if not u.raw_host or not valid_host(u.raw_host):  # raw_host: IDNA-encoded
            return _Outcome("bad_url", f"bad host {u.host!r}", final_url=str(u))
        if not self.settings.allow_private_addresses:
            why = netsafety.check_host_literal(u.host)
            if why:
                return _Outcome("private_address", f"{u.host} is {why}", final_url=str(u))
        if check_robots and self._robots is not None and not await self._robots.allowed(str(u)):
            return _Outcome("robots_txt", f"disallowed for {robots_agent(self.settings.user_agent_token)}",
                            final_url=str(u))
        return None

    async def _request(self, u: URL, image: bool) -> _Outcome:
        """One HTTP request to `u`; raises _Redirect to follow a redirect, and network errors."""
        s = self.settings
        proxy = netsafety.choose_proxy(u.scheme, u.host or "", s.proxy, self._env_proxies)
        resp = await self._session.get(u, allow_redirects=False, proxy=proxy)
        complete = False
        try:
            status = resp.status
            base = dict(final_url=str(u), status=status, content_type=resp.headers.get("Content-Type"))
            if image and s.respect_x_robots_tag:
                directive = x_robots_opt_out(resp.headers.getall("X-Robots-Tag", ()), s.user_agent_token)
                if directive:
                    return _Outcome(f"opt_out_{directive}", "X-Robots-Tag", **base)
            if status in REDIRECT_CODES and "Location" in resp.headers:
                try:
                    location = u.join(URL(resp.headers["Location"]))
                except (ValueError, TypeError) as e:
                    return _Outcome("bad_url", f"redirect Location: {e}"[:200], **base)
                complete = True  # release(): aiohttp keeps the connection only if the body was consumed
                raise _Redirect(location)
            if not 200 <= status <= 299:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                return _Outcome(f"http_{status}", (resp.reason or "")[:100], retry_after=retry_after, **base)
            max_bytes = s.max_bytes if image else MAX_ROBOTS_BYTES
            if resp.content_length is not None and resp.content_length > max_bytes:
                return _Outcome("too_large", f"declared {resp.content_length} > {max_bytes} bytes", **base)
            chunks, size = [], 0  # joined once at the end: one copy of the body, not three
            async for chunk in resp.content.iter_chunked(_CHUNK):
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    if not image:  # robots.txt: parse what fits, like Google
                        break
                    return _Outcome("too_large", f"body > {max_bytes} bytes", **base)
            complete = True
            data = b"".join(chunks)
            if size > max_bytes:
                data = data[:max_bytes]
            if not image:
                return _Outcome(data=data, **base)
            if not data:
                return _Outcome("empty_body", "", **base)
            fmt = sniff_image(data)
            if fmt is None:
                return _Outcome("not_an_image", f"starts {data[:8]!r}, Content-Type {base['content_type']}", **base)
            return _Outcome(data=data, image_format=fmt, **base)
        finally:
            if complete:
                resp.release()
            else:
                resp.close()  # unread body: drop the connection rather than drain it


async def fetch_all(urls: list[str], settings: FetchSettings, on_result=None) -> list[FetchResult]:
    """Fetch every URL with one Fetcher; results in input order. `on_result(i, result)` as each ends."""
    results: list[FetchResult | None] = [None] * len(urls)
    window = max(256, 4 * settings.concurrency)  # bounded number of pending tasks, not one per URL

    async with Fetcher(settings) as fetcher:
        async def one(i: int) -> None:
            results[i] = r = await fetcher.fetch(urls[i])
            if on_result is not None:
                on_result(i, r)

        pending: set[asyncio.Task] = set()
        for i in range(len(urls)):
            if len(pending) >= window:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()
            pending.add(asyncio.ensure_future(one(i)))
        for t in asyncio.as_completed(pending):
            await t
    return results  # type: ignore[return-value]


def fetch_all_sync(urls, settings: FetchSettings, on_result=None) -> list[FetchResult]:
    """fetch_all on a fresh event loop (asyncio.run): for tests and command-line use."""
    return asyncio.run(fetch_all(list(urls), settings, on_result))
