"""images/ops.py directly: geometry (img2dataset's resize modes), orientation, colour modes, EXIF, encoding."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from openwit.pipeline.images import OUTPUT_FORMATS, RESIZE_MODES
from openwit.pipeline.images import ops


@pytest.mark.parametrize("mode, size, only_bigger, expected", [
    ("no", (640, 480), False, (None, None)),
    ("keep_ratio", (640, 480), False, ((341, 256), None)),          # smaller side → 256
    ("center_crop", (640, 480), False, ((341, 256), "crop")),
    ("keep_ratio_largest", (640, 480), False, ((256, 192), None)),  # larger side → 256
    ("border", (480, 640), False, ((192, 256), "pad")),
    ("border", (300, 300), False, ((256, 256), "pad")),
    ("keep_ratio", (100, 80), False, ((320, 256), None)),           # upscaled
    ("keep_ratio", (100, 80), True, (None, None)),                  # only if bigger: untouched
    ("border", (200, 256), True, (None, None)),                     # governing side not larger
    ("border", (2000, 1), False, ((256, 1), "pad")),                # never below 1 px
])
def test_plan_resize(mode, size, only_bigger, expected):
    assert ops.plan_resize(*size, mode, 256, only_bigger) == expected


def test_modes_and_formats_are_the_flags():
    assert RESIZE_MODES == ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")
    assert set(OUTPUT_FORMATS) == {"jpg", "webp", "png"}


def test_orientation():
    im = Image.new("RGB", (4, 2))
    im.putpixel((0, 0), (255, 0, 0))
    assert ops.oriented_size((4, 2), 6) == (2, 4) and ops.oriented_size((4, 2), 3) == (4, 2)
    rotated = ops.apply_orientation(im, 6)  # EXIF 6: rotate 90° clockwise to display
    assert rotated.size == (2, 4) and rotated.getpixel((1, 0)) == (255, 0, 0)
    assert ops.apply_orientation(im, 1) is im and ops.apply_orientation(im, 0) is im


def test_center_crop_and_pad_square():
    im = Image.new("RGB", (10, 6), (0, 0, 255))
    crop = ops.center_crop(im, 6)
    assert crop.size == (6, 6)
    assert ops.center_crop(im, 20).size == (10, 6)  # never grows
    padded = ops.pad_square(Image.new("L", (4, 2), 0), 4)
    assert padded.size == (4, 4) and padded.getpixel((0, 0)) == 255 and padded.getpixel((0, 1)) == 0
    square = Image.new("RGB", (4, 4))
    assert ops.pad_square(square, 4) is square
    assert ops.pad_square(Image.new("RGB", (2, 4), (0, 0, 0)), 4).getpixel((0, 0)) == (255, 255, 255)


def test_to_rgb_or_l():
    assert ops.to_rgb_or_l(Image.new("L", (2, 2), 7)).mode == "L"
    assert ops.to_rgb_or_l(Image.new("1", (2, 2), 1)).mode == "L"
    sixteen = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))
    assert ops.to_rgb_or_l(sixteen).getpixel((0, 0)) == 255  # 16-bit → 8-bit
    floats = Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32))
    assert ops.to_rgb_or_l(floats).getpixel((0, 0)) == 128  # [0, 1] floats scaled
    clear = Image.new("RGBA", (2, 2), (255, 0, 0, 0))
    assert ops.to_rgb_or_l(clear).getpixel((0, 0)) == (255, 255, 255)  # transparent → white
    assert ops.to_rgb_or_l(Image.new("CMYK", (2, 2))).mode == "RGB"


def test_exif_json_keeps_readable_tags_only():
    exif = Image.Exif()
    exif[0x010F] = "Canon"                    # Make
    exif[0x0110] = b"\x01\x02binary"          # Model as a binary blob: dropped
    exif[0x011A] = 72.0                       # XResolution
    out = json.loads(ops.exif_json(exif))
    assert out == {"Image Make": "Canon", "Image XResolution": "72.0"}
    assert ops.exif_json(Image.Exif()) is None


@pytest.mark.parametrize("fmt", ["jpg", "webp", "png"])
def test_encode_is_deterministic_and_in_the_format(fmt):
    im = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    a, b = ops.encode(im, fmt, 90), ops.encode(im, fmt, 90)
    assert a == b
    assert Image.open(io.BytesIO(a)).format == OUTPUT_FORMATS[fmt]
