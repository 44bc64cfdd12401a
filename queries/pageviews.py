"""Wikimedia pageview dump lines → (title, views) for English Wikipedia (pure parsing).

Two formats are read, told apart by their fields:
- hourly `pageviews-YYYYMMDD-HH(MMSS)`: `domain_code page_title count_views response_size`;
  English Wikipedia is domain `en` (desktop) and `en.m` (mobile);
- per-article daily/monthly (`pageviews-YYYYMM(DD)-user`): `wiki_code page_title page_id
  access_method views hourly_counts`; English Wikipedia is `en.wikipedia`.
Titles come as in URLs (underscores); they are normalized like dump titles so both join.
"""
from __future__ import annotations

from openwit.queries.pages import _DEFAULT_NAMESPACES
from openwit.queries.wikitext import normalize_title

HOURLY_DOMAINS = frozenset({"en", "en.m"})
PER_ARTICLE_WIKI = "en.wikipedia"


def parse_line(line: str) -> tuple[str, int] | None:
    """(title, views) of one English-Wikipedia line; None for other wikis or malformed lines."""
    fields = line.split(" ")
    if len(fields) == 4 and fields[0] in HOURLY_DOMAINS:
        views = fields[2]
    elif len(fields) >= 5 and fields[0] == PER_ARTICLE_WIKI:
        views = fields[4]
    else:
        return None
    title = fields[1]
    if not views.isdigit() or not title or title == "-":
        return None
    return normalize_title(title), int(views)


def is_article_title(title: str) -> bool:
    """False for titles in a non-article namespace (Special:, File:, Talk:, …)."""
    prefix, colon, _ = title.partition(":")
    return not (colon and prefix.strip().lower() in _DEFAULT_NAMESPACES)
