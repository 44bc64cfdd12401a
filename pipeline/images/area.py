"""Exact area-average shrinking, the default `resample="area"` of `process_image`.

Shrinking means averaging: each output pixel is the mean of the source area it covers, partial
source pixels weighted by the fraction covered. Two kernels compute exactly that, up to the final
rounding (`area_kernel`): openwit's own (`area_kernel.py`, compiled by numba; the default), rows
first so that the scalar half of the work runs on 1/s of the rows, a third of OpenCV's time at web
photos' scales; and OpenCV's INTER_AREA (`area_kernel="opencv"`, img2dataset's filter, openwit's
default before), which rounds up to a few pixels in 1,000 the other way (float order; more at whole
scales, where exact ties are common), so it is kept to finish folders built with it. Pillow's BOX filter, openwit's resampler before that (`resample="box"`), samples the
box at source pixel centres: each source pixel counts whole or not at all, so at a fractional scale
(1280 → 341 px is 3.75) the result is a coarser approximation — 40.8 dB PSNR from the exact average
on web-sized photos, 38.9 dB on detailed ones, against 58–59 dB for either kernel
(benchmarks/bench_decode.py).

Plain JPEGs (YCbCr or grey) are decoded by libjpeg-turbo straight into a NumPy array
(`common.jpeg.decode_rgb`, the DCT scale Pillow's `draft` would pick for the same margin, Pillow's
pixels); anything else, or anything libjpeg warns about, is decoded by Pillow as before, so what
fails and why never depends on this module. The arrays are resized in the stored orientation: the
area average commutes with flips and quarter turns, so the small result is oriented afterwards.
Same bytes for the same input in every run, thread and worker count (tested).
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from openwit.common import jpeg


@functools.cache
def _cv2():
    import cv2  # imported on first use: only image workers that shrink pay its import

    cv2.setNumThreads(1)  # one image per worker or thread: OpenCV's own pool would oversubscribe the cores
    return cv2


def decode_plain_jpeg(raw: bytes, size: tuple[int, int], stored_target: tuple[int, int],
                      margin: int) -> tuple[np.ndarray | None, int]:
    """(H×W×3 RGB pixels at the DCT scale `draft` picks for ≥ margin × the target (0: full size),
    the scale), or (None, 1) when libjpeg-turbo cannot promise Pillow's pixels: Pillow decodes."""
    if jpeg.jpeg_size(raw) != size:
        return None, 1
    tw, th = stored_target
    scale = jpeg.draft_scale(size[0], size[1], tw * margin, th * margin) if margin else 1
    pixels = jpeg.decode_rgb(raw, size, scale)
    return (pixels, scale) if pixels is not None else (None, 1)


@functools.cache
def _area_average():
    # imported on first use: only image workers that shrink pay numba's start (~0.35 s of CPU)
    from openwit.pipeline.images.area_kernel import area_average

    return area_average


def shrink(pixels: np.ndarray, target: tuple[int, int], kernel: str = "openwit") -> Image.Image:
    """The exact area average of an H×W (grey) or H×W×3 uint8 array at `target` (width, height),
    computed by `kernel` ("openwit" or "opencv")."""
    if kernel == "opencv":
        cv2 = _cv2()
        return Image.fromarray(cv2.resize(pixels, target, interpolation=cv2.INTER_AREA))
    return Image.fromarray(_area_average()(pixels, target))
