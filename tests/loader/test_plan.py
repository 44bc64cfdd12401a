"""loader/plan.py directly: who reads what, per (rank, worker) slot — pure functions."""
import itertools

import pytest

from openwit.loader import plan

URLS = [f"s/{i:05d}.tar" for i in range(10)]


def test_epoch_order_is_shared_and_changes_per_epoch():
    a, b = plan.epoch_order(URLS, seed=0, epoch=0), plan.epoch_order(URLS, seed=0, epoch=0)
    assert a == b and sorted(a) == URLS  # every rank computes the same order
    assert plan.epoch_order(URLS, 0, 1) != a and plan.epoch_order(URLS, 1, 0) != a
    assert URLS == [f"s/{i:05d}.tar" for i in range(10)]  # input not shuffled in place


def test_slot_shards_are_disjoint_and_cover_the_order():
    order = plan.epoch_order(URLS, 3, 0)
    slots = [plan.slot_shards(order, s, 4) for s in range(4)]
    assert sorted(itertools.chain(*slots)) == sorted(URLS)
    assert [len(s) for s in slots] == [3, 3, 2, 2]
    assert plan.slot_shards(order[:2], 3, 4) == []  # more slots than shards: some own none


def test_padding_stream_cycles_from_the_slot():
    order = ["a", "b", "c"]
    assert list(itertools.islice(plan.padding_shard_stream(order, 1), 5)) == ["b", "c", "a", "b", "c"]
    assert list(plan.padding_shard_stream([], 0)) == []


def test_resampled_stream_is_seeded_per_slot():
    def draw(seed, epoch, slot):
        return list(itertools.islice(plan.resampled_shard_stream(URLS, seed, epoch, slot), 20))
    assert draw(0, 0, 0) == draw(0, 0, 0) and set(draw(0, 0, 0)) <= set(URLS)
    assert draw(0, 0, 1) != draw(0, 0, 0) and draw(0, 1, 0) != draw(0, 0, 0)


@pytest.mark.parametrize("samples, batch, world, expected", [(100, 10, 1, 10), (101, 10, 1, 11), (100, 10, 4, 3),
                                                              (0, 10, 2, 1), (5, 64, 8, 1)])
def test_batches_per_rank(samples, batch, world, expected):
    assert plan.batches_per_rank(samples, batch, world) == expected


def test_worker_quotas():
    assert plan.worker_quotas(10, [1, 1]) == [5, 5]
    assert plan.worker_quotas(10, [3, 1]) == [8, 2]     # 7.5 / 2.5: the tie goes to the first worker
    assert plan.worker_quotas(7, [0, 0, 0]) == [3, 2, 2]  # no weights: even
    assert plan.worker_quotas(5, [100, 1, 1]) == [5, 0, 0]
    for total, weights in ((13, [5, 3, 2]), (1, [1, 1, 1]), (100, [7, 0, 9, 1])):
        assert sum(plan.worker_quotas(total, weights)) == total


def test_resume_split_replays_round_robin():
    quotas = [3, 1, 2]  # DataLoader takes worker 0, 1, 2, 0, (1 done) 2, 0
    assert plan.resume_split(quotas, 0) == ([0, 0, 0], 0)
    assert plan.resume_split(quotas, 4) == ([2, 1, 1], 1)
    assert plan.resume_split(quotas, 5) == ([2, 1, 2], 0)
    assert plan.resume_split(quotas, 6) == plan.resume_split(quotas, 99) == ([3, 1, 2], 1)  # all delivered (clamped)
