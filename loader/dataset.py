"""The per-worker pipeline: shard stream → raw samples → shuffle buffer → skip (resume) → decode → batches.

One `ShardDataset` object is pickled into each DataLoader worker. Each worker works out its own
slot, quota and resume point from the same pure plan (plan.py), so nothing is shared at run time.
Each item is `(images [B,3,H,W] float32, tokens [B,77] int64, report)` (with `device_augment`,
`images` is a `device.PixelBatch`: decoded uint8 pixels + crop boxes); the report carries the
fault-count delta, the worker's position (logical worker, batches, raw samples consumed) and the
real sample counts of shards whose sidecar was wrong. After its last batch every worker sends one
report-only item `(None, None, report)`, so nothing it counted is lost; `WdsLoader` strips reports.
Coming after a worker's last batch, it leaves the order in which torch's DataLoader interleaves the
workers' batches (round-robin, exhausted workers dropping out) unchanged.

Nothing is invented: an image that does not decode is skipped and counted (`decode_error`,
`decompression_bomb`). With `pad` (or `resampled`) a batch is filled from the following samples of
the stream; without, it comes out short. Because skipped samples shift the stream, a resume point
is a count of *raw* samples per worker (exact, from this rank's `state_dict`); without one (an old
checkpoint or another rank's), the consumed batches are replayed decoding only — slower, equally
exact wherever every worker delivers its planned batch count (always with top-up).
"""
from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import torch
import webdataset as wds
from PIL import Image

from openwit.loader import device, plan
from openwit.loader.samples import FaultLog, RawSample, iter_shard
from openwit.loader.tokenizer import CaptionTokenizer
from openwit.loader.transforms import (MAX_IMAGE_PIXELS, ImageTooLarge, eval_transform, normalize_batch,
                                       open_image, train_transform)
from openwit.loader.urls import shard_name

log = logging.getLogger(__name__)


class _Uncounted(FaultLog):
    """For top-up reads: a shard's faults are counted by the worker that owns it, once."""

    def record(self, reason: str, url: str, detail: object = "") -> None:
        pass


class _ShardRead:
    """One shard's samples, counted; `ended` and `outcome` (iter_shard's fault or None) once read out."""

    def __init__(self, url: str, reads: Iterator[RawSample]) -> None:
        self.url, self.reads, self.n, self.ended, self.outcome = url, reads, 0, False, None

    def __iter__(self):
        return self

    def __next__(self) -> RawSample:
        try:
            sample = next(self.reads)
        except StopIteration as end:
            self.ended, self.outcome = True, end.value
            raise
        self.n += 1
        return sample


class _Counted:
    """An iterator that counts what it hands out (a worker's raw-sample position)."""

    def __init__(self, it: Iterable, n: int | None = 0) -> None:
        self.it, self.n = iter(it), n

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self.it)
        self.n += 1
        return item

    def skip(self, n: int) -> None:
        for _ in itertools.islice(self, n):
            pass


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
    pad: bool = True  # top up to equal batch counts on all ranks; False: every sample once, short batches
    rank: int = 0
    world_size: int = 1
    num_workers: int = 1  # logical workers per rank (>= 1)
    epoch: int = 0
    max_pixels: int | None = MAX_IMAGE_PIXELS
    start_batch: int = 0  # batches of this epoch already consumed on this rank
    positions: dict | None = None  # exact resume point: {"workers": [[batches, raw]…], "next_worker": w}
    recount_skipped: bool = True  # False: what the skipped part counts is already in the restored totals
    device_augment: bool = False  # yield device.PixelBatch (decoded uint8 + boxes) instead of float images
    faults: FaultLog = field(default_factory=FaultLog, repr=False)
    read_counts: dict = field(default_factory=dict, repr=False)  # url -> real count, where the plan's differs

    def __post_init__(self) -> None:
        super().__init__()
        self._reading: _ShardRead | None = None  # the own shard being read (set inside a worker only)
        self._give_up = 0

    @property
    def fill(self) -> bool:
        """Batches are always full (a fixed quota per worker); else short, reading own shards out."""
        return self.pad or self.resampled

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

    def resume_point(self, physical: int) -> tuple[int, int, int | None]:
        """(logical worker, batches it already delivered, raw samples they took — None: replay)."""
        if self.positions is not None:
            worker = (physical + self.positions["next_worker"]) % self.num_workers
            done, raw = self.positions["workers"][worker]
            return worker, done, raw
        done, first = plan.resume_split(self.quotas(), self.start_batch)
        worker = (physical + first) % self.num_workers  # rotated: the next worker to serve goes first
        return worker, done[worker], 0 if done[worker] == 0 else None

    # --- reading --------------------------------------------------------------------------
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
        faults = _Uncounted() if padding else self.faults
        for url in shards:
            shard = _ShardRead(url, iter_shard(url, faults))
            if not padding:
                self._reading = shard
            for sample in shard:
                yield sample._replace(padding=True) if padding else sample
            if not padding:
                self.check_count(shard)
            empty_in_a_row = 0 if shard.n else empty_in_a_row + 1
            if empty_in_a_row >= limit:
                log.error("no readable samples in %d shards in a row; stopping this worker early", limit)
                return

    def check_count(self, shard: _ShardRead) -> None:
        """A shard read to its end whose real count differs from `counts` is noted in `read_counts`."""
        if shard.ended and shard.outcome in (None, "truncated_tar") and shard.n != self.counts.get(shard.url, shard.n):
            self.read_counts[shard.url] = shard.n

    def count_rest_of_shard(self) -> None:
        """The quota ended inside an own shard already past its sidecar's count: read (not decode)
        the rest, so that its real count is known for the next epoch."""
        shard, self._reading = self._reading, None
        if shard is not None and not shard.ended and shard.n > self.counts.get(shard.url, shard.n):
            for _ in shard:
                pass
            self.check_count(shard)

    # --- batches --------------------------------------------------------------------------
    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        if info is not None:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per worker
            torch.set_num_threads(1)
        self._reading = None
        self._give_up = 2 * sum(self.counts.values()) + self.batch_size  # undecodable in a row: stop
        worker, done, raw = self.resume_point(info.id if info is not None else 0)
        quota = self.quotas()[worker] if self.fill else None
        stream = _Counted((), raw)  # a worker whose quota is done reads nothing
        if quota is None or done < quota:
            stream = _Counted(self.sample_stream(self.rank * self.num_workers + worker))
            if raw is None:
                for _ in range(done):
                    self.next_batch(stream, decode_only=True)
            else:
                stream.skip(raw)
            if not self.recount_skipped:
                self.report(worker, done, stream.n)  # dropped: counted before the checkpoint
        while quota is None or done < quota:
            batch = self.next_batch(stream)
            if batch is None:
                if quota is not None:
                    log.error("worker %d of rank %d ran out of data before its quota", worker, self.rank)
                break
            done += 1
            yield (*batch, self.report(worker, done, stream.n))
        self.count_rest_of_shard()
        yield None, None, self.report(worker, done, stream.n)

    def report(self, worker: int, batches: int, raw: int) -> dict:
        """What the main process needs besides the batch (deltas since the last report)."""
        counts, self.read_counts = self.read_counts, {}
        return {"faults": self.faults.take(), "counts": counts, "pos": [worker, batches, raw]}

    def next_batch(self, stream: Iterator[RawSample], decode_only: bool = False):
        """`(images, tokens)` of the next batch, or None when the stream has nothing decodable left.

        fill: `batch_size` decodable samples, undecodable ones replaced by the following samples;
        else the decodable ones among the next `batch_size` samples (a chunk with none is passed
        over). `decode_only` replays the same choice without transforms (for resuming).
        """
        kept, bad_in_a_row, give_up = [], 0, self._give_up
        while True:
            chunk = list(itertools.islice(stream, self.batch_size - len(kept) if self.fill else self.batch_size))
            for s in chunk:
                array = self.decode(s, decode_only)
                bad_in_a_row = 0 if array is not None else bad_in_a_row + 1
                if array is not None:
                    kept.append((s, array))
            if not chunk or len(kept) == self.batch_size or (kept and not self.fill):
                break
            if bad_in_a_row > give_up:
                log.error("no decodable image in %d samples in a row; stopping this worker early", bad_in_a_row)
                break
        if not kept:
            return None
        padded = sum(s.padding for s, _ in kept)
        if padded:
            self.faults.counts["padded"] += padded
        if decode_only:
            return True
        tokens = torch.from_numpy(self.tokenizer([s.caption for s, _ in kept]))
        images = [a for _, a in kept]
        return device.pack(images) if self.device_augment else normalize_batch(images), tokens

    def decode(self, s: RawSample, decode_only: bool = False):
        """The transformed uint8 HWC array (a `device.Crop` with `device_augment`; True with
        `decode_only`), or None: skipped and counted. Both paths skip the same samples: each decodes
        every pixel (Pillow raises on corrupt data while decoding, not while opening). A replay
        (`decode_only`, resuming) decodes as the device path does whatever the mode: libjpeg-turbo
        where it gives Pillow's verdict, ~15% less CPU than Pillow, Pillow everywhere else."""
        try:
            decode = device.decode if self.device_augment or decode_only else open_image
            img = decode(s.image, self.image_size, draft=self.draft, max_pixels=self.max_pixels)
            if decode_only:
                if isinstance(img, Image.Image):
                    img.load()
                return True
            if not self.train:
                return (device.eval_crop if self.device_augment else eval_transform)(img, self.image_size)
            # keyed by the shard's file name, not its URL: the same shards read from another folder,
            # a bucket or over HTTP give the same crops
            rng = plan.rng_for(self.seed, "crop", self.epoch, shard_name(s.url), s.key)
            return (device.train_crop if self.device_augment else train_transform)(img, self.image_size, rng)
        except (ImageTooLarge, Image.DecompressionBombError) as e:
            reason, detail = "decompression_bomb", e
        except Exception as e:  # Pillow raises many types on corrupt data
            reason, detail = "decode_error", e
        if not s.padding:
            self.faults.record(reason, s.url, f"{s.key}: {detail}")
        return None
