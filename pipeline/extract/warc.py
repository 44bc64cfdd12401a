"""Image candidates from WARC files: HTML `response` records and WAT (JSON `metadata`) records.

WARC/1.0 and 1.1, plain or gzip (per-record members, Common Crawl style), read with FastWARC.
A truncated or corrupt file raises BadInput naming the byte offset of the record where it broke,
after every complete record before it has been yielded.
Every record's body is checked against its Content-Length, and the end of the file afterwards
(extract_warc_end): FastWARC stops without a word at a gzip member or a record header cut short.
"""
from __future__ import annotations

import json
import zlib
from typing import IO, Iterator

from fastwarc.warc import ArchiveIterator, WarcRecordType

from openwit.pipeline.extract.html_page import RawImage, decode_html, images_from_html, page_base, resolve_url

_ENCODINGS = {"gzip": lambda b: zlib.decompress(b, 47), "x-gzip": lambda b: zlib.decompress(b, 47),
              "deflate": lambda b: zlib.decompress(b, -15)}


class BadInput(Exception):
    """A corrupt or truncated input file; `offset` is the byte offset where reading broke."""

    def __init__(self, offset: int, message: str):
        super().__init__(f"at byte {offset}: {message}")
        self.offset = offset


def _target_uri(record) -> str | None:
    uri = record.headers.get("WARC-Target-URI")
    return uri.strip().strip("<>").strip() if uri else None  # some crawlers (wget) wrap it in <>


def _html_payload(record, body: bytes) -> str | None:
    if record.http_headers is None:  # not an HTTP response (e.g. a dns: record)
        return None
    ctype = (record.http_content_type or "").lower()
    if ctype and "html" not in ctype:
        return None
    encoding = (record.http_headers.get("Content-Encoding") or "").strip().lower()
    if encoding in _ENCODINGS:
        try:
            body = _ENCODINGS[encoding](body)
        except zlib.error:
            pass  # Common Crawl stores decoded payloads but keeps the header; use the bytes as they are
    return decode_html(body, record.http_charset)


def images_from_wat(payload: bytes) -> Iterator[RawImage]:
    """`IMG@/src` links of one WAT JSON record, with alt (else title), resolved like HTML."""
    envelope = json.loads(payload).get("Envelope", {})
    page_url = (envelope.get("WARC-Header-Metadata") or {}).get("WARC-Target-URI")
    html_meta = (((envelope.get("Payload-Metadata") or {}).get("HTTP-Response-Metadata") or {})
                 .get("HTML-Metadata") or {})
    base = page_base(page_url, (html_meta.get("Head") or {}).get("Base"))
    for link in html_meta.get("Links") or []:
        if link.get("path") != "IMG@/src":
            continue
        text = link.get("alt")
        if not (text and text.strip()):
            text = link.get("title") or text
        url, reason = resolve_url(link.get("url"), base)
        yield RawImage(url, text, page_url, reason)


def images_from_warc(stream: IO[bytes]) -> Iterator[RawImage]:
    """Every `<img>` in the file's HTML responses and WAT metadata records, in file order."""
    from openwit.pipeline.extract.warc_end import end_problem

    offset, last = 0, (None, 0)
    try:
        for record in ArchiveIterator(stream, parse_http=False):
            offset = record.stream_pos
            last = offset, record.content_length
            if record.record_type not in (WarcRecordType.response, WarcRecordType.metadata):
                got = record.reader.consume()
                if got < record.content_length:
                    raise BadInput(offset, f"record truncated ({got} of {record.content_length} bytes)")
                continue
            if record.record_type == WarcRecordType.response:
                record.parse_http()
            body = record.reader.read()
            if len(body) < record.content_length:
                raise BadInput(offset, f"record truncated ({len(body)} of {record.content_length} bytes)")
            if record.record_type == WarcRecordType.response:
                html = _html_payload(record, body)
                if html is not None:
                    yield from images_from_html(html, _target_uri(record))
            elif "json" in (record.headers.get("Content-Type") or ""):
                try:
                    yield from images_from_wat(body)
                except (ValueError, AttributeError) as e:
                    raise BadInput(offset, f"bad WAT JSON: {e}") from None
        problem = end_problem(stream, *last)
    except BadInput:
        raise
    except Exception as e:  # FastWARC/zlib errors on corrupt streams
        raise BadInput(offset, f"{type(e).__name__}: {e}") from None
    if problem is not None:
        raise BadInput(*problem)
