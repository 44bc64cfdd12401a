"""Pure Pillow helpers behind `images.process_image`: geometry, RGB conversion, EXIF, encoding.

Kept apart from the decision logic in `images.py` so each piece stays small and testable. The
geometry follows img2dataset's resizer (albumentations' smallest/longest max size, centered crop
and pad) so shards built here match shards built there.
"""
from __future__ import annotations

import io
import json

from PIL import ExifTags, Image, TiffImagePlugin

RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")
OUTPUT_FORMATS = {"jpg": "JPEG", "webp": "WEBP", "png": "PNG"}
# EXIF orientations 5..8 swap width and height when applied.
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_ORIENTATION_OPS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_WHITE = (255, 255, 255)
_BORDER = (255, 255, 255)  # img2dataset 1.47 pads with white (checked on its output)
_MAX_EXIF_VALUE_CHARS = 512


def oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """(width, height) as displayed once the EXIF orientation is applied."""
    w, h = size
    return (h, w) if orientation in _SWAPPING_ORIENTATIONS else (w, h)


def apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    op = _ORIENTATION_OPS.get(orientation)
    return im.transpose(op) if op is not None else im


def _scaled(w: int, h: int, side: int, image_size: int) -> tuple[int, int]:
    """Scale (w, h) so that `side` (w or h) becomes exactly image_size; the other is rounded, ≥ 1."""
    if w == h:
        return image_size, image_size
    scale = image_size / side
    if side == w:
        return image_size, max(1, round(h * scale))
    return max(1, round(w * scale)), image_size


def plan_resize(
    w: int, h: int, mode: str, image_size: int, only_if_bigger: bool
) -> tuple[tuple[int, int] | None, str | None]:
    """Return (resized size or None for no resize, final step: None | "crop" | "pad").

    keep_ratio / center_crop: smaller side → image_size (center_crop then crops a square);
    keep_ratio_largest / border: larger side → image_size (border then pads to a square).
    With only_if_bigger, nothing happens (no resize, crop or pad) unless the governing side is
    larger than image_size, as in img2dataset.
    """
    if mode == "no":
        return None, None
    if mode in ("keep_ratio", "center_crop"):
        side, final = min(w, h), ("crop" if mode == "center_crop" else None)
    else:
        side, final = max(w, h), ("pad" if mode == "border" else None)
    if only_if_bigger and side <= image_size:
        return None, None
    return _scaled(w, h, side, image_size), final


def center_crop(im: Image.Image, size: int) -> Image.Image:
    w, h = im.size
    left, top = max(0, (w - size) // 2), max(0, (h - size) // 2)
    return im.crop((left, top, left + min(size, w), top + min(size, h)))


def pad_square(im: Image.Image, size: int) -> Image.Image:
    """Paste centered on a size×size white canvas (img2dataset's `border` mode); RGB or L."""
    w, h = im.size
    if (w, h) == (size, size):
        return im
    canvas = Image.new(im.mode, (max(size, w), max(size, h)), 255 if im.mode == "L" else _BORDER)
    canvas.paste(im, ((canvas.width - w) // 2, (canvas.height - h) // 2))
    return canvas


def _high_bit_to_l(im: Image.Image) -> Image.Image:
    """16-bit / 32-bit grey (I;16*, I, F) → 8-bit L: values above 255 are taken as 16-bit."""
    import numpy as np  # here, not at the top: image workers start faster without it (rare modes only)

    arr = np.asarray(im)
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr, nan=0.0)
        if arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    arr = arr.astype(np.int64)
    if arr.max(initial=0) > 255:
        arr = arr >> 8
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


def to_rgb_or_l(im: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB, or L for opaque grey (L, 1, I;16*, I, F); transparency (RGBA, LA, PA,
    P/L/RGB with tRNS) composited on white.

    Grey stays one channel so that orienting, resizing and padding cost a third (Pillow keeps RGB as
    4 bytes a pixel); `.convert("RGB")` afterwards gives the same pixels as converting first, because
    each RGB channel would be resampled exactly like the L one."""
    if im.mode.startswith("I") or im.mode == "F":
        return _high_bit_to_l(im)
    if im.mode in ("L", "1") and "transparency" not in im.info:
        return im if im.mode == "L" else im.convert("L")
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if im.mode == "RGB":
        return im
    return im.convert("RGB")


def _exif_value(value) -> str | None:
    if isinstance(value, bytes):
        text = value.rstrip(b"\x00")
        if not text or not all(32 <= c < 127 for c in text):
            return None
        value = text.decode("ascii")
    if isinstance(value, TiffImagePlugin.IFDRational):
        num, den = value.numerator, value.denominator
        value = f"{num}/{den}" if den not in (0, 1) else str(num)
    elif isinstance(value, tuple):
        parts = [_exif_value(v) for v in value]
        if any(p is None for p in parts):
            return None
        value = "[" + ", ".join(parts) + "]"
    text = str(value).strip().strip("\x00")
    if not text or len(text) > _MAX_EXIF_VALUE_CHARS:
        return None
    return text


def exif_json(exif: Image.Exif) -> str | None:
    """Readable EXIF tags as a JSON object, keys in exifread style ("Image Make", "EXIF FNumber").

    Binary blobs (MakerNote, thumbnails) and unnamed tags are dropped; None when nothing is left.
    """
    out: dict[str, str] = {}
    groups = [("Image", dict(exif), ExifTags.TAGS)]
    for ifd, prefix, names in (
        (ExifTags.IFD.Exif, "EXIF", ExifTags.TAGS),
        (ExifTags.IFD.GPSInfo, "GPS", ExifTags.GPSTAGS),
    ):
        try:
            groups.append((prefix, dict(exif.get_ifd(ifd)), names))
        except Exception:  # a malformed sub-IFD only loses that group
            continue
    for prefix, tags, names in groups:
        for tag, value in tags.items():
            name = names.get(tag)
            if name is None or tag in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo, 0x8825):
                continue
            text = _exif_value(value)
            if text is not None:
                out[f"{prefix} {name}"] = text
    return json.dumps(out, sort_keys=True, ensure_ascii=False) if out else None


def encode(im: Image.Image, output_format: str, quality: int) -> bytes:
    """Encode an RGB image; no metadata is written, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    fmt = OUTPUT_FORMATS[output_format]
    if fmt == "PNG":
        im.save(buf, fmt, compress_level=6)
    elif fmt == "WEBP":
        im.save(buf, fmt, quality=quality, method=4)
    else:
        im.save(buf, fmt, quality=quality, optimize=False)
    return buf.getvalue()
