"""Limits seen from the server: per-host connection cap, per-worker concurrency, per-host request rate,
and a 500-URL batch that completes with bounded concurrency."""
import asyncio
import dataclasses
import time

from loopback_server import loopback_server_factory  # noqa: F401  (fixture)

from openwit.pipeline.fetch import Fetcher, FetchSettings, fetch_all_sync

BASE = FetchSettings(timeout=5.0, read_timeout=2.0, connect_timeout=1.0, retries=0, allow_private_addresses=True)


def test_per_host_connection_cap(loopback_server_factory):  # noqa: F811
    srv = loopback_server_factory()
    urls = [srv.url(f"/slow-headers/0.05/gen/8x8.png?c={i}") for i in range(40)]
    results = fetch_all_sync(urls, dataclasses.replace(BASE, per_host_connections=3, concurrency=64))
    assert all(r.ok for r in results)
    assert srv.max_connections <= 3 and srv.max_in_flight <= 3
    assert srv.max_in_flight >= 2  # the cap, not a lack of parallelism, is what bounds it


def test_per_host_cap_is_per_host_name(loopback_server_factory):  # noqa: F811
    srv = loopback_server_factory()
    paths = [f"/slow-headers/0.1/gen/8x8.png?h={i}" for i in range(12)]
    urls = [srv.url(p) for p in paths] + [f"http://localhost:{srv.port}{p}" for p in paths]
    results = fetch_all_sync(urls, dataclasses.replace(BASE, per_host_connections=2))
    assert all(r.ok for r in results)
    assert 2 < srv.max_in_flight <= 4  # two host names, two slots each


def test_worker_concurrency_cap(loopback_server_factory):  # noqa: F811
    srv = loopback_server_factory()
    urls = [srv.url(f"/slow-headers/0.05/gen/8x8.png?w={i}") for i in range(20)]
    assert all(r.ok for r in fetch_all_sync(urls, dataclasses.replace(BASE, per_host_connections=16, concurrency=2)))
    assert srv.max_in_flight <= 2


def test_per_host_rate_limit(loopback_server_factory):  # noqa: F811
    srv = loopback_server_factory()
    urls = [srv.url(f"/gen/8x8.png?rps={i}") for i in range(5)]
    assert all(r.ok for r in fetch_all_sync(urls, dataclasses.replace(BASE, per_host_rps=10.0)))
    times = sorted(q.time for q in srv.requests)
    # 10/s → request i starts ≥ i·100 ms after the first (server clock; 50 ms slack for scheduling)
    assert all(t - times[0] >= i * 0.1 - 0.05 for i, t in enumerate(times)), times


def test_fetcher_used_directly_in_one_loop(loopback_server_factory):  # noqa: F811
    """How the shard writer uses it: one loop, one Fetcher, many fetches."""
    srv = loopback_server_factory()

    async def run():
        async with Fetcher(BASE) as f:
            return await asyncio.gather(*(f.fetch(srv.url(f"/gen/{8 + i}x8.jpg")) for i in range(10)))
    results = asyncio.run(run())
    assert all(r.ok and r.status == 200 and r.image_format == "jpeg" for r in results)


def test_500_urls_bounded_and_complete(loopback_server_factory, capsys):  # noqa: F811
    srv = loopback_server_factory()
    reals = srv.image_paths() or ["/gen/64x64.jpg"]
    urls = [srv.url(f"{reals[i % len(reals)]}?n={i}") if i % 2 else srv.url(f"/gen/32x32.png?n={i}")
            for i in range(500)]
    done = []
    t0 = time.monotonic()
    results = fetch_all_sync(urls, dataclasses.replace(BASE, concurrency=32, per_host_connections=16),
                             on_result=lambda i, r: done.append(i))
    wall = time.monotonic() - t0
    assert [r.error for r in results if not r.ok] == [] and sorted(done) == list(range(500))
    assert srv.max_connections <= 16 and len(srv.requests) == 500
    mb = sum(len(r.data) for r in results) / 1e6
    with capsys.disabled():
        print(f"\n500 loopback fetches: {wall:.2f}s, {500 / wall:.0f} URL/s, {mb / wall:.1f} MB/s, "
              f"max {srv.max_connections} connections")
    assert wall < 30
