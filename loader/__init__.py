"""openwit.loader: streaming WebDataset loader (DDP-safe, resumable, fault tolerant) and CLIP tokenizer.

The names below are imported on first use (PEP 562), so `openwit.loader.tokenizer` or
`openwit.loader.dataset_tokenizer` alone (openwit-build's tokenizer step) does not pay for torch.
"""
from __future__ import annotations

import importlib

_HOMES = {
    "DeviceTransform": "device", "PixelBatch": "device",
    "WdsLoader": "stream", "make_loader": "stream", "shard_counts": "stream",
    "CaptionTokenizer": "tokenizer", "load_tokenizer": "tokenizer",
    "clip_eval_preprocess": "transforms", "expand_urls": "urls",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
