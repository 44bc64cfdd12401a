"""Images: decode, check, filter, resize and re-encode one downloaded image (pure functions).

`process_image(raw, ImageSettings)` decides an image's fate and returns an `ImageResult`
(`success`, `failed_to_resize` or `filtered`, with a reason); it never raises for bad bytes.
Modules: resizer (the decision and img2dataset's resize modes), area (the exact area average that
shrinks, on pixels libjpeg-turbo decodes straight into an array; area_kernel computes it), ops (geometry, orientation, RGB
conversion, EXIF, encoding), pool + worker (`ImagePool`: process_image in worker processes, one
per core, same results). The pool's names are imported on first use: a worker process imports this
package too, and needs neither asyncio nor subprocess (~45 ms of each worker's start).
"""
from openwit.pipeline.images.ops import OUTPUT_FORMATS, RESIZE_MODES
from openwit.pipeline.images.resizer import (
    IMPLIED_SETTINGS,
    REASONS,
    ImageResult,
    ImageSettings,
    process_image,
    raise_pillow_limit,
    with_implied,
)

__all__ = ["IMPLIED_SETTINGS", "OUTPUT_FORMATS", "REASONS", "RESIZE_MODES", "ImagePool", "ImageResult",
           "ImageSettings", "ImageWorkerDied", "process_image", "raise_pillow_limit", "with_implied"]


def __getattr__(name: str):
    if name not in ("ImagePool", "ImageWorkerDied"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from openwit.pipeline.images import pool

    return getattr(pool, name)
