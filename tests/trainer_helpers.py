"""Helpers for the trainer tests: small real shards (CIFAR-10 JPEGs) with a tokenizer beside them,
and running the CLIs in-process."""
from __future__ import annotations

import json
import socket
from pathlib import Path

from openwit.loader.tokenizer import CaptionTokenizer
from shard_helpers import all_captions, write_dataset


def make_shards(out: Path, shared_data: Path, sizes: list[int]) -> str:
    """Shards of CIFAR-10 test images with captions naming the class, plus a small byte-level BPE
    `tokenizer.json` trained on those captions (as openwit-build leaves one). Returns the brace URL."""
    write_dataset(out, shared_data, sizes)
    tok = CaptionTokenizer.train(all_captions(shared_data, sizes), vocab_size=600, context_length=32)
    tok.save(str(out / "tokenizer.json"))
    return f"{out}/{{{0:05d}..{len(sizes) - 1:05d}}}.tar"


def metrics(run: Path, kind: str = "train") -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for torch.distributed rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
