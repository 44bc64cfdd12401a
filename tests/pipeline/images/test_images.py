"""process_image on real photos and hand-made hard cases (CMYK, 16-bit, palette alpha, bombs, EXIF)."""
import dataclasses
import hashlib
import io
import json
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from exact_area import exact_area
from openwit.common.errors import UserError
from openwit.pipeline.images import ImageSettings, process_image

MODES = ["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"]


def _expected_size(w, h, mode, size, only_if_bigger):
    """img2dataset's geometry, written out independently of the code under test."""
    if mode == "no":
        return w, h
    side = min(w, h) if mode in ("keep_ratio", "center_crop") else max(w, h)
    if only_if_bigger and side <= size:
        return w, h
    if mode in ("center_crop", "border"):
        return size, size
    return round(w * size / side), round(h * size / side)


def _encode(im, fmt="JPEG", **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _decode(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _exact_area(im: Image.Image, size) -> np.ndarray:
    return exact_area(np.asarray(im.convert("RGB")), size)


@pytest.fixture(scope="module")
def real_images(shared_data):
    base = shared_data / "images"
    paths = sorted((base / "img2dataset_tests").glob("*.*")) + [
        base / "skimage" / n for n in ("horse.png", "coffee.png", "text.png", "rocket.jpg")
    ]
    return {p.name: p.read_bytes() for p in paths}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size,only_if_bigger", [(256, False), (300, True), (160, False)])
def test_resize_modes_match_spec(real_images, mode, size, only_if_bigger):
    settings = ImageSettings(image_size=size, resize_mode=mode, resize_only_if_bigger=only_if_bigger)
    for name, raw in real_images.items():
        r = process_image(raw, settings)
        assert r.status == "success", (name, r.error)
        ow, oh = Image.open(io.BytesIO(raw)).size
        assert (r.original_width, r.original_height) == (ow, oh)
        assert (r.width, r.height) == _expected_size(ow, oh, mode, size, only_if_bigger), name
        out = _decode(r.data)
        assert out.format == "JPEG" and out.mode == "RGB" and out.size == (r.width, r.height)
        assert r.sha256 == hashlib.sha256(raw).hexdigest() and r.ext == "jpg"


def test_border_pads_white_and_center_crop_keeps_middle(real_images):
    raw = real_images["123_456.jpg"]  # 123 wide, 456 high
    r = process_image(raw, ImageSettings(image_size=256, resize_mode="border", output_format="png"))
    arr = np.asarray(_decode(r.data))
    inner_w = round(123 * 256 / 456)
    left = (256 - inner_w) // 2
    assert arr[:, : left - 1].min() == 255 and arr[:, 256 - left + 1 :].min() == 255
    assert arr[:, left + 2 : left + inner_w - 2].mean() < 235
    # center_crop of the keep_ratio result equals its middle square
    full = _decode(process_image(raw, ImageSettings(256, "keep_ratio", output_format="png")).data)
    crop = _decode(process_image(raw, ImageSettings(256, "center_crop", output_format="png")).data)
    top = (full.height - 256) // 2
    assert np.array_equal(np.asarray(full)[top : top + 256], np.asarray(crop))


def test_output_formats_decode_back_and_are_deterministic(real_images):
    raw = real_images["original.png"]
    for fmt, pil in (("jpg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")):
        s = ImageSettings(image_size=128, resize_mode="keep_ratio", output_format=fmt, quality=80)
        a, b = process_image(raw, s), process_image(raw, s)
        assert a.data == b.data and a.ext == fmt
        out = _decode(a.data)
        assert out.format == pil and out.size == (128, round(535 * 128 / 389))


def test_big_jpeg_shrink_uses_draft_and_stays_faithful(shared_data):
    src = Image.open(shared_data / "images" / "sklearn" / "china.jpg").convert("RGB")
    big = src.resize((3200, 2135), Image.Resampling.BICUBIC)
    raw = _encode(big, quality=90)
    s = ImageSettings(image_size=256, resize_mode="keep_ratio", output_format="png", decode_margin=2)
    r = process_image(raw, s)
    assert r.status == "success" and r.draft_scale == 4  # 2135 // (2 * 256) = 4: decoded at 1/4
    assert (r.width, r.height) == (round(3200 * 256 / 2135), 256)
    reference = _exact_area(_decode(raw), (r.width, r.height))
    diff = np.abs(np.asarray(_decode(r.data), float) - reference).mean()
    assert diff < 2, diff  # mean abs over 0..255 (Pillow BOX, resample="box": 2.7)
    # no draft when not shrinking (mode "no" or upscaling)
    assert process_image(raw, ImageSettings(resize_mode="no")).draft_scale == 1


def test_decode_margin_chooses_the_draft_scale(shared_data):
    src = Image.open(shared_data / "images" / "sklearn" / "china.jpg").convert("RGB")
    raw = _encode(src.resize((3200, 2135), Image.Resampling.BICUBIC), quality=90)
    reference = _exact_area(_decode(raw), (384, 256))
    errors = {}
    for margin, scale in ((0, 1), (1, 8), (2, 4), (3, 2)):  # 2135 // (M * 256)
        for resample in ("area", "box"):
            r = process_image(raw, ImageSettings(image_size=256, resize_mode="keep_ratio", output_format="png",
                                                 decode_margin=margin, resample=resample))
            assert r.status == "success" and r.draft_scale == scale and (r.width, r.height) == (384, 256)
            errors[margin, resample] = np.abs(np.asarray(_decode(r.data), float) - reference)
    assert errors[0, "area"].max() <= 1  # every pixel decoded: the exact average, up to rounding
    mean = {k: e.mean() for k, e in errors.items()}
    assert mean[0, "area"] < mean[3, "area"] < mean[2, "area"] < mean[1, "area"] < 4  # larger margin: closer
    for margin in (0, 1, 2, 3):  # Pillow's BOX counts source pixels whole: farther from the exact average
        assert mean[margin, "area"] < mean[margin, "box"], margin


def test_area_shrink_is_the_exact_average_on_real_photos(real_images):
    """Whatever decodes the pixels (libjpeg-turbo for plain JPEGs, Pillow for PNG and the rest), the
    shrink is the exact area average up to rounding; Pillow's BOX (resample="box") is not."""
    for name, raw in real_images.items():
        src = _decode(raw)
        target = _expected_size(*src.size, "keep_ratio_largest", 100, False)
        if target[0] >= src.width:
            continue
        outs = {(rs, k): process_image(raw, ImageSettings(image_size=100, resize_mode="keep_ratio_largest",
                                                          output_format="png", decode_margin=0, resample=rs,
                                                          area_kernel=k))
                for rs, k in (("area", "openwit"), ("area", "opencv"), ("box", "openwit"))}
        reference = _exact_area(src, target)
        diff = {rs: np.abs(np.asarray(_decode(r.data).convert("RGB"), float) - reference) for rs, r in outs.items()}
        assert diff["area", "openwit"].max() <= 0.5 + 1e-3, name  # correctly rounded
        assert diff["area", "opencv"].max() <= 1, name
        assert diff["box", "openwit"].mean() > diff["area", "openwit"].mean() or src.width % target[0] == 0, name


def test_opencv_area_kernel_keeps_the_bytes_of_earlier_builds(shared_data):
    """area_kernel="opencv" is the area average openwit computed before its own kernel (OpenCV's
    INTER_AREA on the full decode here), so a folder built then can be finished with the same bytes."""
    import cv2

    raw = (shared_data / "images" / "sklearn" / "china.jpg").read_bytes()
    pixels = np.asarray(_decode(raw).convert("RGB"))
    for size in (320, 160):  # 640×427 → 320×214 and 160×107: OpenCV rounds some pixels the other way
        target = _expected_size(640, 427, "keep_ratio_largest", size, False)
        before = cv2.resize(pixels, target, interpolation=cv2.INTER_AREA)
        s = ImageSettings(image_size=size, resize_mode="keep_ratio_largest", output_format="png", decode_margin=0)
        old = process_image(raw, dataclasses.replace(s, area_kernel="opencv"))
        new = process_image(raw, s)
        assert (np.asarray(_decode(old.data).convert("RGB")) == before).all()
        assert old.data != new.data


def test_box_resample_keeps_the_bytes_of_earlier_builds(shared_data):
    """resample="box" is the pipeline openwit had before the setting: Pillow `draft` to ≥ 2× the
    target, RGB, BOX, JPEG q95, so a folder built then can be finished with the same bytes."""
    raw = (shared_data / "images" / "sklearn" / "china.jpg").read_bytes()
    im = Image.open(io.BytesIO(raw))
    target = _expected_size(*im.size, "keep_ratio", 128, False)
    im.draft("RGB", (2 * target[0], 2 * target[1]))
    before = _encode(im.convert("RGB").resize(target, Image.Resampling.BOX), quality=95, optimize=False)
    r = process_image(raw, ImageSettings(image_size=128, resize_mode="keep_ratio", resample="box", decode_margin=2))
    assert r.data == before
    assert process_image(raw, ImageSettings(image_size=128, resize_mode="keep_ratio")).data != before


def _oriented_jpeg(w, h, orientation):
    """Stored image: left half red, right half blue, with an EXIF orientation tag."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[:, w // 2 :] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "OpenWit Camera"
    return _encode(Image.fromarray(arr), quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("w,h", [(60, 40), (1200, 800)])
def test_exif_orientation_applied(w, h):
    raw = _oriented_jpeg(w, h, 6)  # displayed = stored rotated 90° clockwise: left → top
    r = process_image(raw, ImageSettings(image_size=64, resize_mode="keep_ratio_largest", output_format="png"))
    assert r.status == "success"
    assert (r.original_width, r.original_height) == (h, w)
    assert (r.width, r.height) == (round(h * 64 / w), 64)
    arr = np.asarray(_decode(r.data)).astype(int)
    assert arr[5, arr.shape[1] // 2, 0] > 200 and arr[5, arr.shape[1] // 2, 2] < 60  # top is red
    assert arr[-5, arr.shape[1] // 2, 2] > 200  # bottom is blue
    tags = json.loads(r.exif)
    assert tags["Image Orientation"] == "6" and tags["Image Make"] == "OpenWit Camera"


def _png(width, height, color_type, bit_depth, raw_rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw_rows)) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [12_000, 100_000])  # above our limit; above Pillow's own 2x limit
def test_decompression_bomb_png_rejected_without_decoding(side):
    raw = _png(side, side, 0, 8, b"\x00" * 64)  # a few hundred bytes declaring side² pixels
    assert len(raw) < 1000
    t = time.perf_counter()
    r = process_image(raw, ImageSettings())
    assert time.perf_counter() - t < 1.0
    assert (r.status, r.reason) == ("failed_to_resize", "decompression_bomb")
    assert r.error.startswith("decompression_bomb: ") and r.data is None


def test_bomb_guard_follows_settings_not_pillow_global(real_images):
    raw = real_images["524_316.jpg"]
    before = Image.MAX_IMAGE_PIXELS
    r = process_image(raw, ImageSettings(max_image_pixels=524 * 316 - 1))
    assert (r.status, r.reason) == ("failed_to_resize", "decompression_bomb")
    assert process_image(raw, ImageSettings(max_image_pixels=524 * 316)).status == "success"
    assert Image.MAX_IMAGE_PIXELS == before  # untouched by per-call settings


def test_truncated_and_garbage_bytes_fail_cleanly(real_images, shared_data):
    jpeg = (shared_data / "images" / "sklearn" / "china.jpg").read_bytes()
    r = process_image(jpeg[: len(jpeg) // 2], ImageSettings())
    assert (r.status, r.reason) == ("failed_to_resize", "truncated_image"), r.error
    png = real_images["original.png"]
    r = process_image(png[: len(png) // 2], ImageSettings())
    assert r.status == "failed_to_resize" and r.reason in ("truncated_image", "decode_error")
    for raw in (b"", b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 50):
        r = process_image(raw, ImageSettings())
        assert (r.status, r.reason) == ("failed_to_resize", "decode_error")
        assert r.sha256 == hashlib.sha256(raw).hexdigest()


def test_filters_use_original_size(real_images):
    raw = real_images["456_123.jpg"]  # ratio 3.7, area 56088
    cases = [
        (ImageSettings(min_image_size=124), "image_too_small"),
        (ImageSettings(max_aspect_ratio=3.5), "aspect_ratio_too_large"),
        (ImageSettings(max_image_area=456 * 123 - 1), "image_area_too_large"),
    ]
    for settings, reason in cases:
        r = process_image(raw, settings)
        assert (r.status, r.reason) == ("filtered", reason)
        assert r.error.startswith(reason + ": ")
        assert (r.original_width, r.original_height) == (456, 123) and r.data is None
    ok = ImageSettings(min_image_size=123, max_aspect_ratio=3.8, max_image_area=456 * 123)
    assert process_image(raw, ok).status == "success"


def test_cmyk_jpeg(shared_data):
    src = Image.open(shared_data / "images" / "sklearn" / "flower.jpg").convert("RGB")
    raw = _encode(src.convert("CMYK"), quality=95)
    assert Image.open(io.BytesIO(raw)).mode == "CMYK"
    r = process_image(raw, ImageSettings(resize_mode="no", output_format="png"))
    out = _decode(r.data)
    assert r.status == "success" and out.mode == "RGB"
    assert np.abs(np.asarray(out, float) - np.asarray(src, float)).mean() < 8


def test_16bit_grey_png_scaled_to_8bit():
    arr = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 32).astype(np.uint16)
    raw = _encode(Image.fromarray(arr), "PNG")
    assert Image.open(io.BytesIO(raw)).mode.startswith("I")
    r = process_image(raw, ImageSettings(resize_mode="no", output_format="png"))
    out = np.asarray(_decode(r.data))
    assert r.status == "success" and out.shape == (32, 64, 3)
    assert np.array_equal(out[..., 0], (arr >> 8).astype(np.uint8))


@pytest.mark.parametrize("mode", ["P", "LA", "RGBA"])
def test_transparency_composited_on_white(mode):
    base = Image.new("RGB", (20, 10), (200, 0, 0))
    if mode == "P":
        im = Image.new("P", (20, 10), 1)
        im.putpalette([0, 255, 0, 200, 0, 0])  # index 0: green, marked transparent
        im.paste(0, (0, 0, 10, 10))
        raw = _encode(im, "PNG", transparency=0)
    else:
        im = base.convert(mode)
        alpha = Image.new("L", (20, 10), 255)
        alpha.paste(0, (0, 0, 10, 10))
        im.putalpha(alpha)
        raw = _encode(im, "PNG")
    r = process_image(raw, ImageSettings(resize_mode="no", output_format="png"))
    out = np.asarray(_decode(r.data))
    assert r.status == "success"
    assert (out[:, :9] == 255).all()  # transparent half → white
    assert out[:, 11:].mean() < 150  # opaque half keeps its colour


def test_settings_validation_and_fingerprint():
    for bad in (
        dict(image_size=0), dict(resize_mode="stretch"), dict(output_format="gif"), dict(quality=0),
        dict(min_image_size=-1), dict(max_aspect_ratio=0.5), dict(max_image_pixels=0),
        dict(max_image_area=float("nan")), dict(decode_margin=-1), dict(decode_margin=9),
        dict(decode_margin=1.5), dict(resample="bicubic"), dict(area_kernel="pillow"),
    ):
        with pytest.raises(UserError, match="--"):
            ImageSettings(**bad).validate()
        with pytest.raises(UserError):
            process_image(b"x", ImageSettings(**bad))
    fp = ImageSettings().fingerprint_fields()
    assert json.loads(json.dumps(fp, allow_nan=False))["max_aspect_ratio"] == "inf"
    assert fp["resize_mode"] == "border" and fp["image_size"] == 256
    # decode_margin 2 is what every shard was built with before the setting existed: left out, so
    # their fingerprints still match; any other margin is part of the fingerprint
    # (and area_kernel, which means nothing with box)
    assert ImageSettings(decode_margin=2, resample="box").fingerprint_fields() == {
        k: v for k, v in fp.items() if k not in ("decode_margin", "resample", "area_kernel")}
    assert ImageSettings(decode_margin=1).fingerprint_fields()["decode_margin"] == 1
    assert fp["resample"] == "area" and fp["area_kernel"] == "openwit"
    # OpenCV's area average, the default before the setting existed: left out, as folders built then
    assert "area_kernel" not in ImageSettings(area_kernel="opencv").fingerprint_fields()
    assert ImageSettings(resample="box", area_kernel="opencv").fingerprint_fields() == \
        ImageSettings(resample="box").fingerprint_fields()


def test_threads_give_same_bytes_as_serial(real_images):
    from concurrent.futures import ThreadPoolExecutor

    settings = ImageSettings(image_size=96, resize_mode="center_crop", output_format="webp")
    raws = list(real_images.values()) * 3
    serial = [process_image(r, settings).data for r in raws]
    with ThreadPoolExecutor(4) as pool:
        threaded = [r.data for r in pool.map(lambda r: process_image(r, settings), raws)]
    assert threaded == serial


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(shared_data, orientation):
    from PIL import ImageOps

    src = Image.open(shared_data / "images" / "img2dataset_tests" / "123_456.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    raw = _encode(src, quality=95, exif=exif.tobytes())
    r = process_image(raw, ImageSettings(resize_mode="no", output_format="png"))
    expected = ImageOps.exif_transpose(_decode(raw)).convert("RGB")
    assert np.array_equal(np.asarray(_decode(r.data)), np.asarray(expected))


def test_raise_pillow_limit_only_lifts(monkeypatch):
    from openwit.pipeline.images import raise_pillow_limit

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)
    raise_pillow_limit(ImageSettings(max_image_pixels=1000))
    assert Image.MAX_IMAGE_PIXELS == 89_478_485
    raise_pillow_limit(ImageSettings(max_image_pixels=400_000_000))
    assert Image.MAX_IMAGE_PIXELS == 400_000_000
    raw = _png(18_000, 18_000, 0, 8, b"\x00" * 64)  # 324M: Pillow would refuse it at open otherwise
    r = process_image(raw, ImageSettings(max_image_pixels=300_000_000))
    assert (r.reason, r.error.split(": ")[1].split(" ")[0]) == ("decompression_bomb", "18000x18000")
