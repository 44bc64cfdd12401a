"""`make_loader(urls, batch_size)` → an iterable of `(images, tokens)` batches, DDP-safe and resumable."""
from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

import torch

from openwit.common.errors import UserError
from openwit.common.hashing import blake_hex
from openwit.loader import plan
from openwit.loader.dataset import ShardDataset
from openwit.loader.samples import count_samples
from openwit.loader.tokenizer import CaptionTokenizer, load_tokenizer
from openwit.loader.urls import check_openers, expand_urls, known_sample_count

log = logging.getLogger(__name__)


def shard_counts(urls: list[str], threads: int = 16) -> dict[str, int]:
    """Samples per shard from the `_stats.json` / `.parquet` sidecars; shards without one are read."""
    with ThreadPoolExecutor(min(threads, len(urls))) as pool:
        counts = dict(zip(urls, pool.map(known_sample_count, urls)))
    unknown = [u for u, n in counts.items() if n is None]
    if unknown:
        log.warning("%d shard(s) have no stats/Parquet sidecar; counting them by reading", len(unknown))
        with ThreadPoolExecutor(min(threads, len(unknown))) as pool:
            counts.update(zip(unknown, pool.map(count_samples, unknown)))
    return counts


def _dist_info(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class WdsLoader:
    """Iterate for one epoch of `len(self)` batches (the same on every rank); iterate again for the next.

    `state_dict()` after any batch and `load_state_dict()` on a fresh loader continue the epoch
    exactly where it stopped. `faults` counts skipped inputs by reason (summed over workers).
    """

    def __init__(self, dataset: ShardDataset, num_workers: int = 0, pin_memory: bool = False,
                 num_samples: int | None = None):
        self.dataset = dataset
        self.num_samples = sum(dataset.counts.values()) if num_samples is None else num_samples
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.epoch, self.batches = dataset.epoch, 0
        self.faults: Counter = Counter()

    def __len__(self) -> int:
        d = self.dataset
        if d.pad or d.resampled:
            return d.num_batches
        d.epoch = self.epoch  # without top-up the count follows this epoch's shard split
        return sum(d.quotas())

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.batches = epoch, 0

    def _fingerprint(self) -> str:
        d = self.dataset
        return blake_hex(*d.urls, str(d.seed), str(d.batch_size), str(d.world_size), str(d.num_workers),
                         str(d.resampled), str(d.num_batches), str(d.pad))

    def state_dict(self) -> dict:
        """Position to resume from: epoch, batches consumed in it, and what they depend on."""
        return {"epoch": self.epoch, "batches": self.batches,
                "samples": self.batches * self.dataset.batch_size, "seed": self.dataset.seed,
                "shard_order": self.dataset.epoch_order() if not self.dataset.resampled else None,
                "fingerprint": self._fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("fingerprint") != self._fingerprint():
            log.warning("resuming with different shards/seed/batch size/world size/workers: "
                        "the position is approximate")
        self.epoch, self.batches = int(state["epoch"]), int(state["batches"])
        if self.batches >= len(self):
            self.epoch, self.batches = self.epoch + 1, 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.dataset.epoch, self.dataset.start_batch = self.epoch, self.batches
        dl = torch.utils.data.DataLoader(self.dataset, batch_size=None, num_workers=self.num_workers,
                                         pin_memory=self.pin_memory,
                                         persistent_workers=False, prefetch_factor=2 if self.num_workers else None)
        if self.num_workers == 0:
            self.dataset.faults.take()
        for images, tokens, faults in dl:
            self.faults.update(faults)
            self.batches += 1
            yield images, tokens
        self.epoch, self.batches = self.epoch + 1, 0


def make_loader(urls: str | Iterable[str], batch_size: int, *, image_size: int = 224, train: bool = True,
                resampled: bool = False, num_samples: int | None = None, seed: int = 0,
                shuffle_buffer: int | None = None, tokenizer: str | CaptionTokenizer | None = None,
                num_workers: int = 0, rank: int | None = None, world_size: int | None = None,
                draft: bool = True, context_length: int = 77, pin_memory: bool = False,
                epoch: int = 0, pad: bool | None = None) -> WdsLoader:
    """A loader of `(images float32 [B,3,S,S], tokens int64 [B,77])` over WebDataset shards.

    urls: brace patterns / `::`-joined lists / lists of local paths, http(s)://, gs://, s3://, pipe:.
    resampled: draw shards with replacement (per rank/worker seed) instead of splitting them.
    num_samples: epoch size; default: summed from the shards' stats/Parquet sidecars.
    shuffle_buffer: samples in the shuffle buffer (default 1000 for train, 0 for eval).
    pad: top up so every rank yields the same batch count (default: on for train, off for eval,
        where each sample comes exactly once and the last batch of each worker may be partial).
    tokenizer: CaptionTokenizer, tokenizer.json or CLIP's bpe .txt.gz; default: tokenizer.json
        beside the shards, else $OPENWIT_CLIP_BPE / an installed open_clip's CLIP vocabulary.
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    url_list = expand_urls(urls)
    check_openers(url_list)
    rank, world_size = _dist_info(rank, world_size)
    counts = shard_counts(url_list)
    total = num_samples if num_samples is not None else sum(counts.values())
    if total <= 0:
        raise UserError(f"no samples in {len(url_list)} shard(s) (first: {url_list[0]})")
    tok = load_tokenizer(tokenizer, url_list[0], context_length)
    dataset = ShardDataset(
        urls=url_list, counts=counts, tokenizer=tok, batch_size=batch_size,
        num_batches=plan.batches_per_rank(total, batch_size, world_size), image_size=image_size,
        train=train, resampled=resampled, seed=seed,
        shuffle_buffer=(1000 if train else 0) if shuffle_buffer is None else shuffle_buffer,
        draft=draft, pad=train if pad is None else pad, rank=rank, world_size=world_size,
        num_workers=max(1, num_workers), epoch=epoch)
    return WdsLoader(dataset, num_workers=num_workers, pin_memory=pin_memory, num_samples=total)
