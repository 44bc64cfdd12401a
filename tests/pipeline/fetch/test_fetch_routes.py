"""The downloader against a real misbehaving HTTP server on 127.0.0.1: every route ends with the right
result, within its deadline, with the right number of attempts seen by the server."""
import dataclasses
import socket
import time

import pytest
from loopback_server import LoopbackServer, loopback_server  # noqa: F401  (fixture)

from openwit.pipeline.fetch import FetchSettings, fetch_all_sync

# Tests talk to 127.0.0.1, so they allow private addresses (tests/test_fetch_safety.py covers the refusal).
# Generous default deadlines (a loaded CI box must not turn a good route into a retry); the rows that
# test a deadline set a short one themselves.
FAST = FetchSettings(timeout=5.0, read_timeout=2.0, connect_timeout=2.0, max_bytes=2_000_000, retries=2,
                     backoff_base=0.01, max_retry_after=5.0, allow_private_addresses=True)


def fetch_one(srv: LoopbackServer, path: str, **overrides):
    settings = dataclasses.replace(FAST, **overrides)
    t0 = time.monotonic()
    [result] = fetch_all_sync([srv.url(path)], settings)
    return result, time.monotonic() - t0


# path, settings overrides, expected reason (None = success), attempts, max wall seconds
ROUTES = [
    ("/gen/64x48.jpg", {}, None, 1, 2),
    ("/gen/20x10.webp", {}, None, 1, 2),
    ("/bomb.png", {}, None, 1, 5),                       # fetching is fine; the decoder refuses it later
    ("/html-as-jpeg", {}, "not_an_image", 1, 2),         # Content-Type says JPEG; the bytes say HTML
    ("/empty", {}, "empty_body", 1, 2),
    ("/status/404", {}, "http_404", 1, 2),               # 4xx: not retried
    ("/status/403", {}, "http_403", 1, 2),
    ("/status/500", {}, "http_500", 3, 3),               # 5xx: retried, then given up
    ("/status/408", {}, "http_408", 3, 3),
    ("/flaky/503/1/gen/8x8.png?t=a", {}, None, 2, 3),    # 503 then success
    ("/flaky/429/5/gen/8x8.png?retry_after=0", {}, "http_429", 3, 3),
    ("/reset", {}, "connection_error", 3, 4),            # reset mid-body, retried
    ("/slow-headers/3/gen/8x8.png", {"retries": 0, "read_timeout": 0.5}, "read_timeout", 1, 2),
    ("/slow-headers/3/gen/8x8.png?t=b", {"retries": 0, "read_timeout": 5.0, "timeout": 0.6}, "timeout", 1, 2),
    ("/slow-headers/0.2/gen/8x8.png", {}, None, 1, 2),
    ("/trickle/1/100", {"retries": 0, "read_timeout": 0.3}, "read_timeout", 1, 2),
    ("/trickle/0.05/100000", {"retries": 0, "timeout": 0.8}, "timeout", 1, 2),  # trickle beats read_timeout
    ("/endless", {"max_bytes": 1_000_000}, "too_large", 1, 3),
    ("/endless?t=c", {"max_bytes": 10**12, "timeout": 0.8, "retries": 0}, "timeout", 1, 2),
    ("/huge", {}, "too_large", 1, 1.5),
    ("/gzip-bomb", {}, "too_large", 1, 3),               # counted after decoding: no memory blow-up                    # refused on the declared length alone
    ("/redirect?to=/gen/4x4.jpg", {}, None, 1, 2),
    ("/chain/3/gen/4x4.jpg", {}, None, 1, 2),
    ("/chain/3/gen/4x4.jpg?t=d", {"max_redirects": 2}, "too_many_redirects", 1, 2),
    ("/loop/0", {}, "too_many_redirects", 1, 2),
    ("/redirect?to=ftp://example.com/a.jpg", {}, "bad_scheme", 1, 2),
    ("/redirect?to=file:///etc/passwd", {}, "bad_scheme", 1, 2),
    ("/robots-tag/gen/4x4.jpg?v=noai", {}, "opt_out_noai", 1, 2),
    ("/robots-tag/gen/4x4.jpg?v=noimageai", {}, "opt_out_noimageai", 1, 2),
    ("/robots-tag/gen/4x4.jpg?v=noindex", {}, "opt_out_noindex", 1, 2),
    ("/robots-tag/gen/4x4.jpg?v=noimageindex", {}, "opt_out_noimageindex", 1, 2),
    ("/robots-tag/gen/4x4.jpg?v=nofollow&v=noarchive,+noimageai", {}, "opt_out_noimageai", 1, 2),  # 2 headers
    ("/robots-tag/gen/4x4.jpg?v=otherbot:+noai", {"user_agent_token": "mytoken"}, None, 1, 2),
    ("/robots-tag/gen/4x4.jpg?v=mytoken:+noindex", {"user_agent_token": "mytoken"}, "opt_out_noindex", 1, 2),
    ("/robots-tag/gen/4x4.jpg?v=noai&t=e", {"respect_x_robots_tag": False}, None, 1, 2),
    ("/chain/1/robots-tag/gen/4x4.jpg?v=noai", {}, "opt_out_noai", 1, 2),  # checked after a redirect too
]


@pytest.mark.parametrize("path,overrides,reason,attempts,max_wall", ROUTES, ids=[r[0] for r in ROUTES])
def test_route(loopback_server, path, overrides, reason, attempts, max_wall):  # noqa: F811
    r, wall = fetch_one(loopback_server, path, **overrides)
    assert r.reason == reason, r.error
    assert r.ok is (reason is None)
    assert (r.error is None) is r.ok and (r.error or "").startswith(reason or "")
    assert r.attempts == attempts
    assert wall < max_wall, f"{path} took {wall:.2f}s"
    if r.ok:
        assert r.data and r.image_format in ("jpeg", "png", "webp")
    else:
        assert r.data is None
    if not path.startswith(("/chain", "/redirect", "/loop")):
        assert loopback_server.count(path) == attempts  # the server saw every attempt, no more


def test_real_images_byte_exact(loopback_server, shared_data):  # noqa: F811
    paths = loopback_server.image_paths()
    assert len(paths) >= 20
    results = fetch_all_sync([loopback_server.url(p) for p in paths], FAST)
    for path, r in zip(paths, results):
        assert r.ok, (path, r.error)
        assert r.data == (loopback_server.images_dir / path.removeprefix("/images/")).read_bytes()
        assert r.content_type.startswith("image/") and r.final_url == loopback_server.url(path)


def test_truncated_jpeg_is_served_as_is(loopback_server, shared_data):  # noqa: F811
    r, _ = fetch_one(loopback_server, "/truncated/images/sklearn/china.jpg")
    full = (shared_data / "images" / "sklearn" / "china.jpg").read_bytes()
    assert r.ok and r.image_format == "jpeg" and r.data == full[: len(full) // 2]


def test_redirect_final_url(loopback_server):  # noqa: F811
    r, _ = fetch_one(loopback_server, "/chain/2/gen/4x4.jpg")
    assert r.ok and r.final_url == loopback_server.url("/gen/4x4.jpg")
    r, _ = fetch_one(loopback_server, "/loop/100")
    loop_paths = {f"/loop/{i}" for i in range(100, 200)}
    assert sum(1 for q in loopback_server.requests if q.path in loop_paths) == FAST.max_redirects + 1


@pytest.mark.parametrize("param,at_least", [("retry_after=1", 0.95), ("retry_after_date=2", 0.95)])
def test_retry_after_is_honoured(loopback_server, param, at_least):  # noqa: F811
    path = f"/flaky/429/1/gen/8x8.png?{param}"
    r, wall = fetch_one(loopback_server, path)
    assert r.ok and r.attempts == 2
    first, second = [q.time for q in loopback_server.requests if q.path == path]
    assert at_least <= second - first < 2.5, second - first


def test_retry_after_is_capped(loopback_server):  # noqa: F811
    r, wall = fetch_one(loopback_server, "/flaky/429/1/gen/8x8.png?retry_after=3600", max_retry_after=0.2)
    assert r.ok and r.attempts == 2 and wall < 1.5


def test_connection_refused_and_bad_urls():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    t0 = time.monotonic()
    results = fetch_all_sync([f"http://127.0.0.1:{port}/a.jpg", "not a url", "http:///nohost.jpg",
                              "ftp://example.com/a.jpg", "http://exa mple.com/a.jpg"],
                             dataclasses.replace(FAST, retries=1))
    assert [r.reason for r in results] == ["connection_error", "bad_scheme", "bad_url", "bad_scheme", "bad_url"]
    assert results[0].attempts == 2  # refused connections are retried
    assert time.monotonic() - t0 < 3


def test_unresolvable_name():
    """No wall-time bound here: a blocked system resolver may hold asyncio.run's executor at exit."""
    [r] = fetch_all_sync(["http://no-such-host.invalid/a.jpg"], dataclasses.replace(FAST, retries=0))
    assert r.reason in ("dns_error", "timeout") and r.attempts == 1  # offline resolvers may only time out


def test_misbehaving_batch_never_hangs(loopback_server):  # noqa: F811
    """All the slow and endless routes at once: the batch ends within the per-fetch bound."""
    settings = dataclasses.replace(FAST, timeout=1.5, read_timeout=0.8, retries=1, max_bytes=500_000)
    paths = ["/trickle/0.05/100000?b=1", "/trickle/1/100?b=1", "/endless?b=1", "/huge?b=1", "/slow-headers/5/x?b=1",
             "/reset?b=1", "/loop/0?b=1", "/status/500?b=1", "/gen/16x16.png?b=1"] * 3
    seen = []
    t0 = time.monotonic()
    results = fetch_all_sync([loopback_server.url(p) for p in paths], settings, on_result=lambda i, r: seen.append(i))
    wall = time.monotonic() - t0
    assert sorted(seen) == list(range(len(paths)))
    assert [r.url for r in results] == [loopback_server.url(p) for p in paths]  # order preserved
    assert [r.ok for r in results] == [p.startswith("/gen/") for p in paths]
    bound = (settings.retries + 1) * settings.timeout + settings.max_retry_after
    assert wall < bound + 2, f"batch took {wall:.1f}s"
