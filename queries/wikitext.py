"""Wikitext → plain text, tokens, bigrams and link targets (pure functions, no I/O).

Why regexes and not a full parser (mwparserfromhell): the query list needs word statistics over
billions of tokens, not a faithful rendering; a few linear regex passes run at several MB/s per
core, a full parse tree is an order of magnitude slower. What is kept and dropped:

- dropped: comments, `<ref>`s, templates `{{…}}` (infoboxes, citations; nested), tables `{|…|}`,
  `<math>`/`<gallery>`/`<timeline>`/code blocks, category and interwiki links, magic words, URLs;
- kept as text: `[[target|label]]` → label, `[[target]]s` → targets, `[http://… label]` → label,
  `[[File:…|thumb|caption]]` → caption, headings, list items, bold/italic text, HTML entities decoded.

Tokenization (a decision, documented in the README): a token is a run of letters/digits with
inner hyphens or apostrophes (`anarcho-communism`, `Workers'` → `Workers`, `don't`), original case
kept, because MetaCLIP's matching is case-sensitive and counts words as they appear. Bigrams are
counted only between tokens separated by plain spaces on one line: MetaCLIP pads `, . ; : ? !` with
spaces before matching, so "Paris, France" could never match the entry "Paris France".
"""
from __future__ import annotations

import html
import re
from typing import Iterator

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_DROP_BLOCKS = re.compile(
    r"<(ref|math|gallery|timeline|score|syntaxhighlight|source|pre|graph|mapframe|imagemap|chem|ce)"
    r"\b[^>]*?(?:/>|>.*?</\1\s*>)", re.S | re.I)
_SELF_CLOSING_REF = re.compile(r"<ref\b[^>]*/>", re.I)
_TEMPLATE = re.compile(r"\{\{(?:[^{}]|\{(?!\{)|\}(?!\}))*\}\}")
_PARAM = re.compile(r"\{\{\{[^{}]*\}\}\}")
_TABLE = re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.S)
_LINK = re.compile(r"\[\[([^\[\]]*)\]\]([^\W\d_]*)")
_EXT_LINK = re.compile(r"\[(?:https?:|ftp:|//|mailto:)[^\s\]]*\s*([^\]]*)\]", re.I)
_URL = re.compile(r"(?:https?|ftp)://\S+", re.I)
_TAG = re.compile(r"</?[A-Za-z][^<>]*?/?>")
_EMPHASIS = re.compile(r"'{2,}")
_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$", re.M)
_LIST_MARK = re.compile(r"^[*#:;]+\s*", re.M)
_MAGIC = re.compile(r"__[A-Z]+__|^-{4,}", re.M)
_SPACES = re.compile(r"[ \t\u00a0\u2009\u200a\u202f]+")

_SKIP_LINK_PREFIXES = ("category", "wikipedia", "wp", "template", "help", "portal", "user", "special",
                       "talk", "module", "draft", "mediawiki", "wikt", "wiktionary", "s", "q", "b",
                       "n", "v", "commons", "meta", "mw", "species", "d", "c", "voy")
_MEDIA_PREFIXES = ("file", "image", "media")
_IMAGE_OPTION = re.compile(
    r"^(?:thumb|thumbnail|frame|framed|frameless|border|left|right|center|centre|none|upright"
    r"(?:[ =]?[\d.]+)?|baseline|middle|sub|super|top|text-top|bottom|text-bottom|\d*x?\d+ ?px"
    r"|(?:alt|link|page|lang|class|upright)=.*)$", re.I)

# A token: letters/digits, with inner hyphens or apostrophes.
_TOKEN = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*")
# A run of tokens separated only by spaces/tabs: the unit bigrams are counted in.
_RUN = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*(?:[ \t]+[^\W_]+(?:['\-][^\W_]+)*)*")


def _link_text(match: re.Match) -> str:
    inner, trail = match.group(1), match.group(2)
    target, _, rest = inner.partition("|")
    prefix, colon, _ = target.partition(":")
    p = prefix.strip().lower()
    if colon and p in _MEDIA_PREFIXES:
        parts = [s.strip() for s in rest.split("|")]
        caption = next((s for s in reversed(parts) if s and not _IMAGE_OPTION.match(s)), "")
        return caption + trail
    if target.startswith(":"):  # [[:Category:X]] is a visible link
        target = target[1:]
    elif colon and (p in _SKIP_LINK_PREFIXES or (2 <= len(p) <= 3 and p.isalpha() and p.islower())):
        return trail  # category, interwiki, other namespaces: invisible
    label = rest if rest else target.split("#", 1)[0] if not target.startswith("#") else target[1:]
    return label + trail


def _repeat(pattern: re.Pattern, repl, text: str) -> str:
    """Apply a substitution until nothing changes (innermost-first for nested markup)."""
    while True:
        new = pattern.sub(repl, text)
        if new == text:
            return text
        text = new


def strip_markup(wikitext: str) -> str:
    """Plain text of a page's wikitext: see the module docstring for what is kept."""
    text = _COMMENT.sub("", wikitext)
    text = _DROP_BLOCKS.sub("", text)
    text = _SELF_CLOSING_REF.sub("", text)
    text = _repeat(_PARAM, "", text)
    text = _repeat(_TEMPLATE, "", text)
    text = _repeat(_TABLE, "", text)
    text = _EXT_LINK.sub(r"\1", text)
    text = _repeat(_LINK, _link_text, text)
    text = _URL.sub("", text)
    text = _TAG.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = _HEADING.sub(r"\2", text)
    text = _LIST_MARK.sub("", text)
    text = _MAGIC.sub("", text)
    text = html.unescape(text).replace("\u2019", "'")
    text = _TAG.sub("", text)  # tags that were entity-escaped inside the wikitext
    return _SPACES.sub(" ", text)


def tokens(text: str) -> list[str]:
    """All tokens of plain text, in order, original case."""
    return _TOKEN.findall(text)


def runs(text: str) -> Iterator[list[str]]:
    """Token runs: maximal sequences of tokens separated only by spaces/tabs on one line."""
    for m in _RUN.finditer(text):
        yield _TOKEN.findall(m.group(0))


def link_targets(wikitext: str) -> list[str]:
    """Article titles linked from the wikitext (`[[Target|…]]`), normalized like page titles.

    Used for the in-link fallback when no pageviews are given; namespaced links are skipped.
    """
    out = []
    for m in re.finditer(r"\[\[([^\[\]|#]+)(?:#[^\[\]|]*)?(?:\|[^\[\]]*)?\]\]", wikitext):
        target = m.group(1).strip()
        if not target or ":" in target:
            continue
        out.append(normalize_title(target))
    return out


def normalize_title(title: str) -> str:
    """MediaWiki title form: underscores → spaces, single spaces, first letter upper-case."""
    title = " ".join(title.replace("_", " ").split())
    return title[:1].upper() + title[1:]
