"""Image candidates from one HTML page: every `<img>` with alt (or title) text, URLs made absolute.

Pure functions over bytes and strings; the WARC reader (extract_warc) feeds them.
"""
from __future__ import annotations

import codecs
import re
from typing import Iterator, NamedTuple
from urllib.parse import urljoin, urlsplit

from charset_normalizer import from_bytes
from selectolax.lexbor import LexborHTMLParser

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)
# Browsers decode these labels with a superset codec (WHATWG Encoding Standard).
_SUPERSETS = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
              "us-ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
              "euc-kr": "cp949", "shift_jis": "cp932", "sjis": "cp932"}


class RawImage(NamedTuple):
    """One `<img>` as found: src resolved against the page (None when unusable), its text (alt,
    else title; None when neither), and the page URL."""
    url: str | None
    text: str | None
    page_url: str | None
    reason: str | None  # why url is None: no_src, data_uri, bad_scheme, url_too_long


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_html(body: bytes, http_charset: str | None = None) -> str:
    """Decode a page: HTTP header charset, else `<meta charset>` in the first 4 KiB, else UTF-8 when
    it decodes cleanly, else charset-normalizer's guess. Undecodable bytes are replaced."""
    codec = _codec(http_charset)
    if codec is None:
        m = _META_CHARSET.search(body[:4096])
        codec = _codec(m.group(1).decode("ascii", "ignore")) if m else None
    if codec is None:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            best = from_bytes(body[:65536]).best()
            codec = _codec(best.encoding) if best else None
    return body.decode(codec or "utf-8", errors="replace")


def resolve_url(src: str | None, base: str | None) -> tuple[str | None, str | None]:
    """(absolute http(s) URL, None) or (None, reason)."""
    from openwit.pipeline.extract.captions import MAX_URL_CHARS

    src = (src or "").strip()
    if not src:
        return None, "no_src"
    if src[:5].lower() == "data:":
        return None, "data_uri"
    try:
        url = urljoin(base, src) if base else src
        scheme = urlsplit(url).scheme.lower()
        url.encode("utf-8")  # lone surrogates (from JSON) cannot be stored or fetched
    except (ValueError, UnicodeEncodeError):
        return None, "bad_url"
    if scheme not in ("http", "https"):
        return None, "bad_scheme"
    if len(url) > MAX_URL_CHARS:
        return None, "url_too_long"
    return url, None


def page_base(page_url: str | None, base_href: str | None) -> str | None:
    """The base for relative URLs: `<base href>` (itself resolved against the page) or the page URL."""
    if base_href and base_href.strip():
        try:
            return urljoin(page_url, base_href.strip()) if page_url else base_href.strip()
        except ValueError:
            return page_url
    return page_url


def _value(attrs: dict, name: str) -> str | None:
    """An attribute's value as HTML defines it: "" when written without one, None when absent."""
    return (attrs[name] or "") if name in attrs else None


def images_from_html(html: str, page_url: str | None) -> Iterator[RawImage]:
    """Every `<img>` of a decoded page, in document order."""
    tree = LexborHTMLParser(html)
    base_node = tree.css_first("base[href]")
    base = page_base(page_url, base_node.attributes.get("href") if base_node else None)
    for img in tree.css("img"):
        attrs = img.attributes  # an attribute written without a value (`<img alt>`) is "" in HTML, None here
        text = _value(attrs, "alt")
        if not (text and text.strip()):
            text = attrs.get("title") or text
        url, reason = resolve_url(attrs.get("src"), base)
        yield RawImage(url, text, page_url, reason)
