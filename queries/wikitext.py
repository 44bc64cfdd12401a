"""Wikitext → plain text, tokens, bigrams and link targets (pure functions, no I/O).

Why regexes and not a full parser (mwparserfromhell): the query list needs word statistics over
billions of tokens, not a faithful rendering; a few linear regex passes run at several MB/s per
core, a full parse tree is an order of magnitude slower. What is kept and dropped:

- dropped: comments, `<ref>`s, templates `{{…}}` (infoboxes, citations; nested), tables `{|…|}`,
  `<math>`/`<gallery>`/`<timeline>`/code blocks, category and interwiki links, magic words, URLs;
- kept as text: `[[target|label]]` → label, `[[target]]s` → targets, `[http://… label]` → label,
  `[[File:…|thumb|caption]]` → caption, headings, list items, bold/italic text, HTML entities decoded.

Every pass is linear in the page size, also on hostile markup (thousands of unclosed `<ref>`s,
`[[`s nested a thousand deep): no regex here can backtrack over more than one tag or one line,
and nested `{{…}}`, `{|…|}` and `[[…]]` are matched with a stack in one pass instead of removing
the innermost level again and again (see `_nested_spans`, `_links`).

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
_BLOCK_NAMES = ("ref", "math", "gallery", "timeline", "score", "syntaxhighlight", "source", "pre", "graph",
                "mapframe", "imagemap", "chem", "ce")
_BLOCK_OPEN = re.compile(rf"<({'|'.join(_BLOCK_NAMES)})\b[^<>]*?(/?)>", re.I)
_BLOCK_CLOSE = {name: re.compile(rf"</{name}\s*>", re.I) for name in _BLOCK_NAMES}
# Innermost parameters, templates, tables and links: one pass of each is linear; nested markup
# needs more passes (a few are done), deeper nesting is finished by the one-pass stack functions.
_PARAM = re.compile(r"\{\{\{[^{}]*\}\}\}")
_TEMPLATE = re.compile(r"\{\{(?:[^{}]|\{(?!\{)|\}(?!\}))*\}\}")
_TABLE = re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.S)
_FAST_PASSES = 3
_PARAM_TOKEN = re.compile(r"\{\{\{|\}\}\}|[{}]")
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}")
_TABLE_TOKEN = re.compile(r"\{\||\|\}")
_LINK = re.compile(r"\[\[([^\[\]]*)\]\]([^\W\d_]*)")
_BRACKETS = re.compile(r"\[+|\]+")
_LINK_TRAIL = re.compile(r"[^\W\d_]*")
_MAX_LINK_DEPTH = 8  # deeper [[ ]] nesting (never seen in articles) is left as text
_EXT_LINK = re.compile(r"\[(?:https?:|ftp:|//|mailto:)[^\s\[\]]*+\s*+([^\[\]]*+)\]", re.I)
_URL = re.compile(r"(?:https?|ftp)://\S+", re.I)
_TAG = re.compile(r"</?[A-Za-z][^<>]*?/?>")
_EMPHASIS = re.compile(r"'{2,}")
_HEADING_LINE = re.compile(r"^=[^\n]*", re.M)
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


def _link_text(inner: str, trail: str) -> str:
    """The visible text of a link `[[inner]]trail` (empty for category and interwiki links)."""
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


def _drop_blocks(text: str) -> str:
    """Remove `<ref>…</ref>`, `<math>…</math>`, … and self-closing `<ref … />`. An opening tag
    without its closing tag stays (as before); each tag name's closing tag is searched for at most
    until it is known to be absent, so the pass is linear."""
    out, pos, no_close = [], 0, {}
    for m in _BLOCK_OPEN.finditer(text):
        if m.start() < pos:
            continue
        if m.group(2):  # <ref name="x" />
            out.append(text[pos:m.start()])
            pos = m.end()
            continue
        name = m.group(1).lower()
        if no_close.get(name, len(text) + 1) <= m.end():
            continue
        close = _BLOCK_CLOSE[name].search(text, m.end())
        if close is None:
            no_close[name] = m.end()
            continue
        out.append(text[pos:m.start()])
        pos = close.end()
    out.append(text[pos:])
    return "".join(out)


def _nested_spans(text: str, token: re.Pattern, opener: str, closer: str) -> str:
    """Remove every balanced `opener … closer` (nested ones inside), in one pass with a stack; the
    result equals removing the innermost pair again and again. Unmatched tokens stay; any other
    token (a stray brace, for parameters) ends every pair open before it, as the innermost-first
    rule can never close those."""
    if opener not in text:
        return text
    stack, spans = [], []
    for m in token.finditer(text):
        t = m.group(0)
        if t == opener:
            stack.append(m.start())
        elif t == closer and stack:
            spans.append((stack.pop(), m.end()))
        elif t != closer:
            stack.clear()
    if not spans:
        return text
    out, pos = [], 0
    for start, end in sorted(spans):
        if start >= pos:  # spans are nested or apart: skip those inside one already removed
            out.append(text[pos:start])
            pos = end
    out.append(text[pos:])
    return "".join(out)


def _links(text: str) -> str:
    """Replace `[[…]]` links innermost first (File captions hold links), in one pass with a stack.
    As `\[\[([^\[\]]*)\]\]` applied again and again: a run of brackets opens or closes as many
    links as it has pairs, an odd bracket left over is text and ends every link open around it;
    links nested deeper than _MAX_LINK_DEPTH stay text; letters right after `]]` belong to the
    link (`[[cat]]s`)."""
    out, stack, pos = [], [], 0
    for m in _BRACKETS.finditer(text):
        if m.start() < pos:
            continue  # inside a link trail already consumed
        out.append(text[pos:m.start()])
        pos, run = m.end(), m.group(0)
        pairs, odd = divmod(len(run), 2)
        if run[0] == "[":
            if odd:
                stack.clear()
                out.append("[")
            for _ in range(pairs):
                stack.append(len(out))
                out.append("[[")
            del stack[:-_MAX_LINK_DEPTH]
            continue
        closed = 0
        while closed < pairs and stack:
            i = stack.pop()
            inner = "".join(out[i + 1:])
            del out[i:]
            closed += 1
            trail = ""
            if closed == pairs and not odd:
                trail = _LINK_TRAIL.match(text, pos).group(0)
                pos += len(trail)
            out.append(_link_text(inner, trail))
        if closed < pairs or odd:
            stack.clear()
            out.append("]" * (len(run) - 2 * closed))
    out.append(text[pos:])
    return "".join(out)


def _heading(match: re.Match) -> str:
    """`== Title ==` → `Title`: the same number of `=` off both ends (the smaller run), as
    `^(=+)\s*(.*?)\s*\1\s*$` would, without its cubic backtracking on a line of `=`s."""
    line = match.group(0)
    body = line.rstrip()
    lead, trail = len(body) - len(body.lstrip("=")), len(body) - len(body.rstrip("="))
    if lead == len(body):  # only "="s
        n = len(body) // 2
        return body[n:len(body) - n] if n else line
    n = min(lead, trail)
    return body[n:len(body) - n].strip() if n else line


def _innermost_first(text: str, pattern: re.Pattern, repl, finish) -> str:
    """Replace the innermost matches of `pattern` again and again, as long as that changes the
    text: a few regex passes (quick, and enough for real pages), then `finish` (one linear pass
    with a stack, the same result) for whatever nesting is left."""
    for _ in range(_FAST_PASSES):
        new = pattern.sub(repl, text)
        if new == text:
            return text
        text = new
    return finish(text)


def _link_match(m: re.Match) -> str:
    return _link_text(m.group(1), m.group(2))


def strip_markup(wikitext: str) -> str:
    """Plain text of a page's wikitext: see the module docstring for what is kept."""
    text = _COMMENT.sub("", wikitext)
    text = _drop_blocks(text)
    text = _innermost_first(text, _PARAM, "", lambda t: _nested_spans(t, _PARAM_TOKEN, "{{{", "}}}"))
    text = _innermost_first(text, _TEMPLATE, "", lambda t: _nested_spans(t, _TEMPLATE_TOKEN, "{{", "}}"))
    text = _innermost_first(text, _TABLE, "", lambda t: _nested_spans(t, _TABLE_TOKEN, "{|", "|}"))
    text = _EXT_LINK.sub(r"\1", text)
    text = _innermost_first(text, _LINK, _link_match, _links)
    text = _URL.sub("", text)
    text = _TAG.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = _HEADING_LINE.sub(_heading, text)
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
