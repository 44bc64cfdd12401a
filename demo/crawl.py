"""A tiny crawler: fetch pages through a proxy and write them into a WARC, Common Crawl style.

One gzip member per record (so readers can seek), WARC/1.1: a `warcinfo` record, then per page a
`request`, the `response` (the HTTP status line, headers and body as received) and a `metadata`
record (fetch time). Records are made and written with FastWARC; dates and record ids are fixed
by the URL, so the same pages give the same bytes.
"""
from __future__ import annotations

import gzip
import http.client
import io
import uuid
from urllib.parse import urlsplit

from fastwarc.warc import WarcRecord, WarcRecordType

from openwit.common.atomic import atomic_write_bytes

WARC_DATE = "2024-01-15T12:00:00Z"
AGENT = "openwit-demo-crawler/1.0"


def fetch_raw(proxy: str, url: str, timeout: float = 30) -> tuple[bytes, bytes]:
    """(HTTP request bytes, HTTP response bytes as received) of one GET through `proxy`."""
    p = urlsplit(proxy)
    conn = http.client.HTTPConnection(p.hostname, p.port, timeout=timeout)
    try:
        headers = {"Host": urlsplit(url).netloc, "User-Agent": AGENT, "Accept": "text/html"}
        conn.request("GET", url, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        head = f"HTTP/1.1 {resp.status} {resp.reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in resp.getheaders())
    finally:
        conn.close()
    path = urlsplit(url).path or "/"
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return request.encode("latin-1"), head.encode("latin-1") + b"\r\n" + body


def _record(kind: WarcRecordType, name: str, content: bytes, content_type: str,
            headers: dict[str, str] | None = None) -> bytes:
    rec = WarcRecord()
    rec.init_headers(kind, record_urn=f"uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}".encode())
    rec.headers["WARC-Date"] = WARC_DATE
    rec.headers["Content-Type"] = content_type
    for k, v in (headers or {}).items():
        rec.headers[k] = v
    rec.set_bytes_content(content)
    buf = io.BytesIO()
    rec.write(buf)
    return gzip.compress(buf.getvalue(), mtime=0)  # one member per record


def warc_bytes(responses: list[tuple[str, bytes, bytes]], filename: str) -> bytes:
    """A gzipped WARC of (url, request bytes, response bytes) triples."""
    info = (f"software: {AGENT}\r\nformat: WARC File Format 1.1\r\n"
            f"description: the openwit demo's crawl of its loopback web site\r\n").encode()
    parts = [_record(WarcRecordType.warcinfo, "warcinfo:" + filename, info, "application/warc-fields",
                     {"WARC-Filename": filename})]
    for url, request, response in responses:
        target = {"WARC-Target-URI": url}
        parts.append(_record(WarcRecordType.request, "request:" + url, request,
                             "application/http; msgtype=request", target))
        parts.append(_record(WarcRecordType.response, "response:" + url, response,
                             "application/http; msgtype=response", target))
        parts.append(_record(WarcRecordType.metadata, "metadata:" + url, b"fetchTimeMs: 12\r\n",
                             "application/warc-fields", target))
    return b"".join(parts)


def crawl_to_warc(proxy: str, urls: list[str], path: str) -> str:
    """Fetch `urls` through `proxy` in order and write them to the WARC at `path`; returns `path`."""
    responses = [(url, *fetch_raw(proxy, url)) for url in urls]
    atomic_write_bytes(path, warc_bytes(responses, path.rsplit("/", 1)[-1]))
    return path
