"""Decode, check, filter, resize and re-encode one downloaded image (pure; the shard writer's core).

One function, `process_image`, decides an image's fate and never raises for bad bytes: the result
says `success`, `failed_to_resize` (could not decode: decode_error, truncated_image,
decompression_bomb, unsupported_mode, encode_error) or `filtered` (image_too_small,
aspect_ratio_too_large, image_area_too_large — judged on the original size, before decoding the
pixels). Resize modes and their geometry follow img2dataset.

Decoding is cheap where it can be: the pixel-count guard reads the header size before any pixel
is decoded (Pillow's global MAX_IMAGE_PIXELS is never touched per call, so threads are safe), and
JPEGs that will be shrunk are decoded with DCT scaling (by 1/2, 1/4 or 1/8, as Pillow's `draft`) to at
least `decode_margin` × the target size, then area-averaged: exactly, by OpenCV, from pixels that
libjpeg-turbo decodes straight into an array (`area.py`, `resample="area"`, the default), or with
Pillow's BOX filter as openwit did before (`resample="box"`).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import math
import re
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image

from openwit.common.errors import UserError
from openwit.pipeline.images import area
from openwit.pipeline.images.ops import (
    OUTPUT_FORMATS,
    RESIZE_MODES,
    apply_orientation,
    center_crop,
    encode,
    exif_json,
    oriented_size,
    pad_square,
    plan_resize,
    to_rgb_or_l,
)

SUCCESS, FAILED, FILTERED = "success", "failed_to_resize", "filtered"
REASONS = (
    "decode_error",
    "truncated_image",
    "decompression_bomb",
    "unsupported_mode",
    "encode_error",
    "image_too_small",
    "aspect_ratio_too_large",
    "image_area_too_large",
)
_DRAFT_FORMATS = ("JPEG", "MPO")
# Settings whose value is left out of the fingerprint when it is the one every shard was built
# with before the setting existed, so OUT folders written then still resume unchanged.
IMPLIED_SETTINGS = {"decode_margin": 2, "resample": "box", "area_kernel": "opencv"}
RESAMPLES = ("area", "box")
AREA_KERNELS = ("openwit", "opencv")
# settings that mean something only beside another's value: the area kernel only when shrinking by area
_ONLY_WITH = {"area_kernel": ("resample", "area")}


def applies(name: str, settings: dict) -> bool:
    """Whether setting `name` means anything given the other `settings` (see _ONLY_WITH)."""
    other, value = _ONLY_WITH.get(name, (None, None))
    return other is None or settings.get(other) == value
_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


@dataclass(frozen=True)
class ImageSettings:
    """How images are filtered, resized and encoded (img2dataset's options and semantics)."""

    image_size: int = 256
    resize_mode: str = "border"
    resize_only_if_bigger: bool = False
    output_format: str = "jpg"
    quality: int = 95
    min_image_size: int = 0
    max_aspect_ratio: float = float("inf")
    max_image_area: float = float("inf")
    max_image_pixels: int = 89_478_485
    # JPEG DCT scaling when shrinking: decode at ≥ decode_margin × the target, then area-average;
    # 0 = always decode every pixel (speed and error of each: benchmarks/RESULTS.md, bench_decode.py)
    decode_margin: int = 2
    # how shrinking averages: "area" = exact area average (img2dataset's filter, OpenCV's INTER_AREA);
    # "box" = Pillow's BOX filter (whole source pixels only), openwit's before the setting existed
    resample: str = "area"
    # which code computes the exact area average (resample="area"): "openwit" = area_kernel.py,
    # "opencv" = INTER_AREA, the default before (they round some pixels differently)
    area_kernel: str = "openwit"

    def fingerprint_fields(self) -> dict:
        """All settings as a JSON-safe dict (infinity written as "inf"), for the shard fingerprint;
        a setting at its IMPLIED_SETTINGS value is left out (shards from before it existed match),
        and so is a setting that means nothing beside the others (area_kernel unless resample is "area")."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in IMPLIED_SETTINGS and value == IMPLIED_SETTINGS[f.name]:
                continue
            if not applies(f.name, vars(self)):
                continue
            out[f.name] = "inf" if isinstance(value, float) and math.isinf(value) else value
        return out

    def validate(self) -> None:
        """Raise UserError naming the flag when a value is unusable."""
        def bad(flag: str, why: str):
            raise UserError(f"--{flag}: {why}")

        if not _is_int(self.image_size) or self.image_size < 1:
            bad("image-size", f"must be a positive integer, got {self.image_size!r}")
        if self.resize_mode not in RESIZE_MODES:
            bad("resize-mode", f"must be one of {'|'.join(RESIZE_MODES)}, got {self.resize_mode!r}")
        if not isinstance(self.resize_only_if_bigger, bool):
            bad("resize-only-if-bigger", "must be true or false")
        if self.output_format not in OUTPUT_FORMATS:
            bad("output-format", f"must be one of {'|'.join(OUTPUT_FORMATS)}, got {self.output_format!r}")
        if not _is_int(self.quality) or not 1 <= self.quality <= 100:
            bad("quality", f"must be an integer in 1..100, got {self.quality!r}")
        if not _is_int(self.min_image_size) or self.min_image_size < 0:
            bad("min-image-size", f"must be an integer ≥ 0, got {self.min_image_size!r}")
        if not _is_num(self.max_aspect_ratio) or not self.max_aspect_ratio >= 1:
            bad("max-aspect-ratio", f"must be a number ≥ 1, got {self.max_aspect_ratio!r}")
        if not _is_num(self.max_image_area) or not self.max_image_area > 0:
            bad("max-image-area", f"must be a number > 0, got {self.max_image_area!r}")
        if not _is_int(self.max_image_pixels) or self.max_image_pixels < 1:
            bad("max-image-pixels", f"must be a positive integer, got {self.max_image_pixels!r}")
        if not _is_int(self.decode_margin) or not 0 <= self.decode_margin <= 8:
            bad("decode-margin", f"must be an integer in 0..8, got {self.decode_margin!r}")
        if self.resample not in RESAMPLES:
            bad("resample", f"must be one of {'|'.join(RESAMPLES)}, got {self.resample!r}")
        if self.area_kernel not in AREA_KERNELS:
            bad("area-kernel", f"must be one of {'|'.join(AREA_KERNELS)}, got {self.area_kernel!r}")
        if self.resample == "area" and self.area_kernel == "openwit" and importlib.util.find_spec("numba") is None:
            bad("area-kernel", "openwit's kernel needs numba, which is not installed: `pip install numba`, "
                "or pass --area-kernel opencv")


def with_implied(settings: dict) -> dict:
    """Recorded fingerprint settings with the values left out filled in (IMPLIED_SETTINGS), those
    that mean nothing beside the others dropped (area_kernel unless resample is "area")."""
    full = {**IMPLIED_SETTINGS, **settings}
    return {name: value for name, value in full.items() if applies(name, full)}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


@dataclass
class ImageResult:
    """One image's fate; `error` is "<reason>: <detail>" and `reason` the part before the colon."""

    status: str
    error: str | None
    reason: str | None
    data: bytes | None
    ext: str | None
    width: int | None
    height: int | None
    original_width: int | None
    original_height: int | None
    sha256: str
    exif: str | None
    draft_scale: int = 1  # JPEG DCT scaling used while decoding (1 = full decode)


class _Rejected(Exception):
    def __init__(self, status: str, reason: str, detail: str, size: tuple[int, int] | None = None):
        super().__init__(detail)
        self.status, self.reason, self.detail, self.size = status, reason, detail, size


def raise_pillow_limit(settings: ImageSettings) -> None:
    """Call once per process before threads start (CLI main, DoFn.setup) when max_image_pixels
    may exceed Pillow's default: Image.open itself refuses images above 2 × Image.MAX_IMAGE_PIXELS
    (and warns above 1 ×). process_image's own per-call check is the real guard, so Pillow's global
    one is only lifted (never lowered) to match it."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and limit < settings.max_image_pixels:
        Image.MAX_IMAGE_PIXELS = settings.max_image_pixels


@functools.lru_cache(maxsize=64)
def _validated(settings: ImageSettings) -> ImageSettings:
    settings.validate()
    return settings


def process_image(raw: bytes, settings: ImageSettings) -> ImageResult:
    """Decode, filter, resize and encode `raw`; same bytes and settings → same output bytes.

    Never raises for bad image bytes (only for invalid settings, as UserError). Thread-safe.
    """
    _validated(settings)
    sha = hashlib.sha256(raw or b"").hexdigest()
    try:
        return _process(raw, settings, sha)
    except _Rejected as r:
        w, h = r.size or (None, None)
        return ImageResult(
            status=r.status, error=f"{r.reason}: {r.detail}", reason=r.reason, data=None, ext=None,
            width=None, height=None, original_width=w, original_height=h, sha256=sha, exif=None,
        )


def _pillow_failure(e: BaseException, size=None) -> _Rejected:
    """Classify an exception raised by Pillow while opening or decoding. Object addresses in the
    message (`cannot identify image file <_io.BytesIO object at 0x7f…>`) are dropped: the error is
    written into the shard, which must be the same bytes in every run and process."""
    detail = _ADDRESS.sub("<bytes>", " ".join(f"{type(e).__name__}: {e}".split()))[:300]
    if isinstance(e, Image.DecompressionBombError):
        return _Rejected(FAILED, "decompression_bomb", detail, size)
    if isinstance(e, OSError) and "truncated" in str(e).lower():
        return _Rejected(FAILED, "truncated_image", detail, size)
    return _Rejected(FAILED, "decode_error", detail, size)


def _check_size(w: int, h: int, s: ImageSettings, size) -> None:
    """Header-size guard and the three filters (all symmetric in w and h)."""
    if w <= 0 or h <= 0:
        raise _Rejected(FAILED, "decode_error", f"invalid size {w}x{h}", size)
    if w * h > s.max_image_pixels:
        raise _Rejected(
            FAILED, "decompression_bomb", f"{w}x{h} = {w * h} pixels > {s.max_image_pixels}", size
        )
    if min(w, h) < s.min_image_size:
        raise _Rejected(FILTERED, "image_too_small", f"{w}x{h} < {s.min_image_size}", size)
    ratio = max(w, h) / min(w, h)
    if ratio > s.max_aspect_ratio:
        raise _Rejected(
            FILTERED, "aspect_ratio_too_large", f"{w}x{h} ratio {ratio:.3g} > {s.max_aspect_ratio:g}", size
        )
    if w * h > s.max_image_area:
        raise _Rejected(FILTERED, "image_area_too_large", f"{w}x{h} > {s.max_image_area:g}", size)


def _orientation(exif) -> int:
    value = exif.get(0x0112, 1) if exif is not None else 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _read_exif(im: Image.Image, allow_load: bool):
    """The image's EXIF, or None; PNG keeps eXIf after the pixels, so Pillow may need to load."""
    if im.format == "PNG" and "exif" not in im.info and not allow_load:
        return None
    try:
        return im.getexif()
    except Exception:  # malformed EXIF costs the tags, never the image
        return None


def _exif_text(exif) -> str | None:
    try:
        return exif_json(exif) if exif is not None else None
    except Exception:  # odd tag values cost the tags, never the image
        return None


def _geometry(im: Image.Image, target, final: str | None, size: int) -> Image.Image:
    """Resize to target (if any) with Pillow, then crop or pad to size×size."""
    if target is None:
        return im
    # img2dataset's choice: area averaging to shrink (here Pillow's BOX), Lanczos to enlarge
    shrinking = target[0] < im.width or target[1] < im.height
    im = im.resize(target, Image.Resampling.BOX if shrinking else Image.Resampling.LANCZOS)
    return _finish(im, final, size)


def _finish(im: Image.Image, final: str | None, size: int) -> Image.Image:
    if final == "crop":
        return center_crop(im, size)
    if final == "pad":
        return pad_square(im, size)
    return im


def _process(raw: bytes, s: ImageSettings, sha: str) -> ImageResult:
    if not raw:
        raise _Rejected(FAILED, "decode_error", "empty input")
    try:
        im = Image.open(io.BytesIO(raw))
    except Exception as e:  # UnidentifiedImageError, SyntaxError, struct.error, bombs…
        raise _pillow_failure(e) from None
    with im:
        w0, h0 = im.size
        if min(w0, h0) > 0:
            cheap = _read_exif(im, allow_load=False)
            shown = oriented_size((w0, h0), _orientation(cheap))
        else:
            shown = (w0, h0)
        _check_size(w0, h0, s, shown)
        ow, oh = shown
        try:
            if im.format == "PNG":
                im.load()
            exif = _read_exif(im, allow_load=True)
            orientation = _orientation(exif)
            ow, oh = oriented_size((w0, h0), orientation)
            target, final = plan_resize(ow, oh, s.resize_mode, s.image_size, s.resize_only_if_bigger)
            stored = oriented_size(target, orientation) if target is not None else None
            exact = s.resample == "area" and stored is not None and (stored[0] < w0 or stored[1] < h0)
            draft_scale, array = 1, None
            if exact and im.format in _DRAFT_FORMATS:
                array, draft_scale = area.decode_plain_jpeg(raw, (w0, h0), stored, s.decode_margin)
            if array is None:  # Pillow decodes
                if stored is not None and im.format in _DRAFT_FORMATS and s.decode_margin:
                    # decode at ≥ decode_margin × the target (stored orientation); at 2, as Pillow's
                    # thumbnail does, the final area resampling smooths the DCT scaling's blockiness
                    tw, th = stored
                    drafted = im.draft(None, (tw * s.decode_margin, th * s.decode_margin))
                    if drafted is not None:
                        draft_scale = max(1, round(w0 / drafted[1][2]))
                im.load()
        except Exception as e:
            raise _pillow_failure(e, (ow, oh)) from None
        if array is None:
            try:
                pixels = to_rgb_or_l(im)
            except Exception as e:
                raise _Rejected(FAILED, "unsupported_mode", f"mode {im.mode}: {e}", (ow, oh)) from None
        if exact:  # area-average in the stored orientation (it commutes with flips and turns), then orient
            small = area.shrink(array if array is not None else np.asarray(pixels), stored, s.area_kernel)
            out = _finish(apply_orientation(small, orientation), final, s.image_size)
        else:
            out = _geometry(apply_orientation(pixels, orientation), target, final, s.image_size)
        if out.mode != "RGB":  # grey was kept as L for speed; the output is always RGB
            out = out.convert("RGB")
        try:
            data = encode(out, s.output_format, s.quality)
        except Exception as e:
            raise _Rejected(FAILED, "encode_error", f"{type(e).__name__}: {e}", (ow, oh)) from None
    return ImageResult(
        status=SUCCESS, error=None, reason=None, data=data, ext=s.output_format,
        width=out.width, height=out.height, original_width=ow, original_height=oh,
        sha256=sha, exif=_exif_text(exif), draft_scale=draft_scale,
    )
