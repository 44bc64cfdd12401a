"""Pure rules of the downloader: sniffing, X-Robots-Tag scoping, Retry-After, backoff, address safety,
proxy choice, settings, robots.txt policy, per-host limits."""
import asyncio
import io
import ipaddress
import random
import time
from email.utils import formatdate

import pytest
from PIL import Image

from openwit.common.errors import UserError
from openwit.pipeline.fetch import FetchSettings, user_agent
from openwit.pipeline.fetch.limits import HostGate
from openwit.pipeline.fetch.rules import (backoff_delay, is_known_reason, is_retryable_status, parse_retry_after,
                                          sniff_image, x_robots_opt_out)
from openwit.pipeline.fetch.netsafety import check_address, check_host_literal, choose_proxy
from openwit.pipeline.fetch.robots import robots_policy, robots_url


def _encoded(fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (9, 7), (10, 200, 30)).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,name", [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"), ("WEBP", "webp"),
                                      ("BMP", "bmp"), ("TIFF", "tiff")])
def test_sniff_real_encodings(fmt, name):
    assert sniff_image(_encoded(fmt)) == name


def test_sniff_isobmff_and_rejects():
    assert sniff_image(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00mif1") == "avif"
    assert sniff_image(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "heif"
    assert sniff_image(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00") is None  # an MP4 video
    assert sniff_image(b"<!doctype html><html>") is None
    assert sniff_image(b"BM not really a bitmap") is None
    assert sniff_image(b"") is None


def test_sniff_real_files(shared_data):
    for path in sorted((shared_data / "images" / "skimage").glob("*.*g")):
        assert sniff_image(path.read_bytes()[:64]) == ("png" if path.suffix == ".png" else "jpeg"), path


@pytest.mark.parametrize("values,token,expected", [
    (["noai"], None, "noai"),
    (["noimageai"], None, "noimageai"),
    (["NoIndex, nofollow"], None, "noindex"),
    (["noimageindex"], None, "noimageindex"),
    (["none"], None, "none"),
    (["nofollow", "noarchive"], None, None),
    (["otherbot: noai"], None, None),                      # scoped to someone else
    (["otherbot: noai"], "mytoken", None),
    (["mytoken: noindex"], "mytoken", "noindex"),          # scoped to our token
    (["MyToken: noimageai, nofollow"], "mytoken", "noimageai"),
    (["mytoken: noindex"], None, None),                    # no token configured: not us
    (["openwit: noai"], None, "noai"),                     # our product name always counts
    (["otherbot: noai, mytoken: noindex"], "mytoken", "noindex"),
    (["otherbot: nofollow", "noai"], "x", "noai"),          # several headers
    (["unavailable_after: 25 Jun 2010 15:00:00 PST, noai"], None, "noai"),  # a valued directive, not a scope
    (["max-image-preview: large"], None, None),
])
def test_x_robots_tag(values, token, expected):
    assert x_robots_opt_out(values, token) == expected


def test_retry_after_forms():
    now = time.time()
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 9 <= parse_retry_after(formatdate(now + 10, usegmt=True), now=now) <= 10
    assert parse_retry_after(formatdate(now - 100, usegmt=True), now=now) == 0.0


def test_backoff_grows_with_jitter_and_cap():
    rng = random.Random(1)
    for attempt, (lo, hi) in {1: (0.25, 0.5), 2: (0.5, 1.0), 3: (1.0, 2.0), 10: (1.5, 3.0)}.items():
        d = [backoff_delay(attempt, 0.5, 3.0, rng) for _ in range(50)]
        assert lo <= min(d) and max(d) <= hi and len(set(d)) > 1


def test_retryable_statuses_and_reasons():
    assert all(is_retryable_status(c) for c in (408, 429, 500, 502, 503, 504))
    assert not any(is_retryable_status(c) for c in (400, 401, 403, 404, 410, 451))
    assert is_known_reason("http_404") and is_known_reason("opt_out_noai") and is_known_reason("too_large")
    assert not is_known_reason("http_") and not is_known_reason("whatever")


@pytest.mark.parametrize("ip,why", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.0.0.1", "private"), ("192.168.1.5", "private"),
    ("172.16.3.4", "private"), ("169.254.169.254", "link_local"), ("fe80::1", "link_local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "private"), ("100.64.0.1", "not_global"), ("fc00::1", "private"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link_local"),  # IPv4-mapped
    ("2002:7f00:1::", "loopback"),            # 6to4 wrapping 127.0.0.1
    ("64:ff9b::a00:1", "private"),            # NAT64 wrapping 10.0.0.1
    ("8.8.8.8", None), ("93.184.216.34", None), ("2606:4700:4700::1111", None), ("::ffff:8.8.8.8", None),
    ("not an ip", "invalid"),
])
def test_check_address(ip, why):
    assert check_address(ip) == why
    if why not in (None, "invalid"):
        assert check_address(ipaddress.ip_address(ip)) == why


def test_valid_host():
    from openwit.pipeline.fetch.rules import valid_host
    assert all(valid_host(h) for h in ["example.com", "xn--bcher-kva.de", "a_b.example", "127.0.0.1", "::1",
                                       "fe80::1%eth0"])
    assert not any(valid_host(h) for h in ["exa mple.com", "a/b", "", "x" * 300, "a\nb"])


def test_check_host_literal():
    assert check_host_literal("[::1]") == "loopback"
    assert check_host_literal("127.0.0.1") == "loopback"
    assert check_host_literal("example.com") is None  # names are the resolver's job
    assert check_host_literal("8.8.8.8") is None


def test_choose_proxy():
    env = {"http": "http://proxy:3128", "https": "http://proxy:3128", "no": "intranet.example,.corp"}
    assert choose_proxy("http", "img.example", "http://explicit:1", env) == "http://explicit:1"
    assert choose_proxy("http", "127.0.0.1", "http://explicit:1", env) == "http://explicit:1"
    assert choose_proxy("https", "img.example", None, env) == "http://proxy:3128"
    assert choose_proxy("http", "intranet.example", None, env) is None   # NO_PROXY
    assert choose_proxy("http", "a.corp", None, env) is None
    assert choose_proxy("http", "localhost", None, env) is None          # loopback goes direct
    assert choose_proxy("http", "127.0.0.1", None, env) is None
    assert choose_proxy("http", "img.example", None, {}) is None


def test_user_agent_names_tool_and_token():
    ua = user_agent("mybot")
    assert ua.startswith("openwit/") and "mybot" in ua and "https://" in ua
    assert "compatible" not in user_agent(None)


@pytest.mark.parametrize("kw", [dict(timeout=0), dict(read_timeout=-1), dict(max_bytes=0), dict(retries=-1),
                                dict(concurrency=0), dict(per_host_connections=0), dict(per_host_rps=-1),
                                dict(user_agent_token="two words"), dict(user_agent_token="a:b"),
                                dict(proxy="socks5://x:1")])
def test_settings_validation(kw):
    with pytest.raises(UserError):
        FetchSettings(**kw)


def test_fingerprint_fields_ignore_timing():
    a, b = FetchSettings(), FetchSettings(timeout=3, retries=9, concurrency=2, proxy="http://p:1")
    assert a.fingerprint_fields() == b.fingerprint_fields()
    assert FetchSettings(max_bytes=5).fingerprint_fields() != a.fingerprint_fields()
    assert FetchSettings(user_agent_token="t").fingerprint_fields() != a.fingerprint_fields()


def test_robots_policy():
    rules = b"User-agent: mybot\nDisallow: /private/\n\nUser-agent: *\nDisallow: /\n"
    rp = robots_policy(None, rules)
    assert rp.can_fetch("mybot", "http://h/public/a.jpg") and not rp.can_fetch("mybot", "http://h/private/a.jpg")
    assert not rp.can_fetch("openwit", "http://h/public/a.jpg")
    assert robots_policy("http_404", None).can_fetch("x", "http://h/a")
    assert not robots_policy("http_403", None).can_fetch("x", "http://h/a")
    assert not robots_policy("http_503", None).can_fetch("x", "http://h/a")
    assert robots_policy("connection_error", None).can_fetch("x", "http://h/a")
    assert robots_url("https://Img.Example:8443/a/b.jpg?x=1") == "https://img.example:8443/robots.txt"


def test_host_gate_caps_connections_and_rate():
    async def run():
        gate = HostGate(connections=2, rps=20)
        live, peak, starts = 0, 0, []

        async def one():
            nonlocal live, peak
            async with gate.slot("Img.Example"):
                starts.append(asyncio.get_running_loop().time())
                live += 1
                peak = max(peak, live)
                await asyncio.sleep(0.01)
                live -= 1
        await asyncio.gather(*(one() for _ in range(8)))
        await asyncio.sleep(0.08)  # entries are forgotten once idle and past their rate reservation
        return peak, starts, len(gate)
    peak, starts, left = asyncio.run(run())
    assert peak <= 2
    # 20 requests/s: start i is reserved i·50 ms after the first (sleep never wakes early)
    assert all(t - starts[0] >= i * 0.05 - 1e-3 for i, t in enumerate(starts)), starts
    assert left == 0


def test_classify_exception():
    import aiohttp

    from openwit.pipeline.fetch.errors import classify_exception
    s = FetchSettings(timeout=3, read_timeout=2, connect_timeout=1)
    assert classify_exception(aiohttp.ConnectionTimeoutError(), s) == ("timeout", "connect > 1s")
    assert classify_exception(aiohttp.SocketTimeoutError(), s) == ("read_timeout", "no data for 2s")
    assert classify_exception(TimeoutError(), s) == ("timeout", "total 3s")
    assert classify_exception(aiohttp.ClientPayloadError("cut"), s)[0] == "connection_error"
    assert classify_exception(aiohttp.ServerDisconnectedError(), s)[0] == "connection_error"
    assert classify_exception(ConnectionResetError(104, "reset"), s)[0] == "connection_error"
    assert classify_exception(aiohttp.InvalidURL("x"), s)[0] == "bad_url"
    with pytest.raises(KeyError):  # not a network problem: a bug, re-raised (Fetcher logs it as "error")
        classify_exception(KeyError("k"), s)


def test_offline_watch_warns_once_when_the_first_downloads_all_fail_on_the_network():
    from openwit.pipeline.fetch.offline import OfflineWatch

    watch = OfflineWatch(after=4)
    said = [watch.see(r) for r in ("dns_error", "connection_error", "dns_error", "dns_error", "dns_error")]
    assert said[:3] == [None] * 3 and said[4] is None  # the 4th says it, once
    assert said[3].startswith("the first 4 downloads all failed on the network (dns_error 3, connection_error 1): "
                              "is this machine offline") and "--retry-failed" in said[3]
    for first in (None, "http_404", "not_an_image"):  # a success, or any answer from a server: online
        online = OfflineWatch(after=2)
        assert online.see(first) is None
        assert [online.see("dns_error") for _ in range(5)] == [None] * 5
