"""A sample gallery: a few dozen successes drawn deterministically from the shards' tar files.

Up to `SHARDS` committed shards evenly spread over the run, the first `PER_SHARD` samples of each
(tar members are sorted by key); each tar is read as a stream only until those are found. The page
embeds each image as a small JPEG thumbnail (data: URI), so report.html works offline as one file.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import tarfile

from openwit.common import layout

SHARDS, PER_SHARD = 8, 4
THUMB = 160  # px, longer side
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
log = logging.getLogger(__name__)


def _spread(items: list, k: int) -> list:
    if len(items) <= k:
        return list(items)
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)] if k > 1 else items[:1]


def _read_samples(tar_path: str, n: int) -> list[dict]:
    """The first n complete samples (image + caption/json) of one tar, read as a stream."""
    found: dict[str, dict] = {}
    done: list[dict] = []
    with layout.open_read(tar_path) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for member in tar:
            if not member.isfile() or "." not in member.name:
                continue
            key, ext = member.name.rsplit("/", 1)[-1].split(".", 1)
            if ext not in IMAGE_EXTS + ("txt", "json"):
                continue
            sample = found.setdefault(key, {"key": key})
            data = tar.extractfile(member).read()
            if ext in IMAGE_EXTS:
                sample["image"] = data
            else:
                sample[ext] = data
            if all(k in sample for k in ("image", "txt", "json")):
                done.append(found.pop(key))
                if len(done) == n:
                    break
    return done


def pick(out_dir: str, shards: list[int]) -> list[dict]:
    """[{shard, key, caption, query_ids, width, height, image (bytes)}], deterministic."""
    picked = []
    for shard in _spread(sorted(shards), SHARDS):
        path = layout.shard_path(out_dir, shard, layout.TAR)
        try:
            samples = _read_samples(path, PER_SHARD)
        except FileNotFoundError:
            log.info("gallery: no %s", path)
            continue
        except (OSError, tarfile.TarError, EOFError) as e:
            log.warning("gallery: skipping %s (%s)", path, e)
            continue
        for s in samples:
            try:
                meta = json.loads(s["json"].decode("utf-8"))
            except ValueError:
                meta = {}
            picked.append({"shard": shard, "key": s["key"], "caption": s["txt"].decode("utf-8", "replace"),
                           "query_ids": [int(q) for q in meta.get("query_ids") or []],
                           "width": meta.get("width"), "height": meta.get("height"), "image": s["image"]})
    return picked


def thumbnail(data: bytes) -> str | None:
    """A data: URI of a JPEG at most THUMB px on its longer side (None when it does not decode)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
