"""The per-worker pipeline: shard stream → raw samples → shuffle buffer → skip (resume) → decode → batches.

One `ShardDataset` object is pickled into each DataLoader worker. Each worker works out its own
slot, quota and resume offset from the same pure plan (plan.py), so nothing is shared at run time.
Each item is `(images [B,3,H,W] float32, tokens [B,77] int64, fault-count delta)`; `WdsLoader`
strips the counts.
"""
from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import torch
import webdataset as wds

from openwit.loader import plan
from openwit.loader.samples import FaultLog, RawSample, iter_shard
from openwit.loader.tokenizer import CaptionTokenizer
from openwit.loader.transforms import eval_transform, normalize_batch, open_image, train_transform

log = logging.getLogger(__name__)


@dataclass
class ShardDataset(torch.utils.data.IterableDataset):
    """One rank's view of the shards for one epoch; each DataLoader worker plays one slot of it."""

    urls: Sequence[str]
    counts: dict  # url -> known sample count
    tokenizer: CaptionTokenizer
    batch_size: int
    num_batches: int  # per rank per epoch (with pad=False each worker reads its own shards out instead)
    image_size: int = 224
    train: bool = True
    resampled: bool = False
    seed: int = 0
    shuffle_buffer: int = 1000
    draft: bool = True
    pad: bool = True  # top up to equal batch counts on all ranks; False: every sample once, last batch partial
    rank: int = 0
    world_size: int = 1
    num_workers: int = 1  # logical workers per rank (>= 1)
    epoch: int = 0
    start_batch: int = 0  # batches of this epoch already consumed on this rank
    faults: FaultLog = field(default_factory=FaultLog, repr=False)

    def __post_init__(self) -> None:
        super().__init__()

    # --- planning -------------------------------------------------------------------------
    def epoch_order(self) -> list[str]:
        return plan.epoch_order(self.urls, self.seed, self.epoch)

    def quotas(self) -> list[int]:
        """Batches each of this rank's workers yields this epoch (sums to `num_batches`)."""
        if self.resampled:
            return plan.worker_quotas(self.num_batches, [1] * self.num_workers)
        order, slots = self.epoch_order(), self.world_size * self.num_workers
        weights = [sum(self.counts.get(u, 0) for u in plan.slot_shards(order, self.rank * self.num_workers + w, slots))
                   for w in range(self.num_workers)]
        if not self.pad:  # each worker: all of its own samples, then stop
            return [-(-w // self.batch_size) for w in weights]
        return plan.worker_quotas(self.num_batches, weights)

    def sample_stream(self, slot: int) -> Iterator[RawSample]:
        """Shuffled samples of the slot's shards; in epoch mode then top-up samples (not shuffled,
        read only as far as the quota needs)."""
        shuffle_seed = plan.rng_for(self.seed, "shuffle", self.epoch, slot).getrandbits(64)
        if self.resampled:
            own = self.raw_samples(plan.resampled_shard_stream(self.urls, self.seed, self.epoch, slot))
        else:
            order = self.epoch_order()
            own = self.raw_samples(plan.slot_shards(order, slot, self.world_size * self.num_workers))
            padding = self.raw_samples(plan.padding_shard_stream(order, slot), padding=True)
        if self.shuffle_buffer > 1:
            own = wds.filters._shuffle(iter(own), bufsize=self.shuffle_buffer, initial=self.shuffle_buffer,
                                       seed=shuffle_seed)
        return own if self.resampled or not self.pad else itertools.chain(own, padding)

    def raw_samples(self, shards: Iterable[str], padding: bool = False) -> Iterator[RawSample]:
        """Samples of a shard sequence; ends if 2×(number of shards) shards in a row are empty."""
        empty_in_a_row, limit = 0, 2 * len(self.urls)
        for url in shards:
            n = 0
            for sample in iter_shard(url, self.faults):
                n += 1
                if padding:
                    self.faults.counts["padded"] += 1
                yield sample
            empty_in_a_row = 0 if n else empty_in_a_row + 1
            if empty_in_a_row >= limit:
                log.error("no readable samples in %d shards in a row; stopping this worker early", limit)
                return

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        physical = info.id if info is not None else 0
        if info is not None:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per worker
            torch.set_num_threads(1)
        quotas = self.quotas()
        done, first = plan.resume_split(quotas, self.start_batch)
        worker = (physical + first) % self.num_workers
        slot = self.rank * self.num_workers + worker
        remaining = quotas[worker] - done[worker]
        if remaining <= 0:
            return
        stream = itertools.islice(self.sample_stream(slot), done[worker] * self.batch_size, None)
        for _ in range(remaining):
            raw = list(itertools.islice(stream, self.batch_size))
            if not raw:
                log.error("worker %d of rank %d ran out of data before its quota", worker, self.rank)
                return
            yield self.make_batch(raw)

    def make_batch(self, raw: list[RawSample]):
        """Decode and transform; an undecodable image is replaced by another sample of the batch."""
        arrays: list = []
        for s in raw:
            try:
                img = open_image(s.image, self.image_size, draft=self.draft)
                if self.train:
                    rng = plan.rng_for(self.seed, "crop", self.epoch, s.url, s.key)
                    arrays.append(train_transform(img, self.image_size, rng))
                else:
                    arrays.append(eval_transform(img, self.image_size))
            except Exception as e:  # Pillow raises many types on corrupt data
                self.faults.record("decode_error", s.url, f"{s.key}: {e}")
                arrays.append(None)
        good = [i for i, a in enumerate(arrays) if a is not None]
        if not good:  # nothing decodable: an all-grey batch keeps shapes and counts intact
            good = [0]
            arrays[0] = torch.full((self.image_size, self.image_size, 3), 128, dtype=torch.uint8).numpy()
        captions = []
        for i, a in enumerate(arrays):
            j = i if a is not None else good[i % len(good)]
            arrays[i] = arrays[j]
            captions.append(raw[j].caption)
        tokens = torch.from_numpy(self.tokenizer(captions))
        return normalize_batch(arrays), tokens, self.faults.take()
