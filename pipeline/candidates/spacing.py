"""MetaCLIP's spacing of a text before sub-string matching, and the reference matcher built on it.

An entry q matches a text when `" " + q + " "` is a sub-string of `spaced(text)`; case-sensitive.
The batched matcher (match.py) works on bytes and takes its separators and marks from here.
"""
from __future__ import annotations

PUNCTS_TO_WRAP = (",", ".", ";", ":", "?", "!", "`")  # MetaCLIP pads each with spaces
CHARS_TO_SPACE = ("\t", "\n", "\r")                  # MetaCLIP turns these into spaces


def spaced(text: str) -> str:
    """MetaCLIP's spacing: wrap in spaces, pad `, . ; : ? !` and backtick with spaces, tabs and
    newlines to spaces. An entry q matches when `" " + q + " "` is a sub-string of this."""
    out = f" {text} "
    for p in PUNCTS_TO_WRAP:
        if p in out:
            out = out.replace(p, f" {p} ")
    for c in CHARS_TO_SPACE:
        if c in out:
            out = out.replace(c, " ")
    return out


def naive_match(text: str, queries: list[str]) -> list[int]:
    """Reference matcher (slow, obviously right): ids of queries q with " q " in spaced(text)."""
    s = spaced(text)
    return [i for i, q in enumerate(queries) if f" {q} " in s]
