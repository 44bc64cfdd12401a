"""openwit.loader: streaming WebDataset loader (DDP-safe, resumable, fault tolerant) and CLIP tokenizer."""
from openwit.loader.device import DeviceTransform, PixelBatch
from openwit.loader.stream import WdsLoader, make_loader, shard_counts
from openwit.loader.tokenizer import CaptionTokenizer, load_tokenizer
from openwit.loader.transforms import clip_eval_preprocess
from openwit.loader.urls import expand_urls

__all__ = ["DeviceTransform", "PixelBatch", "WdsLoader", "make_loader", "shard_counts", "CaptionTokenizer",
           "load_tokenizer", "clip_eval_preprocess", "expand_urls"]
