"""Caption length in tokens against the text tower's 77-token context, with the dataset's tokenizer.

The tokenizer is the one `openwit.loader.make_loader` would pick for these shards:
$OPENWIT_TOKENIZER, else OUT/tokenizer.json (openwit-build trains it), else CLIP's BPE file
($OPENWIT_CLIP_BPE). A tokenizer.json runs through the `tokenizers` library directly — its saved
pipeline (whitespace, lowercase, CLIP's split, BPE, start/end tokens) is the loader's, minus the
ftfy/HTML-entity fix-ups, which change a count only on broken text — so the report does not
import the loader (and torch). The captions are a deterministic sample (every k-th success in shard
order, at most aggregate.TOKEN_SAMPLE); a length counts the start and end tokens, as the context does.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from openwit.common import layout
from openwit.pipeline.stats.dist import Dist

CONTEXT = 77
log = logging.getLogger(__name__)


def find_tokenizer(out_dir: str) -> str | None:
    """Where the loader's default tokenizer for OUT lives (see the module doc), or None."""
    beside = layout.tokenizer_path(out_dir)
    for path in (os.environ.get("OPENWIT_TOKENIZER"), beside, os.environ.get("OPENWIT_CLIP_BPE")):
        if path and layout.exists(path):
            return path
    return None


def _lengths(path: str, captions: list[str]) -> tuple[np.ndarray, int]:
    """(token count per caption incl. start/end, vocabulary size)."""
    if path.endswith(".gz"):  # CLIP's merges file: only the loader reads it
        from openwit.loader.tokenizer import CaptionTokenizer

        tok = CaptionTokenizer.from_file(path, context_length=1024)
        ids = np.concatenate([tok(captions[i: i + 1024]) for i in range(0, len(captions), 1024)])
        return np.argmax(ids == tok.eot_id, axis=1) + 1, tok.vocab_size
    from tokenizers import Tokenizer

    with layout.open_read(path) as f:
        tok = Tokenizer.from_str(f.read().decode("utf-8"))
    tok.no_truncation()
    tok.no_padding()
    return np.array([len(e.ids) for e in tok.encode_batch(captions)], dtype=np.int64), tok.get_vocab_size()


def token_stats(captions: list[str], out_dir: str, successes: int) -> dict:
    """{"tokenizer", "sampled", "context_length", "truncated", "truncated_share", "lengths"}, or
    {"tokenizer": None, "sampled": 0} when there is no tokenizer (or no caption)."""
    path = find_tokenizer(out_dir)
    if path is None or not captions:
        return {"tokenizer": None, "sampled": 0}
    try:
        n, vocab = _lengths(path, captions)
    except Exception as e:  # noqa: BLE001 - a tokenizer file we cannot use: say so, report the rest
        log.warning("token lengths skipped: cannot use the tokenizer %s (%s)", path, str(e)[:200])
        return {"tokenizer": None, "sampled": 0}
    lengths = Dist("int", show_up_to=CONTEXT)
    lengths.add(n)
    over = int((n > CONTEXT).sum())
    return {
        "tokenizer": layout.TOKENIZER if path == layout.tokenizer_path(out_dir) else path, "vocab_size": vocab,
        "sampled": len(captions), "sampled_of": successes, "context_length": CONTEXT,
        "truncated": over, "truncated_share": round(over / len(captions), 6),
        "lengths": lengths.to_dict(),
    }
