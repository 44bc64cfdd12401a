"""Deterministic hashing (blake2b): ids, keyed random draws, shard assignment. Never Python's hash()."""
from __future__ import annotations

import hashlib

_MAX64 = float(1 << 64)


def blake_hex(*parts: str, digest_size: int = 16) -> str:
    """Hex digest of the parts joined by NUL (128 bits by default), e.g. a candidate's uid."""
    h = hashlib.blake2b(digest_size=digest_size)
    h.update("\x00".join(parts).encode("utf-8"))
    return h.hexdigest()


def blake_u64(*parts: str | int, key: str | int = "") -> int:
    """A 64-bit unsigned integer from the parts, keyed (e.g. by a seed)."""
    h = hashlib.blake2b(digest_size=8, key=str(key).encode("utf-8")[:64])
    h.update("\x00".join(str(p) for p in parts).encode("utf-8"))
    return int.from_bytes(h.digest(), "big")


def uniform(*parts: str | int, key: str | int = "") -> float:
    """A deterministic draw in [0, 1) from the parts, keyed by `key` (e.g. the seed)."""
    return blake_u64(*parts, key=key) / _MAX64
