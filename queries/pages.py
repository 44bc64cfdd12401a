"""MediaWiki XML → pages, streamed: an expat target that keeps at most a page's worth of text.

Schema-agnostic: tags are compared without their namespace, so export schemas 0.3 … 0.11 read
alike. Old schemas have no `<ns>` or `<redirect>`: the namespace then comes from the title prefix
(names from `<siteinfo>`), and a redirect from `#REDIRECT` at the start of the text. A page whose
text is over the limit is returned with `too_large` set and no text: its text is never held.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

from openwit.common.errors import UserError

CHUNK = 1 << 20
# Pages with more wikitext than this are skipped (counted): MediaWiki itself refuses pages over 2 MiB
# ($wgMaxArticleSize on Wikimedia wikis), so no real page is; a hostile one cannot cost more memory.
MAX_PAGE_CHARS = 2 * 1024 * 1024
_REDIRECT_TEXT = re.compile(r"\s*#redirect", re.I)
_DEFAULT_NAMESPACES = {"media": -2, "special": -1, "talk": 1, "user": 2, "user talk": 3, "wikipedia": 4,
                       "wikipedia talk": 5, "file": 6, "image": 6, "file talk": 7, "mediawiki": 8,
                       "mediawiki talk": 9, "template": 10, "template talk": 11, "help": 12,
                       "help talk": 13, "category": 14, "category talk": 15, "portal": 100,
                       "portal talk": 101, "draft": 118, "module": 828}


@dataclass(frozen=True)
class Page:
    title: str
    ns: int
    redirect: bool
    text: str
    too_large: bool = False  # its wikitext was over the size limit: not kept (text is "")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class _PageTarget:
    """XMLParser target that collects `<page>`s as they end; at most `max_chars` characters of
    one field are ever held (a longer page text is dropped and the page marked too_large), so
    memory per page is bounded whatever the page (expat hands text over in pieces)."""

    def __init__(self, name: str, max_chars: int):
        self.name, self.max_chars = name, max_chars
        self.namespaces = dict(_DEFAULT_NAMESPACES)
        self.pages: list[Page] = []
        self.path: list[str] = []
        self.fields: dict | None = None  # the open page's title, ns, redirect, text, too_large
        self.buf: list[str] | None = None
        self.size = 0
        self.attrib: dict = {}

    def start(self, tag: str, attrib: dict) -> None:
        name = _local(tag)
        parent = self.path[-1] if self.path else None
        self.path.append(name)
        if parent is None:
            if name != "mediawiki":
                raise UserError(f"{self.name}: not a MediaWiki XML dump (root element <{name}>)")
        elif name == "page":
            self.fields = {"title": "", "ns": None, "redirect": False, "text": "", "too_large": False}
        elif parent == "page" and name == "redirect" and self.fields is not None:
            self.fields["redirect"] = True
        elif ((parent == "page" and name in ("title", "ns")) or (parent == "revision" and name == "text")
              or (parent == "namespaces" and name == "namespace")):
            self.buf, self.size, self.attrib = [], 0, attrib

    def data(self, text: str) -> None:
        if self.buf is not None:
            self.size += len(text)
            if self.size <= self.max_chars:
                self.buf.append(text)
            elif self.buf:
                self.buf = []  # over the limit: let go of what was held

    def end(self, tag: str) -> None:
        name = self.path.pop()
        parent = self.path[-1] if self.path else None
        if self.buf is not None and name in ("title", "ns", "text", "namespace"):
            value, over = "".join(self.buf), self.size > self.max_chars
            self.buf = None
            if name == "namespace":
                if value.strip():
                    self.namespaces[value.strip().lower()] = int(self.attrib.get("key", "0"))
            elif self.fields is not None:  # the last revision's text wins (full-history dumps)
                self.fields[name] = value
                if name == "text":
                    self.fields["too_large"] = over
        elif name == "page" and parent is not None and self.fields is not None:
            self.pages.append(self._page(self.fields))
            self.fields = None

    def _page(self, f: dict) -> Page:
        title, ns_text, text = f["title"], f["ns"], f["text"]
        if ns_text is not None and ns_text.strip().lstrip("-").isdigit():
            ns = int(ns_text)
        else:
            prefix, colon, _ = title.partition(":")
            ns = self.namespaces.get(prefix.strip().lower(), 0) if colon else 0
        return Page(title, ns, f["redirect"] or bool(_REDIRECT_TEXT.match(text)), text, f["too_large"])

    def close(self) -> None:
        pass


def parse_pages(chunks: Iterable[bytes], name: str, max_chars: int = MAX_PAGE_CHARS) -> Iterator[Page]:
    """Every `<page>` of a MediaWiki XML export fed in byte chunks, in order; memory stays flat
    (one chunk + one page of at most `max_chars` characters)."""
    target = _PageTarget(name, max_chars)
    parser = ET.XMLParser(target=target)
    try:
        for chunk in chunks:
            parser.feed(chunk)
            if target.pages:
                yield from target.pages
                target.pages.clear()
        parser.close()
    except ET.ParseError as e:
        raise UserError(f"{name}: broken XML ({e})") from None
    yield from target.pages


def iter_pages(xml: IO[bytes], name: str, max_chars: int = MAX_PAGE_CHARS) -> Iterator[Page]:
    """Every `<page>` of a MediaWiki XML export stream (see parse_pages)."""
    return parse_pages(iter(lambda: xml.read(CHUNK), b""), name, max_chars)


