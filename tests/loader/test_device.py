"""Device-augment mode (issue 15): workers decode and pick the crop box, `DeviceTransform` resizes and
normalises whole batches on the consumer's device (here the CPU).

Real photos (../shared/data/images: skimage, sklearn, img2dataset_tests — JPEG and PNG, 123–1411 px,
RGB / L / RGBA, stored in a shard as their original files) for the pixels; CIFAR-10 shards for order,
resume, DDP splits and faults, compared with the default (Pillow) path.
"""
import itertools
import json
import socket
from datetime import timedelta
from pathlib import Path

import numpy as np
from PIL import Image
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from openwit.loader import DeviceTransform, PixelBatch, make_loader
from openwit.loader import plan
from openwit.loader.device import REDUCING_GAP
from openwit.loader.tokenizer import CaptionTokenizer
from openwit.loader.urls import shard_name
from openwit.loader.transforms import CLIP_MEAN, CLIP_STD, open_image, random_resized_crop_box
from shard_helpers import caption_of, cifar_samples, real_photo_paths, write_dataset, write_shard

SIZES = [30, 20, 7]
KW = dict(image_size=32, shuffle_buffer=16)
# Measured on the 27 photos (mean / max absolute difference in 0..255 levels, float32):
#   224 px: train 0.00006 / 1, eval 0.00024 / 1 (only ±1 roundings: the same arithmetic as Pillow);
#   64 px: train 0.21 / 10, eval 0.29 / 10 (the 660–1411 px images pass Pillow's reduce first, see
#   device.REDUCING_GAP; per image at most 1.33). Bounds below: those with margin.
BOUNDS = {224: (0.01, 1.0, 0.01), 64: (0.5, 16.0, 3.0)}  # size: (mean, max, worst image's mean) in levels


@pytest.fixture(scope="module")
def tok(shared_data):
    return CaptionTokenizer.from_clip_bpe(str(shared_data / "clip" / "bpe_simple_vocab_16e6.txt.gz"))


@pytest.fixture(scope="module")
def photos(shared_data, tmp_path_factory):
    paths = real_photo_paths(shared_data)
    assert len(paths) >= 20
    out = tmp_path_factory.mktemp("photos")
    write_shard(out, 0, [(p.read_bytes(), f"photo {i}: {p.parent.name}/{p.name}") for i, p in enumerate(paths)])
    return str(out / "00000.tar")


@pytest.fixture(scope="module")
def shards(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    write_dataset(out, shared_data, SIZES)
    return str(out / "{00000..00002}.tar")


def levels(images: torch.Tensor) -> torch.Tensor:
    """CLIP-normalised images back to 0..255 levels."""
    std, mean = torch.tensor(CLIP_STD).view(1, 3, 1, 1), torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    return (images * std + mean) * 255


def both_paths(urls, tok, transform=None, **kw):
    """(default-path batches, device-path batches finished by DeviceTransform) of one epoch each."""
    pillow = list(make_loader(urls, 9, tokenizer=tok, **kw))
    loader = make_loader(urls, 9, tokenizer=tok, device_augment=True, **kw)
    transform = transform or loader.device_transform()
    device = [(transform(x, "cpu"), t) for x, t in loader]
    return pillow, device


@pytest.mark.parametrize("size", [224, 64])
@pytest.mark.parametrize("train", [True, False])
def test_same_pixels_as_the_pillow_path_on_real_photos(photos, tok, size, train):
    pillow, device = both_paths(photos, tok, image_size=size, train=train, seed=5, shuffle_buffer=8)
    assert [t.tolist() for _, t in pillow] == [t.tolist() for _, t in device]  # same samples, same order
    assert all(x.shape == y.shape and y.dtype == torch.float32 for (x, _), (y, _) in zip(pillow, device))
    diff = torch.cat([(levels(x) - levels(y)).abs() for (x, _), (y, _) in zip(pillow, device)])
    mean, worst, per_image = BOUNDS[size]
    assert diff.shape[0] == 27 and not any(k for k in make_loader(photos, 9, tokenizer=tok).faults)
    assert diff.mean() <= mean and diff.max() <= worst + 0.01 and diff.mean((1, 2, 3)).max() <= per_image + 0.01


def test_float16_matmuls_stay_close(photos, tok):
    """dtype=float16 (half the device work): measured 0.072 / 2 levels (mean / max) at 224 px."""
    loader = make_loader(photos, 9, tokenizer=tok, image_size=224, seed=5, shuffle_buffer=8, device_augment=True)
    batch, tokens = next(iter(loader))
    exact, half = DeviceTransform(224)(batch), DeviceTransform(224, dtype=torch.float16)(batch)
    diff = (levels(exact) - levels(half)).abs()
    assert half.dtype == torch.float32 and diff.mean() <= 0.2 and diff.max() <= 3.01


def test_crop_boxes_are_the_pillow_paths(photos, tok):
    """Same seed → the device path's boxes are the ones `train_transform` draws (same RNG per sample),
    and its slice is the decoded image's pixels around them."""
    dataset = make_loader(photos, 9, tokenizer=tok, image_size=224, seed=7, device_augment=True).dataset
    seen = 0
    for s in itertools.islice(dataset.sample_stream(0), 27):  # (the stream goes on with top-up samples)
        img = open_image(s.image, 224)
        crop = dataset.decode(s)
        rng = plan.rng_for(7, "crop", 0, shard_name(s.url), s.key)
        assert crop.source_box == tuple(float(v) for v in random_resized_crop_box(img.width, img.height, rng))
        left, top, right, bottom = crop.source_box
        if (right - left) / 224 < 2 * REDUCING_GAP and (bottom - top) / 224 < 2 * REDUCING_GAP:  # no reduce
            ox, oy = int(left - crop.box[0]), int(top - crop.box[1])
            h, w = crop.pixels.shape[:2]
            assert np.array_equal(crop.pixels[..., :3], np.asarray(img.convert("RGB"))[oy: oy + h, ox: ox + w])
            assert crop.box[2] - crop.box[0] == right - left and ox >= 0 and oy >= 0
            seen += 1
    assert seen >= 20


@pytest.mark.parametrize("workers", [0, 2])
def test_order_and_mid_epoch_resume_unchanged(shards, tok, workers):
    kw = dict(tokenizer=tok, num_workers=workers, seed=3, **KW)
    rows = lambda batches: [r for _, t in batches for r in t.tolist()]  # noqa: E731
    default = list(make_loader(shards, 4, **kw))
    full = list(make_loader(shards, 4, device_augment=True, **kw))
    assert rows(full) == rows(default) and all(isinstance(x, PixelBatch) for x, _ in full)
    to_float = DeviceTransform(32)
    assert all((levels(a) - levels(to_float(x))).abs().max() <= 1.01 for (a, _), (x, _) in zip(default, full))

    first = make_loader(shards, 4, device_augment=True, **kw)
    seen = []
    for batch in first:
        seen.append(batch)
        if len(seen) == 5:
            break
    state = first.state_dict()
    resumed = make_loader(shards, 4, device_augment=True, **kw)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(seen) + len(rest) == len(full) == len(resumed)
    for (x, t), (y, u) in zip(seen + rest, full):
        assert torch.equal(t, u) and all(torch.equal(a, b) for a, b in zip(x, y))  # same pixels, boxes, sizes

    switched = make_loader(shards, 4, device_augment=True, **kw)  # a default-path checkpoint resumes this mode
    pillow_first = make_loader(shards, 4, **kw)
    for i, _ in enumerate(pillow_first):
        if i == 4:
            break
    switched.load_state_dict(pillow_first.state_dict())
    assert rows(list(switched)) == rows(full)[5 * 4:]


def test_ddp_splits_unchanged(shards, tok):
    """Each rank's batches (epoch and resampled) are the default path's, with workers too."""
    for resampled in (False, True):
        for rank in range(2):
            kw = dict(tokenizer=tok, num_workers=2, rank=rank, world_size=2, resampled=resampled, seed=1,
                      num_samples=57, **KW)
            default = [t.tolist() for _, t in make_loader(shards, 4, **kw)]
            device = [t.tolist() for _, t in make_loader(shards, 4, device_augment=True, **kw)]
            assert device == default and len(device) == 8


def test_faults_counted_the_same(shared_data, tok, tmp_path):
    good = cifar_samples(shared_data, 30)
    write_shard(tmp_path, 0, [(b"\xff\xd8\xff\xe0 not a jpeg", "broken 0")] + good[:9] + [(None, "no image")])
    write_shard(tmp_path, 1, good[10:20] + [(good[20][0][: len(good[20][0]) // 2], "cut jpeg")] + good[21:30])
    urls = str(tmp_path / "{00000..00001}.tar")
    lookup = caption_of(tok, [c for _, c in good] + ["broken 0", "cut jpeg"])
    for train in (True, False):
        runs = []
        for device_augment in (False, True):
            loader = make_loader(urls, 4, tokenizer=tok, train=train, device_augment=device_augment, **KW)
            runs.append(([lookup(r) for _, t in loader for r in t], dict(loader.faults)))
        assert runs[0] == runs[1]
        assert runs[1][1]["decode_error"] == 2 and runs[1][1]["missing_image"] == 1
        assert "broken 0" not in runs[1][0] and "cut jpeg" not in runs[1][0]


def test_pixels_are_a_view_of_the_decoded_image_or_a_copy(shared_data):
    from openwit.loader.device import crop_for_device, pack, rgbx_pixels
    paths = sorted((shared_data / "images" / "skimage").glob("*.*g"))[:6]
    imgs = [Image.open(p).convert("RGB") for p in paths]
    for img in imgs:
        px = rgbx_pixels(img)
        assert px.shape[:2] == (img.height, img.width) and px.shape[2] in (3, 4)
        assert np.array_equal(px[..., :3], np.asarray(img))
    batch = pack([crop_for_device(imgs[0], 32, (0, 0, 40, 30)), crop_for_device(imgs[1], 32, (5, 5, 60, 50))])
    assert batch.pixels.shape[-1] == 3
    for img, (h, w) in zip(batch.pixels, batch.sizes.tolist()):  # padding zeroed in the main process too
        assert not img[h:].any() and not img[:, w:].any()


def test_pixel_batches_from_workers(shards, tok):
    loader = make_loader(shards, 8, tokenizer=tok, num_workers=2, train=False, device_augment=True, **KW)
    for batch, tokens in loader:
        assert batch.pixels.dtype == torch.uint8 and batch.pixels.shape[0] == tokens.shape[0] == batch.sizes.shape[0]
        assert batch.pixels.shape[-1] == 3  # RGB, 3 bytes a pixel
        for img, (h, w) in zip(batch.pixels, batch.sizes.tolist()):
            assert not img[h:].any() and not img[:, w:].any()  # padding is zeros (shared memory from workers)
    floats = torch.rand(2, 3, 32, 32)
    assert loader.device_transform()(floats, "cpu") is floats  # the default path's batches are only moved
    assert loader.device_transform().image_size == 32


def _rank_main(rank: int, port: int, shards: str, bpe: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))
    try:
        tok, result = CaptionTokenizer.from_clip_bpe(bpe), {}
        for device_augment in (False, True):
            loader = make_loader(shards, 4, tokenizer=tok, device_augment=device_augment, **KW)
            rows = []
            for _, tokens in loader:
                rows += tokens.tolist()
                dist.all_reduce(torch.ones(1))  # a DDP step: hangs (times out) if ranks disagree
            result[str(device_augment)] = {"rows": rows, "len": len(loader)}
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_processes_same_split_in_both_modes(shards, shared_data, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bpe = str(shared_data / "clip" / "bpe_simple_vocab_16e6.txt.gz")
    mp.spawn(_rank_main, args=(port, shards, bpe, str(tmp_path)), nprocs=2, join=True)
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r in res:
        assert r["True"] == r["False"] and r["True"]["len"] == 8  # ceil(57 / (2 × 4))
    assert res[0]["True"]["rows"] != res[1]["True"]["rows"]
