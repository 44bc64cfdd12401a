"""A caption tokenizer for a finished dataset: byte-level BPE trained on its successful captions,
saved as `tokenizer.json` beside the shards — where `make_loader` looks for it by default.

Captions are read from the committed shards' Parquet files (column reads, no image bytes), in shard order,
so the same dataset gives the same tokenizer bytes.
"""
from __future__ import annotations

import logging
from typing import Iterator

import pyarrow.parquet as pq

from openwit.common import layout
from openwit.loader.tokenizer import CaptionTokenizer

log = logging.getLogger(__name__)
MAX_CAPTIONS = 1_000_000


def dataset_captions(out: str, limit: int = MAX_CAPTIONS) -> Iterator[str]:
    """Captions of the `success` rows of the committed shards' Parquet files, shard by shard, at most `limit`."""
    n = 0
    for shard in layout.list_shards(out)[0]:
        with layout.open_read(shard.parquet) as f:
            table = pq.read_table(f, columns=["caption", "status"])
        for caption, status in zip(table.column("caption").to_pylist(), table.column("status").to_pylist()):
            if status == "success" and caption:
                if n >= limit:
                    return
                n += 1
                yield caption


def train_dataset_tokenizer(out: str, vocab_size: int = 32_000, limit: int = MAX_CAPTIONS) -> str | None:
    """Train on the dataset's captions and write OUT/tokenizer.json; None when there are no captions."""
    captions = list(dataset_captions(out, limit))
    if not captions:
        log.warning("tokenizer: no successful captions in %s, no tokenizer.json written", out)
        return None
    tok = CaptionTokenizer.train(captions, vocab_size=vocab_size)
    path = layout.tokenizer_path(out)
    tok.save(path)
    log.info("tokenizer: byte-level BPE, %d tokens, trained on %d captions → %s", tok.vocab_size, len(captions), path)
    return path
