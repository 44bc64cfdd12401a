"""JPEG decoding straight to a NumPy RGB array with libjpeg-turbo (simplejpeg): the loader's device
path and the shard stage's area resampling (`pipeline.images`) decode plain JPEGs with it.

Pillow's `Image.open` parses a JPEG's markers in Python (~0.05 ms for a 256 px image, a fifth of the
decode itself) and keeps its pixels behind an `Image`; `simplejpeg` reads the header in C and
decodes into a NumPy array, ~15% less CPU per 256 px image with the same pixels (both are
libjpeg-turbo: accurate integer DCT, fancy upsampling; tests/loader/test_jpeg.py checks equality on
the real photos). `decode_rgb` returns None whenever it cannot promise Pillow's result — not a
JPEG, a colour space other than YCbCr or grey (CMYK/YCCK/Adobe RGB convert differently), a warning
from libjpeg (corrupt or truncated data: Pillow decides), a scaled size that is not the one
Pillow's `draft` picks, or a multi-picture file (MPO) to be scaled, which Pillow never drafts — and
the caller falls back to Pillow, so what is decoded, refused or
counted as a fault never depends on this module.
"""
from __future__ import annotations

import numpy as np

try:
    import simplejpeg
except ImportError:  # optional: the Pillow path decodes everything
    simplejpeg = None

_SOI = b"\xff\xd8\xff"
_PLAIN = {"YCbCr", "Gray"}
_MPF, _MARKERS = b"MPF\x00", 1 << 16  # the APP2 marker of multi-picture files; markers precede the scan


def draft_scale(width: int, height: int, want_w: int, want_h: int | None = None) -> int:
    """The DCT scale (1, 2, 4 or 8) Pillow's `draft(mode, (want_w, want_h))` picks: the largest that
    keeps the sides ≥ (want_w, want_h) (`want_h` defaults to `want_w`)."""
    fits = min(width // want_w, height // (want_w if want_h is None else want_h))
    return next((s for s in (8, 4, 2) if fits >= s), 1)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a plain JPEG's header, or None (not one `decode_rgb` would decode)."""
    if simplejpeg is None or not data.startswith(_SOI):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    return (width, height) if colorspace in _PLAIN else None


def decode_rgb(data: bytes, size: tuple[int, int], scale: int = 1) -> np.ndarray | None:
    """H×W×3 uint8 RGB of a plain JPEG of `size` (from `jpeg_size`) decoded at
    1/`scale`, or None (use Pillow)."""
    if scale > 1 and data.find(_MPF, 0, _MARKERS) >= 0:
        return None  # a multi-picture file (MPO): Pillow decodes its first picture without `draft`
    width, height = size
    want = (-(-height // scale), -(-width // scale))  # libjpeg's size at 1/scale, as Pillow's draft
    try:  # the smallest libjpeg-turbo scale (n/8) that keeps both sides ≥ `want`: 1/scale itself
        pixels = simplejpeg.decode_jpeg(data, "RGB", min_height=want[0], min_width=want[1])
    except ValueError:  # libjpeg error or warning
        return None
    return pixels if pixels.shape[:2] == want else None
