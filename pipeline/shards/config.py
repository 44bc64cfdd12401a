"""Shard-stage settings: built once from the CLI namespace, picklable, with the fingerprinted subset.

Fetch and image settings come from `openwit.pipeline.fetch.FetchSettings` and
`openwit.pipeline.images.ImageSettings`: every dataclass field that the namespace carries (same
name, value not None) is passed on, the rest keep their defaults; so a new flag in the CLI reaches
the settings without touching this file.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from typing import Any

from openwit.common.local import usable_cores
from openwit.common.errors import UserError
from openwit.pipeline.images import OUTPUT_FORMATS, RESIZE_MODES
from openwit.pipeline.images.resizer import AREA_KERNELS, RESAMPLES

DEFAULT_SAMPLES_PER_SHARD = 10_000
NS = "shards"  # Beam counter namespace of the shard stage (per status, per reason, per shard action)


def _from_namespace(cls, args: argparse.Namespace):
    kwargs = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
              if getattr(args, f.name, None) is not None}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UserError(f"bad {cls.__name__} setting: {e}") from e


@dataclasses.dataclass(frozen=True)
class ShardConfig:
    """Everything a shard worker needs; `settings` is what the fingerprint covers."""

    out: str
    fetch: Any  # FetchSettings
    image: Any  # ImageSettings
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD
    seed: int | str = 0
    dedup_sha256: bool = False
    retry_failed: bool = False
    progress: bool = False
    threads: int = 0
    workers: int = 1  # image worker processes per shard worker (≤ 1: decode in-process, `threads` threads)

    @property
    def settings(self) -> dict[str, Any]:
        merged = {**self.fetch.fingerprint_fields(), **self.image.fingerprint_fields()}
        merged.update(samples_per_shard=self.samples_per_shard, seed=self.seed,
                      dedup_sha256=self.dedup_sha256)
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in merged.items()}

    @property
    def concurrency(self) -> int:
        return max(1, int(getattr(self.fetch, "concurrency", 64) or 64))

    @property
    def worker_threads(self) -> int:
        """Decode/resize threads in this process (--workers 1): --image-threads, else the cores."""
        return self.threads or max(2, os.cpu_count() or 2)


def default_workers(local: bool, local_processes: int = 1) -> int:
    """Image worker processes when --workers is not given: on a local runner every usable core,
    shared among the runner's own worker processes/threads (`local_processes`); on a remote runner
    1, since Dataflow and the like already run one SDK process per vCPU."""
    if not local:
        return 1
    return max(1, usable_cores() // max(1, local_processes))


def shard_config(args: argparse.Namespace, local: bool, local_processes: int = 1) -> ShardConfig:
    """ShardConfig from the build/shards namespace; bad values become a UserError.
    `local_processes`: how many shard workers a local runner starts (see default_workers)."""
    from openwit.pipeline.fetch import FetchSettings
    from openwit.pipeline.images import ImageSettings

    image = _from_namespace(ImageSettings, args)
    try:
        image.validate()
    except ValueError as e:
        raise UserError(str(e)) from e
    n = getattr(args, "samples_per_shard", None)
    n = DEFAULT_SAMPLES_PER_SHARD if n is None else int(n)
    if n < 1:
        raise UserError(f"--samples-per-shard must be at least 1, got {n}")
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 0:
        raise UserError(f"--workers must be at least 0, got {workers}")
    return ShardConfig(
        out=args.out.rstrip("/"), fetch=_from_namespace(FetchSettings, args), image=image,
        samples_per_shard=n, seed=getattr(args, "seed", 0) or 0,
        dedup_sha256=bool(getattr(args, "dedup_sha256", False)),
        retry_failed=bool(getattr(args, "retry_failed", False)), progress=local,
        threads=int(getattr(args, "image_threads", 0) or 0),
        workers=int(workers) if workers else default_workers(local, local_processes))


def add_shard_flags(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """The shard stage's flags (the same names in openwit-build and `python -m openwit.pipeline.shards.stage`).

    Unset flags stay None so FetchSettings/ImageSettings keep their own defaults (shown in the help).
    `seed=False` when the parser already has `--seed` (openwit-build: one seed for balancing and shards).
    """
    g = parser.add_argument_group("fetch, images and shards")
    g.add_argument("--samples-per-shard", type=int, default=DEFAULT_SAMPLES_PER_SHARD, metavar="N",
                   help=f"candidates per shard (default {DEFAULT_SAMPLES_PER_SHARD})")
    if seed:
        g.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the shard placement (default 0)")
    g.add_argument("--image-size", type=int, metavar="PX", help="side of the stored images in pixels (default 256)")
    g.add_argument("--resize-mode", choices=RESIZE_MODES,
                   help="how images reach --image-size, as in img2dataset: border fits the image and pads it "
                        "white to a square, center_crop fills the square, keep_ratio sets the smaller side, "
                        "keep_ratio_largest the larger side, no keeps the size (default border)")
    g.add_argument("--resize-only-if-bigger", action="store_true", default=None,
                   help="never upscale small images (default: upscale them to --image-size)")
    g.add_argument("--output-format", choices=list(OUTPUT_FORMATS), help="file format of the stored images (default jpg)")
    g.add_argument("--quality", type=int, metavar="Q", help="jpg/webp encoding quality, 1-100 (default 95)")
    g.add_argument("--min-image-size", type=int, metavar="PX", help="leave out images whose smaller side is below PX (default 0: keep all)")
    g.add_argument("--max-aspect-ratio", type=float, metavar="R", help="leave out images whose longer side is more than R times the shorter (default: no limit)")
    g.add_argument("--max-image-area", type=float, metavar="PX", help="leave out images of more than PX pixels (width×height) (default: no limit)")
    g.add_argument("--max-image-pixels", type=int, metavar="N",
                   help="decompression-bomb guard: images with more pixels fail before they are decoded "
                        "(default 89478485, Pillow's limit)")
    g.add_argument("--user-agent-token", metavar="T",
                   help="your crawler's name T: the User-Agent becomes openwit/VERSION (+URL; compatible; T) and "
                        "`T:`-scoped X-Robots-Tag directives apply too (default: none; unscoped and `openwit:`-scoped "
                        "directives always apply)")
    g.add_argument("--proxy", metavar="URL",
                   help="HTTP proxy for every download; the proxy then resolves host names (default: "
                        "HTTP_PROXY / HTTPS_PROXY from the environment, else none)")
    g.add_argument("--allow-private-addresses", action="store_true", default=None,
                   help="allow URLs that resolve to private, loopback or link-local addresses, for tests and "
                        "intranets (default: refused as private_address)")
    g.add_argument("--timeout", type=float, metavar="S",
                   help="total seconds per download attempt, redirects included (default 20)")
    g.add_argument("--read-timeout", type=float, metavar="S",
                   help="longest gap between body chunks, the trickle guard (default 10)")
    g.add_argument("--connect-timeout", type=float, metavar="S", help="seconds to open a connection (default 5)")
    g.add_argument("--max-bytes", type=int, metavar="N",
                   help="downloads larger than N bytes fail as too_large without being read (default 20000000)")
    g.add_argument("--retries", type=int, metavar="N",
                   help="extra attempts on timeouts, connection errors, 408, 429, 5xx (default 2)")
    g.add_argument("--concurrency", type=int, metavar="N", help="downloads in flight per shard worker (default 64)")
    g.add_argument("--per-host-connections", type=int, metavar="N",
                   help="open connections per host, per shard worker (default 4)")
    g.add_argument("--per-host-rps", type=float, metavar="R",
                   help="requests per second per host, per shard worker (default 0: unlimited)")
    g.add_argument("--max-redirects", type=int, metavar="N",
                   help="redirects followed per download, each checked again (default 5)")
    g.add_argument("--robots-txt", action="store_true", default=None,
                   help="also check each host's robots.txt, fetched once per host (default: not checked)")
    g.add_argument("--ignore-x-robots-tag", dest="respect_x_robots_tag", action="store_false", default=None,
                   help="download images even when their X-Robots-Tag says noai, noimageai, noindex, "
                        "noimageindex or none (default: such images are opted out)")
    g.add_argument("--decode-margin", type=int, choices=range(0, 9), metavar="M",
                   help="JPEGs are decoded at ≥ M × the target size by DCT scaling, then area-averaged: "
                        "2 is ~0.35/255 from the exact result, 1 costs ~25%% less CPU at ~1-1.5/255, "
                        "0 always decodes every pixel (default 2)")
    g.add_argument("--resample", choices=RESAMPLES,
                   help="how shrinking averages: area = the exact area average (as img2dataset's OpenCV INTER_AREA); "
                        "box = Pillow's BOX filter, what openwit used before this flag existed (to finish such a folder) "
                        "(default area)")
    g.add_argument("--area-kernel", choices=AREA_KERNELS,
                   help="which code computes the area average: openwit = openwit's kernel (numba), a third of "
                        "OpenCV's time; opencv = OpenCV's INTER_AREA, the default before, which rounds some pixels "
                        "differently (to finish a folder built with it) (default openwit)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="image worker processes per shard worker that decode and resize while the downloads "
                        "go on (default: one per usable core on a local run, 1 on Dataflow; 1 decodes in the "
                        "shard worker itself)")
    g.add_argument("--image-threads", type=int, default=0, metavar="N",
                   help="decode/resize threads with --workers 1 (default: one per core)")
    g.add_argument("--dedup-sha256", action="store_true",
                   help="mark exact duplicate images (same sha256) across the run as filtered, keeping the first "
                        "(default: keep duplicates)")
    g.add_argument("--retry-failed", action="store_true",
                   help="download the failed_to_download samples of already committed shards again and rewrite "
                        "those shards (default: committed shards are kept as they are)")
