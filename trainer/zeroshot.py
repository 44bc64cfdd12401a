"""Zero-shot classification: each class name is put into every template, the normalised text
embeddings are averaged per class and renormalised (CLIP's ensemble in embedding space); an image's
class is the argmax of cosine similarity. Images come from an ImageNet-style folder or from labelled
WebDataset shards, with CLIP's eval preprocessing (shorter side → size, bicubic, centre crop).
"""
from __future__ import annotations

import functools
import itertools
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from openwit.common.errors import UserError
from openwit.loader.transforms import normalize_batch
from openwit.loader.urls import expand_urls, open_url
from openwit.trainer.evaluate import Encoder, decode

log = logging.getLogger(__name__)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def image_folder(folder: str, classnames_file: str | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names and (path, label) pairs of an ImageNet-style folder (one sub-folder per class).
    Names are the folder names with `_` → space, or the lines of `classnames_file` in folder order."""
    if not os.path.isdir(folder):
        raise UserError(f"--zeroshot-folder {folder}: not a folder (expected one sub-folder per class)")
    dirs = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if len(dirs) < 2:
        raise UserError(f"--zeroshot-folder {folder}: needs at least 2 class sub-folders, found {len(dirs)}")
    names = [d.replace("_", " ") for d in dirs]
    if classnames_file:
        names = read_classnames(classnames_file)
        if len(names) != len(dirs):
            raise UserError(f"--classnames {classnames_file}: {len(names)} names for {len(dirs)} class folders")
    items = [(os.path.join(folder, d, f), label) for label, d in enumerate(dirs)
             for f in sorted(os.listdir(os.path.join(folder, d))) if f.lower().endswith(IMAGE_EXTS)]
    if not items:
        raise UserError(f"--zeroshot-folder {folder}: no images ({', '.join(IMAGE_EXTS)}) in the class folders")
    return names, items


def classifier(enc: Encoder, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """[classes, dim] unit vectors: each class's template embeddings averaged, then renormalised."""
    texts = [t.format(c) for c in classnames for t in templates]
    emb = enc.texts(texts).view(len(classnames), len(templates), -1).mean(dim=1)
    return F.normalize(emb, dim=-1)


def zeroshot(enc: Encoder, names: list[str], samples: Iterable[tuple[Callable[[], bytes], int]],
             templates: list[str], what: str, threads: int = 8) -> dict:
    """Top-1 / top-5 accuracy (fractions) over (read image bytes, label index) pairs."""
    weights = classifier(enc, names, templates)
    k = min(5, len(names))
    correct1 = correct5 = seen = failed = 0
    samples = iter(samples)
    with ThreadPoolExecutor(threads) as pool:
        while chunk := list(itertools.islice(samples, enc.batch_size)):
            arrays = [a for a, _ in pool.map(lambda it: decode(it[0](), enc.image_size), chunk)]
            good = [(a, label) for a, (_, label) in zip(arrays, chunk) if a is not None]
            failed += len(chunk) - len(good)
            if not good:
                continue
            feats = enc.images(normalize_batch([a for a, _ in good]))
            top = (feats @ weights.T).topk(k, dim=-1).indices.cpu()
            labels = torch.tensor([label for _, label in good])
            correct1 += int((top[:, 0] == labels).sum())
            correct5 += int((top == labels[:, None]).any(dim=1).sum())
            seen += len(good)
    if failed:
        log.warning("zero-shot: %d image(s) could not be decoded and were left out", failed)
    if not seen:
        raise UserError(f"{what}: no image could be decoded")
    return {"zeroshot_top1": correct1 / seen, "zeroshot_top5": correct5 / seen, "zeroshot_images": seen,
            "zeroshot_classes": len(names), "zeroshot_chance_top1": 1 / len(names),
            "zeroshot_templates": len(templates), "zeroshot_undecodable": failed}


def zeroshot_folder(enc: Encoder, folder: str, templates: list[str], classnames_file: str | None = None) -> dict:
    """Zero-shot accuracy on an ImageNet-style folder (one sub-folder per class)."""
    names, items = image_folder(folder, classnames_file)
    samples = ((functools.partial(_read_file, path), label) for path, label in items)
    return zeroshot(enc, names, samples, templates, f"--zeroshot-folder {folder}")


def read_classnames(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise UserError(f"--classnames {path}: {e.strerror}") from e
    if len(names) < 2:
        raise UserError(f"--classnames {path}: needs at least 2 class names, one a line")
    return names


def labelled_shard_samples(urls, names: list[str], faults: Counter) -> Iterator[tuple[Callable[[], bytes], int]]:
    """(image bytes, label) of labelled shards: the label is the sample's `.cls` (an index into the
    class names, as WebDataset classification sets store it) or its `.txt` equal to a class name.
    Samples without a usable label are counted as `unlabelled` and left out."""
    index = {n: i for i, n in enumerate(names)}
    for url in expand_urls(urls):
        for sample in iter_members(url, faults):
            image = next((sample[e] for e in ("jpg", "jpeg", "png", "webp") if e in sample), None)
            label = _label(sample, index, len(names))
            if image is None or label is None:
                faults["unlabelled" if image is not None else "missing_image"] += 1
                continue
            yield (lambda data=image: data), label


def _label(sample: dict, index: dict[str, int], n: int) -> int | None:
    if "cls" in sample:
        try:
            value = int(sample["cls"].decode().strip())
        except ValueError:
            return None
        return value if 0 <= value < n else None
    if "txt" in sample:
        return index.get(sample["txt"].decode("utf-8", errors="replace").strip())
    return None


def iter_members(url: str, faults: Counter) -> Iterator[dict]:
    """A shard's samples as {extension: bytes}; an unreadable shard or member is counted and skipped."""
    import webdataset as wds

    def skip(exn: Exception) -> bool:
        faults["unreadable_member"] += 1
        return True

    try:
        with open_url(url) as stream:
            members = ({**m, "__url__": url} for m in wds.tariterators.tar_file_iterator(stream, handler=skip))
            yield from wds.tariterators.group_by_keys(members, handler=skip)
    except Exception as e:  # unreachable or broken stream: count it, go on with the next shard
        faults["unreachable"] += 1
        log.warning("zero-shot shards: cannot read %s: %s", url, e)


def zeroshot_shards(enc: Encoder, urls, templates: list[str], classnames_file: str) -> dict:
    """Zero-shot accuracy on labelled shards (needs the class names: `.cls` indexes them)."""
    names, faults = read_classnames(classnames_file), Counter()
    res = zeroshot(enc, names, labelled_shard_samples(urls, names, faults), templates, f"--zeroshot-shards {urls}")
    return {**res, **({"zeroshot_faults": dict(faults)} if faults else {})}


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
