"""openwit's area-average kernel against the exact average written independently (tests/exact_area.py)."""
import numpy as np
import pytest
from PIL import Image

from exact_area import exact_area
from openwit.pipeline.images.area_kernel import area_average

SHAPES = [  # (source shape, target (width, height))
    ((600, 800, 3), (341, 256)),      # a web photo's scale (2.34)
    ((768, 1024, 3), (256, 192)),     # an integer scale (4): exact ties
    ((1200, 1600, 3), (341, 256)),
    ((37, 53), (20, 11)),             # grey
    ((1, 1000, 3), (256, 1)),         # one row
    ((999, 1, 3), (1, 7)),            # one column
    ((5, 7, 3), (1, 1)),              # everything into one pixel
    ((64, 48, 3), (64, 48)),          # same size: a copy
    ((40, 30, 3), (20, 45)),          # narrower but taller: each output covers part of a source row
    ((10, 10, 3), (23, 17)),          # enlarging
]


@pytest.mark.parametrize("shape,size", SHAPES)
def test_is_the_exact_average_correctly_rounded(shape, size):
    rng = np.random.default_rng(sum(shape) + size[0])
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    out = area_average(pixels, size)
    assert out.dtype == np.uint8 and out.shape == (size[1], size[0]) + shape[2:]
    # float32 sums: within a hair of round-half-up of the exact value, never a whole step off
    assert np.abs(out - exact_area(pixels, size)).max() <= 0.5 + 1e-3
    if shape[:2] == (size[1], size[0]):
        assert (out == pixels).all()


def test_extremes_stay_in_range():
    for value in (0, 255):
        pixels = np.full((301, 517, 3), value, np.uint8)
        assert (area_average(pixels, (97, 61)) == value).all()


def test_same_bytes_every_call_thread_and_layout():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    first = area_average(pixels, (341, 256)).tobytes()
    with ThreadPoolExecutor(4) as pool:  # nogil: threads run the kernel at once
        outs = list(pool.map(lambda _: area_average(pixels, (341, 256)).tobytes(), range(8)))
    assert set(outs) == {first}
    strided = np.zeros((480, 1280, 3), np.uint8)
    strided[:, ::2] = pixels  # a non-contiguous view gives the same result
    assert area_average(strided[:, ::2], (341, 256)).tobytes() == first


def test_a_real_photo_is_close_to_opencv(shared_data):
    """OpenCV's INTER_AREA computes the same average in another order: a handful of pixels round the
    other way, by one."""
    import cv2

    photo = Image.open(shared_data / "images" / "sklearn" / "china.jpg")
    pixels = np.asarray(photo.convert("RGB"))
    for size in ((341, 256), (160, 107), (200, 133)):
        ours = area_average(pixels, size).astype(int)
        theirs = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(ours - theirs).max() <= 1 and (ours != theirs).mean() < 0.05


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="uint8"):
        area_average(np.zeros((4, 4, 3), np.float32), (2, 2))
    with pytest.raises(ValueError, match="non-empty"):
        area_average(np.zeros((0, 4, 3), np.uint8), (2, 2))
    with pytest.raises(ValueError, match="≥ 1×1"):
        area_average(np.zeros((4, 4, 3), np.uint8), (0, 2))



def test_compiles_in_each_process_where_no_cache_folder_is_writable(monkeypatch):
    """A read-only install and no writable home: numba finds no cache folder and refuses cache=True
    at import; the kernel is then compiled per process instead of failing every image."""
    import importlib.util

    from numba.core import caching
    from openwit.pipeline.images import area_kernel

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    spec = importlib.util.spec_from_file_location("area_kernel_uncached", area_kernel.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert type(module._average._cache).__name__ == "NullCache"
    pixels = np.random.default_rng(5).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert (module.area_average(pixels, (17, 13)) == area_average(pixels, (17, 13))).all()


def test_missing_numba_is_a_settings_error_naming_the_way_out(monkeypatch):
    import importlib.util

    from openwit.common.errors import UserError
    from openwit.pipeline.images import ImageSettings

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a))
    with pytest.raises(UserError, match="pip install numba.*--area-kernel opencv"):
        ImageSettings().validate()
    ImageSettings(area_kernel="opencv").validate()
    ImageSettings(resample="box").validate()


@pytest.mark.parametrize("n_in,n_out", [(800, 341), (1000, 256), (9, 5), (640, 341), (1024, 256), (1024, 512)])
def test_unrolled_column_sums_are_the_exact_taps_floats(n_in, n_out):
    """The fixed 4/5-tap windows (zeros around the exact taps) give the bytes of the plain loop."""
    from openwit.pipeline.images import area_kernel as k

    # whole values, as the row sums of whole scales are: exact ties (x.5) that any other float rounds off
    row = np.random.default_rng(n_in).integers(0, 256, n_in * 3).astype(np.float32)
    first, count, weight = k._taps(n_in, n_out)
    plain = np.empty((n_out, 3), np.uint8)
    k._cols3(row, first, count, weight, plain)
    for taps in (4, 5):
        if weight.shape[1] <= taps:
            start, padded = k._window(first, count, weight, n_in, taps)
            unrolled = np.empty((n_out, 3), np.uint8)
            k._window_cols(row, start, padded, unrolled)
            assert (unrolled == plain).all(), taps


@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "AMD64"), reason="x86 assembly")
def test_no_fused_multiply_add_so_cpus_with_and_without_fma_agree(tmp_path):
    """A fused a·b+c rounds once, a·b then +c twice: if the compiler fused them, CPUs with FMA (and
    those without) would write different bytes for the same image."""
    from openwit.pipeline.images import area_kernel

    source = open(area_kernel.__file__).read().replace("njit(cache=True, nogil=True)", "njit(nogil=True)")
    namespace = {"__name__": "area_kernel_uncached"}
    exec(compile(source, str(tmp_path / "area_kernel_uncached.py"), "exec"), namespace)  # cached code has no asm
    for shape, size in (((600, 800, 3), (341, 256)), ((1200, 1600, 3), (341, 256)), ((50, 50), (20, 20))):
        namespace["area_average"](np.zeros(shape, np.uint8), size)
    for name in ("_rows", "_window_cols", "_cols3", "_cols", "_average"):
        asm = "".join(namespace[name].inspect_asm().values()).lower()
        assert not any(op in asm for op in ("vfmadd", "vfnmadd", "vfmsub", "vfnmsub")), name
