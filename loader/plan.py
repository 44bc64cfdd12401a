"""Who reads what: pure functions over shard lists, seeds, ranks and workers.

A *slot* is one (rank, worker) pair: slot = rank * num_workers + worker. Every rank yields the same
number of batches per epoch (`batches_per_rank`), so DDP never waits at an epoch's end; inside a
rank the batches are split over its workers (`worker_quotas`). A slot that runs out of its own
shards tops up by cycling over the epoch's shard order (`padding_shard_stream`), so a rank with few
or no shards of its own still delivers its quota.
"""
from __future__ import annotations

import itertools
import math
import random
from typing import Iterator, Sequence

from openwit.common.hashing import blake_u64


def rng_for(seed: int, *parts: object) -> random.Random:
    """An independent, reproducible generator for (seed, parts…)."""
    return random.Random(blake_u64(*parts, key=seed))


def epoch_order(urls: Sequence[str], seed: int, epoch: int) -> list[str]:
    """The epoch's shard order, identical on every rank (shared seed)."""
    order = list(urls)
    rng_for(seed, "epoch-order", epoch).shuffle(order)
    return order


def slot_shards(order: Sequence[str], slot: int, num_slots: int) -> list[str]:
    """The shards a slot owns this epoch (disjoint across slots, hence across ranks)."""
    return list(order[slot::num_slots])


def padding_shard_stream(order: Sequence[str], slot: int) -> Iterator[str]:
    """Top-up shards for a slot whose own shards ran out: the epoch order cycled from `slot` onward."""
    for i in itertools.count():
        if not order:
            return
        yield order[(slot + i) % len(order)]


def resampled_shard_stream(urls: Sequence[str], seed: int, epoch: int, slot: int) -> Iterator[str]:
    """Shards drawn with replacement, seeded per (epoch, rank/worker slot)."""
    rng = rng_for(seed, "resampled", epoch, slot)
    while True:
        yield rng.choice(urls)


def batches_per_rank(num_samples: int, batch_size: int, world_size: int) -> int:
    """Batches each rank yields per epoch: every sample at least once (a few repeat as padding)."""
    return max(1, math.ceil(num_samples / (batch_size * world_size)))


def worker_quotas(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` batches over workers in proportion to `weights` (largest remainder; even if all 0)."""
    n = len(weights)
    if sum(weights) <= 0:
        weights = [1] * n
    s = sum(weights)
    exact = [total * w / s for w in weights]
    quotas = [int(x) for x in exact]
    by_remainder = sorted(range(n), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in by_remainder[: total - sum(quotas)]:
        quotas[i] += 1
    return quotas


def resume_split(quotas: Sequence[int], consumed: int) -> tuple[list[int], int]:
    """Per-worker batches already delivered after `consumed` batches, and the next worker to serve.

    torch's DataLoader takes batches from its workers round-robin, skipping exhausted ones; this
    replays that order. A resumed loader rotates worker ids so the next worker serves first.
    """
    n = len(quotas)
    done, w, given = [0] * n, 0, 0
    consumed = min(consumed, sum(quotas))
    while given < consumed:
        if done[w] < quotas[w]:
            done[w] += 1
            given += 1
        w = (w + 1) % n
    return done, w
