"""Safety and manners end to end: private-address refusal (also on redirect hops), proxies,
robots.txt, and the User-Agent the server sees."""
import dataclasses

import pytest

from loopback_server import LoopbackProxy, loopback_server, loopback_server_factory  # noqa: F401  (fixtures)

from openwit.pipeline.fetch import FetchSettings, fetch_all_sync, user_agent

SAFE = FetchSettings(timeout=5.0, read_timeout=2.0, connect_timeout=2.0, retries=0, backoff_base=0.01)


def test_private_targets_refused_before_any_request(loopback_server):  # noqa: F811
    srv = loopback_server
    port = srv.port
    urls = [f"http://127.0.0.1:{port}/gen/4x4.jpg?s=1",      # literal loopback
            f"http://[::ffff:127.0.0.1]:{port}/gen/4x4.jpg?s=2",  # IPv4-mapped IPv6
            f"http://localhost:{port}/gen/4x4.jpg?s=3",      # a name resolving to loopback (resolver check)
            "http://169.254.169.254/latest/meta-data",       # cloud metadata
            "http://10.0.0.1/a.jpg", "http://[::1]/a.jpg", "http://0.0.0.0/a.jpg"]
    results = fetch_all_sync(urls, SAFE)
    assert [r.reason for r in results] == ["private_address"] * len(urls), [r.error for r in results]
    assert all(r.attempts == 1 and r.elapsed < 1 for r in results)  # refusals are final, not retried
    assert "loopback" in results[0].error and "link_local" in results[3].error
    assert not [q for q in srv.requests if "?s=" in q.path]  # nothing reached the server


def test_allow_private_addresses_opens_them(loopback_server):  # noqa: F811
    url = f"http://localhost:{loopback_server.port}/gen/4x4.jpg?s=4"
    [r] = fetch_all_sync([url], dataclasses.replace(SAFE, allow_private_addresses=True))
    assert r.ok and loopback_server.count("/gen/4x4.jpg?s=4") == 1


def test_explicit_proxy_is_used_and_redirect_to_private_is_refused(loopback_server):  # noqa: F811
    """Through a proxy the proxy resolves names, so `images.test` (unknown to our DNS) works with the
    default safe settings; a redirect hop to a literal private IP is still refused before connecting."""
    srv = loopback_server
    with LoopbackProxy(host_map={"images.test": f"127.0.0.1:{srv.port}"}) as proxy:
        settings = dataclasses.replace(SAFE, proxy=proxy.url)
        urls = ["http://images.test/gen/4x4.jpg?p=1", "http://images.test/to-private?ip=10.0.0.1",
                "http://images.test/to-private", "http://images.test/redirect?to=http://%5B::1%5D:1/a.jpg"]
        ok, to10, to_metadata, to_v6 = fetch_all_sync(urls, settings)
        assert ok.ok and ok.data.startswith(b"\xff\xd8")
        [seen] = [q for q in srv.requests if q.path == "/gen/4x4.jpg?p=1"]
        assert seen.headers.get("Via") == "1.1 openwit-test-proxy"  # it came through the proxy
        assert to10.reason == "private_address" and "10.0.0.1 is private" in to10.error
        assert to_metadata.reason == "private_address" and "169.254.169.254 is link_local" in to_metadata.error
        assert to_v6.reason == "private_address"
        assert to10.final_url == "http://10.0.0.1/latest/meta-data"
        assert sorted(proxy.requests) == sorted(urls)  # the proxy saw each first hop and nothing else


def test_env_proxy_is_used_except_for_loopback(loopback_server, monkeypatch):  # noqa: F811
    srv = loopback_server
    with LoopbackProxy(host_map={"images.test": f"127.0.0.1:{srv.port}"}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        via_env, direct = fetch_all_sync(["http://images.test/gen/4x4.jpg?p=2", srv.url("/gen/4x4.jpg?p=3")],
                                         dataclasses.replace(SAFE, allow_private_addresses=True))
        assert via_env.ok and direct.ok
        assert proxy.requests == ["http://images.test/gen/4x4.jpg?p=2"]  # loopback went direct


def test_user_agent_sent(loopback_server):  # noqa: F811
    settings = dataclasses.replace(SAFE, allow_private_addresses=True, user_agent_token="mytoken")
    fetch_all_sync([loopback_server.url("/gen/4x4.jpg?ua=1")], settings)
    [seen] = [q for q in loopback_server.requests if q.path == "/gen/4x4.jpg?ua=1"]
    assert seen.headers["User-Agent"] == user_agent("mytoken")
    assert "openwit/" in seen.headers["User-Agent"] and "mytoken" in seen.headers["User-Agent"]


def test_robots_txt_checked_once_per_host(loopback_server_factory):  # noqa: F811
    srv = loopback_server_factory()
    srv.robots_txt = "User-agent: mytoken\nDisallow: /gen/\n\nUser-agent: *\nAllow: /\n"
    urls = [srv.url(f"/gen/4x4.jpg?r={i}") for i in range(5)] + [srv.url("/chain/1/gen/8x8.png")]
    base = dataclasses.replace(SAFE, allow_private_addresses=True, robots_txt=True)
    ours = fetch_all_sync(urls, dataclasses.replace(base, user_agent_token="mytoken"))
    assert [r.reason for r in ours] == ["robots_txt"] * 6  # the redirect hop into /gen/ is refused too
    assert srv.count("/robots.txt") == 1 and not [q for q in srv.requests if q.path.startswith("/gen/")]
    others = fetch_all_sync(urls, base)  # the rules name mytoken only: "openwit" may fetch
    assert all(r.ok for r in others)
    assert not fetch_all_sync(urls[:1], dataclasses.replace(base, robots_txt=False))[0].reason


def test_robots_txt_missing_means_allowed(loopback_server_factory):  # noqa: F811
    srv = loopback_server_factory()  # robots_txt None → 404
    [r] = fetch_all_sync([srv.url("/gen/4x4.jpg")], dataclasses.replace(SAFE, allow_private_addresses=True,
                                                                         robots_txt=True))
    assert r.ok and srv.count("/robots.txt") == 1


def test_tls_certificates_are_verified(loopback_server_factory):  # noqa: F811
    pytest.importorskip("cryptography")
    srv = loopback_server_factory(tls=True)  # self-signed
    [r] = fetch_all_sync([srv.url("/gen/4x4.jpg")], dataclasses.replace(SAFE, allow_private_addresses=True,
                                                                        retries=2))
    assert r.reason == "tls_error" and r.attempts == 1, r.error  # a bad certificate is not retried
    assert srv.requests == []  # no HTTP request was sent over the unverified connection
