"""Caption text rules: normalisation and junk decisions (one reason each).

Normalisation never lowercases: MetaCLIP's sub-string matching is case-sensitive, so "Apple" and
"apple" are different queries.
"""
from __future__ import annotations

import html
import re

MIN_CAPTION_CHARS = 3       # "a", "ok", "1": no caption worth a pair
MAX_CAPTION_CHARS = 1000    # longer alt/title text is page copy, not a caption
MAX_URL_CHARS = 2048        # browsers' and CDNs' practical limit

# Control characters (C0 minus whitespace, DEL, C1), invisible format characters, bidirectional
# controls (marks, embeddings, overrides like U+202E and isolates: they reorder what a reader sees
# without being text), and lone surrogates (JSON can carry them; they have no UTF-8 form, so
# Parquet could not store them).
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069"
                      "\ufeff\ud800-\udfff]")
_IMAGE_EXT = r"(?:jpe?g|png|gif|webp|bmp|tiff?|svg|heic|avif|ico)"
# A caption that is only a file name ("IMG_1234.jpg", "photo-3.PNG") or a camera's default
# name without extension ("IMG_1234", "DSC01234", "DCIM 0042").
_FILENAME_LIKE = re.compile(
    rf"^(?:[\w\-.~%+()]+\.{_IMAGE_EXT}|(?:img|dsc|dscn|dcim|pxl|mvimg|photo|image|p)[_\- ]?\d{{3,}}\w*)$",
    re.IGNORECASE,
)



def normalize_caption(text: str | None) -> str:
    """Decode HTML entities, drop control/invisible characters, collapse whitespace (any Unicode
    space, incl. NBSP) to single spaces and strip. Case and punctuation are kept."""
    if not text:
        return ""
    if "&" in text:
        text = html.unescape(text)
    text = _CONTROL.sub("", text)
    return " ".join(text.split())


def junk_reason(caption: str, min_chars: int = MIN_CAPTION_CHARS, max_chars: int = MAX_CAPTION_CHARS) -> str | None:
    """Why a normalised caption is junk (`empty`, `too_short` below `min_chars` characters, `too_long`
    above `max_chars`, `filename_like`), or None."""
    if not caption:
        return "empty"
    if len(caption) < min_chars:
        return "too_short"
    if len(caption) > max_chars:
        return "too_long"
    if _FILENAME_LIKE.match(caption):
        return "filename_like"
    return None
