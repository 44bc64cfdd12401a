"""`make_loader(urls, batch_size)` → an iterable of `(images, tokens)` batches, DDP-safe and resumable."""
from __future__ import annotations

import copy
import logging
import os
import signal
from collections import Counter
from typing import Iterable, Iterator

import torch

from openwit.common.errors import UserError
from openwit.common.hashing import blake_hex
from openwit.loader import plan
from openwit.loader.counts import drop_missing, probe_shards, shard_counts
from openwit.loader.dataset import ShardDataset
from openwit.loader.device import DeviceTransform
from openwit.loader.tokenizer import CaptionTokenizer, load_tokenizer
from openwit.loader.transforms import MAX_IMAGE_PIXELS
from openwit.loader.urls import check_openers, expand_urls, shard_name

log = logging.getLogger(__name__)

__all__ = ["WdsLoader", "make_loader", "shard_counts"]


def _dist_info(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _process_group_matches(rank: int, world_size: int) -> bool:
    dist = torch.distributed
    return (dist.is_available() and dist.is_initialized() and dist.get_world_size() == world_size
            and dist.get_rank() == rank)


class WdsLoader:
    """Iterate for one epoch of `len(self)` batches (the same on every rank); iterate again for the next.

    `state_dict()` after any batch and `load_state_dict()` on a fresh loader continue the epoch
    exactly where it stopped. The state holds this rank's raw-sample position per worker (so
    skipped undecodable samples stay skipped); in DDP save each rank's state (or a list of all of
    them, indexed by rank): another rank's state still resumes exactly, replaying the consumed
    batches by decoding only, which is slower. `faults` counts skipped inputs by reason (summed
    over workers, each sample once; restored with this rank's state).

    Sidecar counts are checked as the epoch reads: a worker that reads one of its own shards to
    the end reports its real count where the sidecar disagreed; it is warned about once and used
    from the next epoch on (`len`, quotas, `num_samples`), never mid-epoch, so a resume replays
    the same plan. All ranks must agree on the epoch size, so in DDP the corrections are merged
    with one `all_gather_object` at the start of each epoch (torch.distributed initialised, with
    the loader's rank and world size); without a process group they are only warned about.
    """

    def __init__(self, dataset: ShardDataset, num_workers: int = 0, pin_memory: bool = False,
                 num_samples: int | None = None):
        self.dataset = dataset
        self.fixed_num_samples = num_samples
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.epoch, self.batches = dataset.epoch, 0
        self.faults: Counter = Counter()
        self.corrected: dict[str, int] = {}  # real counts in effect (the sidecars disagreed)
        self.pending: dict[str, int] = {}  # real counts found this epoch, used from the next one
        self._positions: dict | None = None
        self._recount = True

    @property
    def num_samples(self) -> int:
        d = self.dataset
        return self.fixed_num_samples if self.fixed_num_samples is not None else sum(d.counts.values())

    def __len__(self) -> int:
        d = self.dataset
        if d.pad or d.resampled:
            return d.num_batches
        d.epoch = self.epoch  # without top-up the count follows this epoch's shard split
        return sum(d.quotas())

    def device_transform(self) -> DeviceTransform:
        """What turns this loader's batches into float images on a device: `t(images, device)`
        (PixelBatch with `device_augment`, else the float batch, only moved)."""
        return DeviceTransform(self.dataset.image_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.batches, self._positions = epoch, 0, None

    def _fingerprint(self) -> str:
        d = self.dataset
        return blake_hex(*d.urls, str(d.seed), str(d.batch_size), str(d.world_size), str(d.num_workers),
                         str(d.resampled), str(d.num_batches), str(d.pad))

    def state_dict(self) -> dict:
        """Position to resume from: epoch, batches consumed in it, and what they depend on."""
        positions = self._positions
        if positions is not None and (positions["next_worker"] is None
                                      or any(p is None or p[1] is None for p in positions["workers"])):
            positions = None  # not every worker has reported since a replayed resume
        positions = copy.deepcopy(positions)
        return {"epoch": self.epoch, "batches": self.batches,
                "samples": self.batches * self.dataset.batch_size, "seed": self.dataset.seed,
                "shard_order": self.dataset.epoch_order() if not self.dataset.resampled else None,
                "fingerprint": self._fingerprint(), "rank": self.dataset.rank, "positions": positions,
                "faults": dict(self.faults), "counts": dict(self.corrected), "pending_counts": dict(self.pending)}

    def load_state_dict(self, state: dict | list) -> None:
        """Resume from `state_dict()` (or a list of every rank's, indexed by rank)."""
        d = self.dataset
        if isinstance(state, (list, tuple)):
            state = state[d.rank] if d.rank < len(state) else state[0]
        self._use_counts(state.get("counts") or {})  # the counts that epoch was planned with
        exact = state.get("fingerprint") == self._fingerprint()
        if not exact:
            log.warning("resuming with different shards/seed/batch size/world size/workers: "
                        "the position is approximate")
        self.epoch, self.batches = int(state["epoch"]), int(state["batches"])
        mine = state.get("rank", d.rank) == d.rank
        self._positions = state.get("positions") if exact and mine else None
        if mine:
            self.faults = Counter(state.get("faults") or {})
            self.pending = dict(state.get("pending_counts") or {})
            self._recount = False
        if self.batches >= len(self):
            self.epoch, self.batches, self._positions = self.epoch + 1, 0, None

    def _use_counts(self, real: dict[str, int]) -> None:
        d = self.dataset
        real = {u: n for u, n in real.items() if u in d.counts and d.counts[u] != n}
        if real:
            d.counts.update(real)
            self.corrected.update(real)
            d.num_batches = plan.batches_per_rank(self.num_samples, d.batch_size, d.world_size)

    def _apply_pending(self) -> None:
        """Start using the real counts found so far: every rank the same ones (see the class doc)."""
        d, found = self.dataset, dict(self.pending)
        if d.world_size > 1:
            if not _process_group_matches(d.rank, d.world_size):
                return  # ranks cannot agree on a new epoch size: keep the planned one
            gathered: list = [None] * d.world_size
            torch.distributed.all_gather_object(gathered, found)
            found = {u: n for g in gathered for u, n in (g or {}).items()}
        self._use_counts(found)
        self.pending = {}

    def _note(self, report: dict, is_batch: bool) -> None:
        d = self.dataset
        self.faults.update(report["faults"])
        for url, n in report["counts"].items():
            if url not in self.pending:
                then = ("from the next epoch on" if d.world_size == 1 or _process_group_matches(d.rank, d.world_size)
                        else "once the sidecar is fixed (ranks without torch.distributed cannot agree on a new count)")
                log.warning("shard %s: its sidecar says %d samples but the tar holds %d; using %d %s",
                            shard_name(url), d.counts.get(url, 0), n, n, then)
            self.pending[url] = n
        worker, batches, raw = report["pos"]
        if self._positions is not None:
            self._positions["workers"][worker] = [batches, raw]
            if is_batch:
                self._positions["next_worker"] = (worker + 1) % self.dataset.num_workers

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        d = self.dataset
        if self.batches == 0:
            self._apply_pending()
            self._positions = {"workers": [[0, 0] for _ in range(d.num_workers)], "next_worker": 0}
            self._recount = True
        d.epoch, d.start_batch, d.recount_skipped = self.epoch, self.batches, self._recount
        d.positions = copy.deepcopy(self._positions)  # None: replay (positions unknown)
        if self._positions is None:
            self._positions = {"workers": [None] * d.num_workers, "next_worker": None}
        dl = torch.utils.data.DataLoader(d, batch_size=None, num_workers=self.num_workers,
                                         pin_memory=self.pin_memory, worker_init_fn=_worker_survives_one_stop,
                                         persistent_workers=False, prefetch_factor=2 if self.num_workers else None)
        if self.num_workers == 0:  # the in-process dataset may hold counts of an abandoned epoch
            d.report(0, 0, 0)
        for images, tokens, report in dl:
            self._note(report, images is not None)
            if images is None:
                continue
            self.batches += 1
            yield images, tokens
        self.epoch, self.batches, self._positions = self.epoch + 1, 0, None
        if d.world_size == 1:
            self._apply_pending()  # so that len() is right before the next epoch starts


def _worker_survives_one_stop(worker_id: int) -> None:
    """A worker outlives the first Ctrl-C or SIGTERM; the next one ends it.

    Ctrl-C in a terminal reaches every process of the foreground group, and torchrun (like Slurm)
    sends SIGTERM to each trainer's whole process group, workers included. The first one is the
    main process's to handle: the trainer finishes its step and saves a checkpoint, reading from
    the workers meanwhile, then shuts them down as usual (a plain KeyboardInterrupt does too).
    A second signal — a second Ctrl-C, or torch's own `terminate()` of a worker that did not stop
    when asked — ends the worker as before."""
    def first(signum, frame):
        signal.signal(signum, signal.SIG_DFL)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, first)


def make_loader(urls: str | Iterable[str], batch_size: int, *, image_size: int = 224, train: bool = True,
                resampled: bool = False, num_samples: int | None = None, seed: int = 0,
                shuffle_buffer: int | None = None, tokenizer: str | CaptionTokenizer | None = None,
                num_workers: int = 0, rank: int | None = None, world_size: int | None = None,
                draft: bool = True, context_length: int = 77, pin_memory: bool = False,
                epoch: int = 0, pad: bool | None = None, missing_shards: str = "error",
                max_image_pixels: int | None = MAX_IMAGE_PIXELS, device_augment: bool = False) -> WdsLoader:
    """A loader of `(images float32 [B,3,S,S], tokens int64 [B,77])` over WebDataset shards.

    urls: brace patterns / `::`-joined lists / lists of local paths, http(s)://, gs://, s3://, pipe:.
    resampled: draw shards with replacement (per rank/worker seed) instead of splitting them.
    num_samples: epoch size; default: summed from the shards' stats/Parquet sidecars.
    shuffle_buffer: samples in the shuffle buffer (default 1000 for train, 0 for eval).
    pad: top up so every rank yields the same batch count (default: on for train, off for eval,
        where each sample comes exactly once and batches may be short).
    tokenizer: CaptionTokenizer, tokenizer.json or CLIP's bpe .txt.gz; default: tokenizer.json
        beside the shards, else $OPENWIT_CLIP_BPE / an installed open_clip's CLIP vocabulary.
    missing_shards: "error" (default): shards that do not exist are a UserError naming them;
        "skip": read the others, with a warning.
    max_image_pixels: decompression-bomb guard (the build's default); larger images are skipped
        and counted as `decompression_bomb` before decoding. None turns it off.
    device_augment: workers only decode and pick the crop box; batches are `(PixelBatch, tokens)`
        and `loader.device_transform()(images, device)` (an `openwit.loader.DeviceTransform`)
        resizes and normalises them on the consumer's device — the same images as the default
        path to a rare ±1/255. Samples, order, resume positions and faults are those of the default
        path (a checkpoint of either mode resumes the other).
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    url_list = expand_urls(urls)
    check_openers(url_list)
    rank, world_size = _dist_info(rank, world_size)
    sizes, missing = probe_shards(url_list)
    url_list = drop_missing(url_list, missing, missing_shards)
    counts = shard_counts(url_list, sizes=sizes)
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
        num_workers=max(1, num_workers), epoch=epoch, max_pixels=max_image_pixels, device_augment=device_augment)
    return WdsLoader(dataset, num_workers=num_workers, pin_memory=pin_memory, num_samples=num_samples)
