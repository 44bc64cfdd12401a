"""Evaluation: zero-shot classification, image↔text retrieval, and per-sample CLIP scores.

- Zero-shot: each class name is put into every template, the normalised text embeddings are
  averaged per class and renormalised (CLIP's ensemble in embedding space); an image's class is
  the argmax of cosine similarity. Images get CLIP's eval preprocessing (shorter side → size,
  bicubic, centre crop).
- Retrieval: every sample of the shards exactly once; image i's true text is caption i.
- Scores: image·text cosine per sample (the input of a DataComp-style CLIP-score filter).
"""
from __future__ import annotations

import functools
import itertools
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from openwit.common.errors import UserError
from openwit.loader.samples import FaultLog, iter_shard
from openwit.loader.tokenizer import CaptionTokenizer
from openwit.loader.transforms import ImageTooLarge, eval_transform, normalize_batch, open_image
from openwit.loader.urls import expand_urls, open_url, sidecar
from openwit.trainer.loss import clip_loss
from openwit.trainer.step import autocast_context

log = logging.getLogger(__name__)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class Encoder:
    """A model, its tokenizer and where/how to run it."""

    model: torch.nn.Module
    tokenizer: CaptionTokenizer
    device: torch.device
    precision: str = "fp32"
    batch_size: int = 256

    @property
    def image_size(self) -> int:
        return self.model.config.vision.image_size

    @torch.no_grad()
    def images(self, batch: torch.Tensor) -> torch.Tensor:
        with autocast_context(self.precision, self.device):
            x = self.model.encode_image(batch.to(self.device, non_blocking=True))
        return F.normalize(x.float(), dim=-1)

    @torch.no_grad()
    def texts(self, texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), self.batch_size):
            tokens = torch.from_numpy(self.tokenizer(texts[i: i + self.batch_size])).to(self.device)
            with autocast_context(self.precision, self.device):
                out.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1))
        return torch.cat(out)


def _decode(data: bytes, size: int) -> tuple[np.ndarray | None, str | None]:
    """(CLIP's eval preprocessing, None) or (None, reason): `decompression_bomb` over the loader's
    pixel limit, `decode_error` for anything Pillow cannot read. The caller counts and skips it."""
    try:
        return eval_transform(open_image(data, size, draft=False), size), None
    except ImageTooLarge:
        return None, "decompression_bomb"
    except Exception:  # Pillow raises many types on corrupt data
        return None, "decode_error"


# --- zero-shot ---------------------------------------------------------------------------------

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
            arrays = [a for a, _ in pool.map(lambda it: _decode(it[0](), enc.image_size), chunk)]
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


# --- shards: every sample once -----------------------------------------------------------------

@dataclass
class EvalBatch:
    keys: list[str]
    shards: list[str]
    captions: list[str]
    images: torch.Tensor


def eval_batches(urls: str | list[str], image_size: int, batch_size: int, faults: Counter,
                 threads: int = 8) -> Iterator[EvalBatch]:
    """Every readable sample of the shards once, in stored order; undecodable ones counted, left out."""
    log_faults = FaultLog()
    samples = (s for url in expand_urls(urls) for s in iter_shard(url, log_faults))
    with ThreadPoolExecutor(threads) as pool:
        while True:
            raw = [s for _, s in zip(range(batch_size), samples)]
            if not raw:
                break
            decoded = list(pool.map(lambda s: _decode(s.image, image_size), raw))
            good = [(s, a) for s, (a, _) in zip(raw, decoded) if a is not None]
            faults.update(reason for _, reason in decoded if reason)
            faults.update(log_faults.take())
            if good:
                yield EvalBatch([s.key for s, _ in good], [s.url for s, _ in good],
                                [s.caption for s, _ in good], normalize_batch([a for _, a in good]))
    faults.update(log_faults.take())


def encode_shards(enc: Encoder, urls, faults: Counter) -> tuple[torch.Tensor, torch.Tensor, list, list]:
    """(image features, text features, keys, shard urls) of every sample."""
    imgs, txts, keys, shards = [], [], [], []
    for b in eval_batches(urls, enc.image_size, enc.batch_size, faults):
        imgs.append(enc.images(b.images).cpu())
        txts.append(enc.texts(b.captions).cpu())
        keys += b.keys
        shards += b.shards
    if not keys:
        raise UserError(f"no readable samples in {urls}")
    return torch.cat(imgs), torch.cat(txts), keys, shards


def recall_at(similarity: torch.Tensor, ks=(1, 5, 10)) -> dict[int, float]:
    """Row i's true column is i: the fraction of rows whose true column ranks in the top k."""
    true = similarity.diagonal()[:, None]
    rank = (similarity > true).sum(dim=1)  # columns scoring strictly higher than the true one
    return {k: float((rank < k).float().mean()) for k in ks}


def retrieval(enc: Encoder, urls) -> dict:
    """Image→text and text→image recall@1/5/10 over the shards, plus the mean contrastive loss of
    batches of the encoder's batch size (the validation loss)."""
    faults: Counter = Counter()
    img, txt, keys, _ = encode_shards(enc, urls, faults)
    sim = img @ txt.T
    out = {f"image_to_text_R@{k}": v for k, v in recall_at(sim).items()}
    out.update({f"text_to_image_R@{k}": v for k, v in recall_at(sim.T).items()})
    scale = enc.model.logit_scale.exp().detach().float().cpu()
    losses = [float(clip_loss(img[i: i + enc.batch_size], txt[i: i + enc.batch_size], scale))
              for i in range(0, len(keys), enc.batch_size) if len(keys) - i > 1]
    out["val_loss"] = float(np.mean(losses)) if losses else float("nan")
    out["retrieval_samples"] = len(keys)
    if faults:
        out["retrieval_faults"] = dict(faults)
    return out


def _uids(shard: str) -> dict[str, str]:
    """key → uid from the shard's Parquet sidecar (empty when there is none)."""
    side = sidecar(shard, ".parquet")
    if side is None:
        return {}
    try:
        import pyarrow.parquet as pq

        with open_url(side) as f:
            table = pq.read_table(f, columns=["key", "uid"])
    except Exception:  # no sidecar, or not openwit's columns: uids stay empty
        return {}
    return dict(zip(table.column("key").to_pylist(), table.column("uid").to_pylist()))


def score(enc: Encoder, urls, out_path: str) -> dict:
    """Write `key, uid, shard, clip_score` (image·text cosine) per sample to a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from openwit.trainer.checkpoint import write_atomic

    faults: Counter = Counter()
    img, txt, keys, shards = encode_shards(enc, urls, faults)
    scores = (img * txt).sum(dim=1).numpy()
    uid_maps: dict[str, dict] = {}
    uids = [uid_maps.setdefault(s, _uids(s)).get(k) for k, s in zip(keys, shards)]
    table = pa.table({"key": keys, "uid": pa.array(uids, pa.string()), "shard": shards,
                      "clip_score": pa.array(scores, pa.float32())})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(out_path, sink.getvalue().to_pybytes())
    return {"scored": len(keys), "score_out": out_path, "clip_score_mean": float(scores.mean()),
            "clip_score_p10": float(np.percentile(scores, 10)), "clip_score_p90": float(np.percentile(scores, 90)),
            **({"score_faults": dict(faults)} if faults else {})}
