"""The device path's JPEG decoder (common/jpeg.py, simplejpeg): Pillow's pixels, draft scales, refusals
and errors, on the real photos of ../shared/data/images re-encoded in the variants a crawl holds."""
import io

import numpy as np
from PIL import Image
import pytest

from openwit.common import jpeg
from openwit.loader import device
from openwit.loader.transforms import ImageTooLarge, open_image
from shard_helpers import real_photo_paths

pytestmark = pytest.mark.skipif(jpeg.simplejpeg is None, reason="simplejpeg not installed")


@pytest.fixture(scope="module")
def photos(shared_data):
    return [Image.open(p).convert("RGB") for p in real_photo_paths(shared_data)]


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


VARIANTS = {  # what web JPEGs look like: 4:2:0 (Pillow's default), 4:4:4, 4:2:2, progressive, grey
    "420": dict(quality=90),
    "444": dict(quality=95, subsampling=0),
    "422": dict(quality=80, subsampling=1),
    "progressive": dict(quality=85, progressive=True),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS) + ["grey"])
@pytest.mark.parametrize("size", [224, 64, 20])
def test_same_pixels_as_pillow_at_every_draft_scale(photos, variant, size):
    scales = set()
    for img in photos:
        data = _jpeg(img.convert("L"), quality=90) if variant == "grey" else _jpeg(img, **VARIANTS[variant])
        dims = jpeg.jpeg_size(data)
        assert dims == img.size
        scale = jpeg.draft_scale(*dims, size)
        scales.add(scale)
        got = device.decode(data, size)
        assert isinstance(got, np.ndarray), "a plain JPEG is decoded by libjpeg-turbo directly"
        want = np.asarray(open_image(data, size))
        assert got.shape[:2] == want.shape[:2]
        assert np.array_equal(got[..., :3], want), (variant, size, img.size)
    assert scales >= {224: {1, 2}, 64: {1, 2, 4, 8}, 20: {4, 8}}[size]  # the photos (123–1411 px): every scale


def test_draft_scale_is_pillows(photos):
    for w, h in [(1000, 700), (447, 1000), (224, 224), (10, 5000), (4000, 3000), (100, 100)]:
        data = _jpeg(photos[0].resize((w, h)))
        for size in (16, 64, 224, 500):
            img = Image.open(io.BytesIO(data))
            img.draft("RGB", (size, size))
            assert ((w + jpeg.draft_scale(w, h, size) - 1) // jpeg.draft_scale(w, h, size)) == img.size[0]


def test_what_it_leaves_to_pillow(photos, tmp_path):
    img = photos[0]
    png = io.BytesIO()
    img.save(png, "PNG")
    cmyk = _jpeg(img.convert("CMYK"))
    assert jpeg.jpeg_size(png.getvalue()) is None
    assert jpeg.jpeg_size(cmyk) is None  # Pillow converts CMYK/YCCK its own way
    assert isinstance(device.decode(cmyk, 64), Image.Image)
    assert jpeg.jpeg_size(b"\xff\xd8\xff garbage") is None
    assert device.decode(cmyk, 64).size == img.size


def test_damaged_jpegs_get_pillows_verdict(photos):
    data = _jpeg(photos[1], quality=90)
    for cut in (len(data) // 3, len(data) - 50):
        truncated = data[:cut]
        assert jpeg.decode_rgb(truncated, jpeg.jpeg_size(truncated)) is None  # libjpeg warns: not ours to decide
        with pytest.raises(OSError):
            np.asarray(open_image(truncated, 64))
        with pytest.raises(OSError):
            got = device.decode(truncated, 64)
            np.asarray(got)  # Pillow decodes lazily: the error comes when the pixels are read


def test_decompression_bomb_refused_from_the_header(photos):
    data = _jpeg(photos[0].resize((3000, 2000)), quality=50)
    with pytest.raises(ImageTooLarge, match="3000x2000 = 6000000 pixels > 5000000"):
        device.decode(data, 224, max_pixels=5_000_000)
    with pytest.raises(ImageTooLarge, match="3000x2000 = 6000000 pixels > 5000000"):
        open_image(data, 224, max_pixels=5_000_000)


def test_multi_picture_files_decode_as_pillow_does(photos):
    """Pillow opens a JPEG with an MPF marker as MPO and does not `draft` it: neither does the device path."""
    first, second = photos[0].resize((600, 400)), photos[1].resize((600, 400))
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second], quality=90)
    mpo = buf.getvalue()
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    for size in (224, 64):
        got, want = device.decode(mpo, size), open_image(mpo, size)
        assert image_of(got).shape[:2] == (400, 600)  # not drafted, as Pillow
        assert np.array_equal(image_of(got)[..., :3], np.asarray(want))


def image_of(decoded) -> np.ndarray:
    return decoded if isinstance(decoded, np.ndarray) else np.asarray(decoded)
