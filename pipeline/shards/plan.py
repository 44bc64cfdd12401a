"""Shard plan: which candidate goes to which shard under which key, and the settings fingerprint.

Pure functions over plain records; the Beam shell in `stage.py` (PlanShards) wires them up.

Plan (deterministic, independent of input order, shards exactly full except the last):
every candidate gets a 64-bit sort key ``h = blake2b(uid, key=seed)``; the global order is
``(h, uid)``; shard ``s`` holds ranks ``[s*N, (s+1)*N)`` and a sample's key is
``f"{s:05d}{index:0Wd}"``. A global sort would need one worker to see everything, so the rank is
computed in two small steps instead: the top ``BUCKET_BITS`` bits of ``h`` pick a bucket (buckets
are ordered like ``h``); one pass counts candidates per bucket (a dict of at most 2**16 ints: a
cheap singleton side input) and turns it into each bucket's starting rank; each bucket (≈ total /
65,536 candidates: ~6k for 400M) is sorted in memory and its members get ``offset + local rank``.
Only candidate metadata is shuffled; image bytes never are. The alternative, ``h mod ceil(total/N)``,
needs the same counting pass but gives binomial shard sizes; ranks give exact, full shards.
Hosts spread across shards because ``h`` is a keyed hash of the uid, not of the host.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from openwit.common.hashing import blake_hex, blake_u64
from openwit.pipeline.images import IMPLIED_SETTINGS, with_implied
from openwit.pipeline.images.resizer import applies

BUCKET_BITS = 16
FINGERPRINT_VERSION = 1


def sort_hash(uid: str, seed: int | str) -> int:
    """The candidate's 64-bit position in the seed's shuffled order."""
    return blake_u64(uid, key=f"openwit-shards:{seed}")


def sort_bucket(h: int) -> int:
    """Coarse bucket of a sort hash; buckets are ordered like the hashes they hold."""
    return h >> (64 - BUCKET_BITS)


def bucket_offsets(counts: dict[int, int]) -> dict[int, int]:
    """Starting global rank of each non-empty bucket, from the per-bucket counts."""
    offsets, total = {}, 0
    for bucket in sorted(counts):
        offsets[bucket] = total
        total += counts[bucket]
    return offsets


def key_width(samples_per_shard: int) -> int:
    """Digits of the in-shard index (img2dataset style: 10,000 per shard → 4 digits)."""
    return len(str(max(samples_per_shard - 1, 1)))


def sample_key(shard: int, index: int, samples_per_shard: int) -> str:
    """The sample's key: shard number and index, digits only (WebDataset splits at the first dot)."""
    return f"{shard:05d}{index:0{key_width(samples_per_shard)}d}"


def rank_bucket(bucket: int, members: Iterable[tuple[int, dict]], offset: int,
                samples_per_shard: int) -> Iterator[tuple[int, tuple[int, dict]]]:
    """Sort one bucket's (hash, candidate) pairs and yield (shard, (index in shard, candidate))."""
    ordered = sorted(members, key=lambda m: (m[0], m[1]["uid"], m[1]["url"], m[1].get("caption") or ""))
    for local_rank, (_, cand) in enumerate(ordered):
        shard, index = divmod(offset + local_rank, samples_per_shard)
        yield shard, (index, cand)


def plan_in_memory(candidates: Iterable[dict], samples_per_shard: int, seed: int | str
                   ) -> dict[int, list[tuple[int, dict]]]:
    """The whole plan without Beam (reference for tests): shard -> [(index, candidate)] sorted."""
    buckets: dict[int, list[tuple[int, dict]]] = {}
    for cand in candidates:
        h = sort_hash(cand["uid"], seed)
        buckets.setdefault(sort_bucket(h), []).append((h, cand))
    offsets = bucket_offsets({b: len(m) for b, m in buckets.items()})
    shards: dict[int, list[tuple[int, dict]]] = {}
    for b, members in buckets.items():
        for shard, item in rank_bucket(b, members, offsets[b], samples_per_shard):
            shards.setdefault(shard, []).append(item)
    return {s: sorted(items, key=lambda it: it[0]) for s, items in sorted(shards.items())}


def candidates_hash(uids: Iterable[str]) -> str:
    """Fingerprint of the exact candidates (in key order) a shard was built from."""
    return blake_hex(*uids)


def settings_fingerprint(settings: dict[str, Any], cand_hash: str) -> str:
    """blake2b over the sorted JSON of the settings plus the shard's candidates hash."""
    text = json.dumps({"settings": settings, "candidates": cand_hash, "v": FINGERPRINT_VERSION},
                      sort_keys=True, default=str)
    return blake_hex(text)


def original_flags(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The flags that give back the image settings that openwit left implicit when `old` was built
    (images.IMPLIED_SETTINGS) and that `new` changes, e.g. ["--resample box"] for a folder built
    before the setting existed, or ["--area-kernel opencv"] for one whose area average OpenCV computed."""
    old_full, new_full = with_implied(old), with_implied(new)
    return [f"--{name.replace('_', '-')} {old_full[name]}" for name in IMPLIED_SETTINGS
            if name not in old and name in old_full and new_full.get(name) != old_full[name]]


def changed_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable list of settings that differ, e.g. ["image_size: 256 -> 128"]; a setting left
    out of the fingerprint at its implied value (images.IMPLIED_SETTINGS) shows that value."""
    norm = lambda v: json.loads(json.dumps(v, default=str))  # noqa: E731  (tuples vs lists, inf)
    old, new = with_implied(old), with_implied(new)
    out = []
    for name in sorted(set(old) | set(new)):
        if not (applies(name, old) and applies(name, new)):
            continue  # meaningless on one side (area_kernel beside box): the other setting's change says it
        a, b = norm(old.get(name)), norm(new.get(name))
        if a != b:
            out.append(f"{name}: {a!r} -> {b!r}")
    return out
