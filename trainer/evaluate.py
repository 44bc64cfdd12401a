"""Evaluation on shards: image↔text retrieval and per-sample CLIP scores (zero-shot: zeroshot.py).

- The Encoder: a model + tokenizer → unit-length image / text features, in batches, on a device.
- Retrieval: every sample of the shards exactly once; image i's true text is caption i.
- Scores: image·text cosine per sample (the input of a DataComp-style CLIP-score filter).
"""
from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

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


def decode(data: bytes, size: int) -> tuple[np.ndarray | None, str | None]:
    """(CLIP's eval preprocessing, None) or (None, reason): `decompression_bomb` over the loader's
    pixel limit, `decode_error` for anything Pillow cannot read. The caller counts and skips it."""
    try:
        return eval_transform(open_image(data, size, draft=False), size), None
    except ImageTooLarge:
        return None, "decompression_bomb"
    except Exception:  # Pillow raises many types on corrupt data
        return None, "decode_error"


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
            decoded = list(pool.map(lambda s: decode(s.image, image_size), raw))
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
