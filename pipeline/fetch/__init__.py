"""Fetch: the image downloader — bounded in time, size, concurrency and politeness; never hangs.

`Fetcher(FetchSettings)` (one per worker, one aiohttp session) and `fetch_all_sync(urls, settings)`;
`fetch(url)` returns a `FetchResult` whose `reason` is one of `REASONS` (or `http_<code>` /
`opt_out_<directive>`). Modules: fetcher (requests, redirects, retries), rules (pure decisions:
reasons, User-Agent, opt-out headers, sniffing, retry timing), limits (per-host connections and
rate), errors (exception → reason), robots (robots.txt, cached), netsafety (private-address guard,
proxies).
"""
from openwit.pipeline.fetch.fetcher import FetchResult, Fetcher, FetchSettings, fetch_all, fetch_all_sync
from openwit.pipeline.fetch.rules import REASONS, user_agent

__all__ = ["REASONS", "FetchResult", "FetchSettings", "Fetcher", "fetch_all", "fetch_all_sync", "user_agent"]
