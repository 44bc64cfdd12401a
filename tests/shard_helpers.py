"""Shard-writing helpers for the loader tests: real JPEGs (CIFAR-10 test images) in the two shard styles.

- openwit style: `{shard:05d}.tar` written with tarfile, members sorted (key.jpg, key.json, key.txt),
  `{shard:05d}.parquet` (one row per attempted sample) and `{shard:05d}_stats.json` (count, successes).
- img2dataset style: `webdataset.TarWriter` (what img2dataset uses), 9-digit keys, its stats fields.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

CIFAR_TGZ = "images/cifar10/cifar10_test_100_per_class_jpg.tar.gz"


def cifar_samples(shared_data: Path, n: int) -> list[tuple[bytes, str]]:
    """The first `n` CIFAR-10 test JPEGs (sorted by path) with a caption naming their class."""
    out = []
    with tarfile.open(shared_data / CIFAR_TGZ) as tar:
        members = sorted((m for m in tar.getmembers() if m.name.endswith(".jpg")), key=lambda m: m.name)
        for m in members[:n]:
            label = m.name.split("/")[-2]
            out.append((tar.extractfile(m).read(), f"a photo of a {label}, number {m.name.split('/')[-1][:-4]}"))
    return out


def real_photo_paths(shared_data: Path) -> list[Path]:
    """The 27 real photos of ../shared/data/images (skimage, sklearn, img2dataset_tests: JPEG and PNG,
    123–1411 px, RGB / L / RGBA), sorted."""
    root = Path(shared_data) / "images"
    return sorted(p for d in ("skimage", "sklearn", "img2dataset_tests") for p in (root / d).iterdir()
                  if p.suffix in (".jpg", ".png"))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shard(out: Path, shard: int, samples: list[tuple[bytes | None, str | None]], style: str = "openwit",
                sidecars: bool = True) -> list[str]:
    """Write one shard; a None image or caption leaves that member out. Returns the sample keys."""
    out.mkdir(parents=True, exist_ok=True)
    keys = [f"{shard:05d}{i:04d}" for i in range(len(samples))]
    tar_path = out / f"{shard:05d}.tar"
    if style == "openwit":
        with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for key, (img, cap) in zip(keys, samples):
                members = {"jpg": img, "json": json.dumps({"key": key}).encode(),
                           "txt": None if cap is None else cap.encode()}
                for ext in sorted(members):
                    if members[ext] is not None:
                        _add(tar, f"{key}.{ext}", members[ext])
    else:
        with wds.TarWriter(str(tar_path)) as sink:
            for key, (img, cap) in zip(keys, samples):
                sample = {"__key__": key, "json": {"key": key}}
                if img is not None:
                    sample["jpg"] = img
                if cap is not None:
                    sample["txt"] = cap
                sink.write(sample)
    if sidecars:
        ok = [img is not None and cap is not None for img, cap in samples]
        pq.write_table(pa.table({"key": keys, "caption": [c for _, c in samples],
                                 "status": ["success" if o else "failed_to_download" for o in ok]}),
                       out / f"{shard:05d}.parquet")
        stats = {"count": len(samples), "successes": sum(ok), "failed_to_download": len(samples) - sum(ok)}
        (out / f"{shard:05d}_stats.json").write_text(json.dumps(stats))
    return keys


def write_dataset(out: Path, shared_data: Path, sizes: list[int], style: str = "openwit") -> list[str]:
    """Shards of the given sizes from consecutive CIFAR images (captions unique, naming the shard)."""
    pool = cifar_samples(shared_data, sum(sizes))
    keys, start = [], 0
    for shard, n in enumerate(sizes):
        samples = [(img, f"{cap} in shard {shard}") for img, cap in pool[start: start + n]]
        keys += write_shard(out, shard, samples, style=style)
        start += n
    return keys


def caption_of(tokenizer, captions: list[str]):
    """A lookup from a token row (tuple) back to its caption, for checking which samples came out."""
    rows = tokenizer(captions)
    table = {tuple(r.tolist()): c for r, c in zip(rows, captions)}
    assert len(table) == len(captions), "test captions must tokenize uniquely"
    return lambda row: table[tuple(row.tolist())]


def all_captions(shared_data: Path, sizes: list[int]) -> list[str]:
    pool = cifar_samples(shared_data, sum(sizes))
    out, start = [], 0
    for shard, n in enumerate(sizes):
        out += [f"{cap} in shard {shard}" for _, cap in pool[start: start + n]]
        start += n
    return out
