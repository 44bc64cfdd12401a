"""Decode-only loading: workers hand over uint8 pixels and crop boxes, the consumer resizes whole
batches on its device (`make_loader(..., device_augment=True)`, issue 15).

Worker side (per image, cheap): decode (`decode`: plain JPEGs with libjpeg-turbo straight to an
RGB array, `common/jpeg.py`; anything else with Pillow's `open_image`; JPEG `draft` as the default
path, the same pixels either way), take the
box the Pillow path would resize — train: `random_resized_crop_box` with the same RNG; eval: the
resize-shorter-side + centre-crop geometry — and slice out the decoded pixels the bicubic filter
reads around that box (`crop_for_device`). Nothing is resampled on the CPU, except that a box more
than `REDUCING_GAP` × 2 times the output size is first shrunk by an integer factor with Pillow's
`reduce` (box averages, as Pillow's own `resize(reducing_gap=2.0)`): that bounds a batch's memory
for huge non-JPEG images; 256 px shards never need it. The slice is a view of Pillow's own pixel
memory (RGB stored as 4 bytes a pixel, exported through Arrow) or of the decoded array, so a
sample's pixels are copied once, into the batch. A batch is a `PixelBatch`: the slices zero-padded
into one uint8 RGB tensor (3 bytes a pixel: a quarter less shared memory from DataLoader workers and
host-to-device copy than RGBX), their sizes and the boxes in
their coordinates.

Consumer side (`DeviceTransform`): Pillow's bicubic resampling (a = -0.5, support scaled by the
downscale factor = antialiased; horizontal pass first, rounded and clipped to 0..255 between the
passes and at the end) written as two batched matmuls with per-sample weight matrices, so a whole
batch is resized in one call whatever its crop sizes; then CLIP's normalisation. Output equals
the default path's images to within a rare ±1 level (tests/test_loader_device.py).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from openwit.common import jpeg
from openwit.loader.transforms import (CLIP_MEAN, CLIP_STD, MAX_IMAGE_PIXELS, check_pixels, eval_resize_geometry,
                                       open_image, random_resized_crop_box)

REDUCING_GAP = 2.0  # a box over 2 × REDUCING_GAP × size on a side is reduced by an integer factor first
BICUBIC_SUPPORT = 2.0  # Pillow's bicubic filter: a = -0.5, support 2 (times the downscale factor)


class Crop(NamedTuple):
    """One image's share of a PixelBatch: the pixels the resize reads and where the box lies in them."""

    pixels: np.ndarray  # uint8 H×W×3 or H×W×4 (RGB + Pillow's unused byte): a view of the decoded image's memory
    box: tuple[float, float, float, float]  # (left, top, right, bottom) in `pixels` coordinates
    source_box: tuple[float, float, float, float]  # the same box in the decoded image (as the Pillow path's)


class PixelBatch(NamedTuple):
    """What a `device_augment` loader yields in place of float images; `DeviceTransform` finishes it."""

    pixels: torch.Tensor  # uint8 [B, H, W, 3]: each sample's RGB slice at the top left, zero padded
    sizes: torch.Tensor  # int64 [B, 2]: (height, width) of each sample's slice
    boxes: torch.Tensor  # float64 [B, 4]: (left, top, right, bottom) to resize to size×size, in slice pixels

    def pin_memory(self) -> "PixelBatch":
        return PixelBatch(*(t.pin_memory() for t in self))


# --- worker side ------------------------------------------------------------------------------
Decoded = Image.Image | np.ndarray  # an RGB image, or H×W×3 RGB pixels


def decode(data: bytes, size: int, draft: bool = True, max_pixels: int | None = MAX_IMAGE_PIXELS) -> Decoded:
    """`open_image`'s pixels, refusals and errors: a plain JPEG decoded by libjpeg-turbo straight to
    an RGB array (at the scale Pillow's `draft` would pick), anything else an RGB Pillow image."""
    dims = jpeg.jpeg_size(data) if max_pixels is not None else None  # None: Pillow's own guard applies
    if dims is not None:
        check_pixels(*dims, max_pixels)
        pixels = jpeg.decode_rgb(data, dims, jpeg.draft_scale(*dims, size) if draft else 1)
        if pixels is not None:
            return pixels
    return open_image(data, size, draft=draft, max_pixels=max_pixels)


def image_size(img: Decoded) -> tuple[int, int]:
    """(width, height) of a decoded image."""
    return (img.shape[1], img.shape[0]) if isinstance(img, np.ndarray) else img.size


def crop_for_device(img: Decoded, size: int, box: Sequence[float], reducing_gap: float = REDUCING_GAP) -> Crop:
    """The pixels of `img` that resizing `box` to `size`×`size` with bicubic reads, and the box in them.

    The slice reaches the filter's support (2 × the downscale factor) beyond the box on each side,
    clipped at the image's edges, so the device computes exactly what Pillow's `resize(box=…)` does.
    """
    left, top, right, bottom = box
    fx = int((right - left) / size / reducing_gap) or 1
    fy = int((bottom - top) / size / reducing_gap) or 1
    width, height = image_size(img)
    x0, x1 = _window(left, right, size, width, fx)
    y0, y1 = _window(top, bottom, size, height, fy)
    if fx > 1 or fy > 1:
        if isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        pixels = rgbx_pixels(img.reduce((fx, fy), box=(x0, y0, x1, y1)))
    else:
        pixels = (img if isinstance(img, np.ndarray) else rgbx_pixels(img))[y0:y1, x0:x1]
    inner = ((left - x0) / fx, (top - y0) / fy, (right - x0) / fx, (bottom - y0) / fy)
    return Crop(pixels, inner, tuple(float(v) for v in box))


def rgbx_pixels(img: Image.Image) -> np.ndarray:
    """An RGB image's pixels without copying them: an H×W×4 uint8 view of Pillow's own memory (it keeps
    RGB as RGB + one unused byte) through its Arrow export (Pillow ≥ 11.2, images held in one block);
    else an H×W×3 copy. Decodes the image first (decode errors raise here)."""
    img.load()
    if img.mode == "RGB" and hasattr(img, "__arrow_c_array__"):
        try:
            flat = pa.array(img).values.to_numpy(zero_copy_only=True)
            return flat.reshape(img.height, img.width, 4)
        except (ValueError, TypeError, pa.ArrowException):
            pass  # more than one block (very large images): copy
    return np.asarray(img)


def _window(start: float, end: float, size: int, limit: int, factor: int) -> tuple[int, int]:
    """[lo, hi) of the pixels a bicubic resize of [start, end) to `size` reads (a multiple of `factor` wide)."""
    support = BICUBIC_SUPPORT * max((end - start) / size, 1.0)
    lo, hi = max(0, math.floor(start - support)), math.ceil(end + support)
    return lo, min(limit, lo + -(-(hi - lo) // factor) * factor)


def train_crop(img: Decoded, size: int, rng) -> Crop:
    """The device path's `train_transform`: the same random resized crop box (same draws from `rng`)."""
    return crop_for_device(img, size, random_resized_crop_box(*image_size(img), rng))


def eval_crop(img: Decoded, size: int) -> Crop:
    """The device path's `eval_transform`: the source box that becomes the centre crop of the resize."""
    w, h = image_size(img)
    new_w, new_h, left, top = eval_resize_geometry(w, h, size)
    sx, sy = w / new_w, h / new_h
    return crop_for_device(img, size, (left * sx, top * sy, (left + size) * sx, (top + size) * sy))


def pack(crops: Sequence[Crop]) -> PixelBatch:
    """Crops → one PixelBatch: each slice copied once, into the zero-padded RGB batch. Inside a DataLoader
    worker the batch is made in shared memory (as torch's default_collate does), so handing it to
    the main process copies nothing."""
    height = max(c.pixels.shape[0] for c in crops)
    width = max(c.pixels.shape[1] for c in crops)
    shape = (len(crops), height, width, 3)
    zeroed = torch.utils.data.get_worker_info() is not None  # fresh shared memory reads as zeros
    if zeroed:
        elem = torch.empty(0, dtype=torch.uint8)
        out = elem.new(elem._typed_storage()._new_shared(math.prod(shape), device=elem.device)).view(shape)
    else:  # every byte written once: the slice, then only its padding zeroed (no memset of the whole batch)
        out = torch.empty(shape, dtype=torch.uint8)
    view = out.numpy()
    for i, c in enumerate(crops):
        h, w = c.pixels.shape[:2]
        view[i, :h, :w] = c.pixels[..., :3]  # RGB rows: one contiguous run each (Pillow's RGBX: strided)
        if not zeroed:
            view[i, :h, w:] = 0
            view[i, h:] = 0
    sizes = torch.tensor([c.pixels.shape[:2] for c in crops], dtype=torch.int64)
    return PixelBatch(out, sizes, torch.tensor([c.box for c in crops], dtype=torch.float64))


# --- consumer side ----------------------------------------------------------------------------
def _bicubic(t: torch.Tensor) -> torch.Tensor:
    """Pillow's bicubic kernel (a = -0.5)."""
    a, t = -0.5, t.abs()
    near = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    far = (((t - 5.0) * t + 8.0) * t - 4.0) * a
    return torch.where(t < 1.0, near, torch.where(t < 2.0, far, torch.zeros_like(t)))


def resample_weights(start: torch.Tensor, end: torch.Tensor, length: torch.Tensor, padded: int, size: int,
                     taps: int) -> torch.Tensor:
    """Per-sample `[B, size, padded]` matrices of Pillow's bicubic resample of [start, end) (float64 [B])
    out of `length` (int [B]) valid pixels to `size`: output i reads the pixels x whose centre lies within
    the support of start + (i + 0.5) × scale, weights normalised to sum 1 (Pillow's precompute_coeffs).
    `taps` ≥ the widest support in pixels + 1 (computed on the host, so no device sync)."""
    scale = (end - start) / size
    stretch = scale.clamp(min=1.0)  # downscaling widens the filter (antialiasing)
    centre = start[:, None] + (torch.arange(size, device=start.device, dtype=start.dtype) + 0.5) * scale[:, None]
    first = torch.floor(centre - BICUBIC_SUPPORT * stretch[:, None] + 0.5).clamp(min=0)  # [B, size]
    index = first[..., None] + torch.arange(taps, device=start.device, dtype=start.dtype)  # [B, size, taps]
    w = _bicubic((index + 0.5 - centre[..., None]) / stretch[:, None, None])
    w = w * (index < length[:, None, None])
    w = w / w.sum(-1, keepdim=True)
    out = torch.zeros((start.shape[0], size, padded), dtype=torch.float32, device=start.device)
    return out.scatter_add_(2, index.long().clamp(max=padded - 1), w.float())


class DeviceTransform:
    """`DeviceTransform(image_size)(batch, device)` → float32 `[B, 3, S, S]`, CLIP-normalised, on `device`.

    `batch` is a `PixelBatch` (from a `device_augment=True` loader, train or eval alike: the geometry
    travels with the batch) or an already finished image tensor (default path), which is only moved.
    Copies are non-blocking (pinned batches — `pin_memory=True` — overlap with compute on CUDA).
    `dtype` is the matmuls' type: float32 (default) reproduces Pillow to a rare ±1 level; float16
    (or bfloat16) puts them on a GPU's tensor cores, at a small cost (measured on CPU over the real
    photos: mean 0.07 levels for float16, 0.42 for bfloat16, of 255); pixels and the rounded
    intermediate stay exact in float16, the weights are rounded.
    """

    def __init__(self, image_size: int = 224, dtype: torch.dtype = torch.float32) -> None:
        self.image_size, self.dtype = image_size, dtype
        self._norm: dict = {}

    def __call__(self, batch: PixelBatch | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        device = torch.device(device) if device is not None else torch.device("cpu")
        if isinstance(batch, torch.Tensor):
            return batch.to(device, non_blocking=True)
        size, dtype = self.image_size, self.dtype
        b, height, width, _ = batch.pixels.shape
        span = (batch.boxes[:, 2:] - batch.boxes[:, :2]) / size  # host side: the taps needed, no sync
        taps = int(math.ceil(2 * BICUBIC_SUPPORT * max(1.0, float(span.max())))) + 1
        pixels = batch.pixels.to(device, non_blocking=True)
        boxes = batch.boxes.to(device, non_blocking=True)
        sizes = batch.sizes.to(device, non_blocking=True)
        wx = resample_weights(boxes[:, 0], boxes[:, 2], sizes[:, 1], width, size, taps).to(dtype)
        wy = resample_weights(boxes[:, 1], boxes[:, 3], sizes[:, 0], height, size, taps).to(dtype)
        x = torch.empty((b, 3, height, width), dtype=dtype, device=device).copy_(pixels[..., :3].permute(0, 3, 1, 2))
        x = torch.bmm(x.view(b, 3 * height, width), wx.transpose(1, 2))  # horizontal pass first, as Pillow
        x = x.add_(0.5).floor_().clamp_(0, 255).view(b, 3, height, size)  # Pillow keeps uint8 between passes
        x = torch.matmul(wy.unsqueeze(1), x).float()  # [B, 3, S, S]
        scale, bias = self._normalisation(device)
        return x.add_(0.5).floor_().clamp_(0, 255).mul_(scale).add_(bias)

    def _normalisation(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._norm:
            mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
            self._norm[device] = ((1.0 / (255.0 * std)).view(1, 3, 1, 1).to(device),
                                  (-mean / std).view(1, 3, 1, 1).to(device))
        return self._norm[device]
