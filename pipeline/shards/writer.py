"""Write and read one shard: `{n:05d}.tar`, `{n:05d}.parquet`, then `{n:05d}_stats.json` (commit marker).

Every file goes to a temporary name and is renamed (openwit.common.atomic), the marker last, so a
killed run never leaves a truncated file under a final name and an uncommitted shard is simply
rebuilt. Tar members are sorted by key (image, json, txt per key) with mtime 0, uid/gid 0, empty
owner names and mode 0o644; Parquet and JSON carry no timestamps: a rerun gives identical bytes.
Paths may be local, gs:// or s3:// (Beam FileSystems).
"""
from __future__ import annotations

import json
import tarfile
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from openwit.common import layout
from openwit.common.atomic import atomic_open, atomic_write_bytes, atomic_write_text
from openwit.common.errors import UserError
from openwit.common.files import match_files
from openwit.common.parquet import table_bytes
from openwit.pipeline.shards.sample import PARQUET_SCHEMA, STATUSES, meta_json, parquet_row, sample_from_row


def _header(name: str, size: int) -> bytes:
    """The USTAR header tarfile writes for a member `name` of `size` bytes (mtime 0, root, 0o644)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


def write_tar(path: str, samples: Iterable[dict]) -> None:
    """The successes as `key.<ext>`, `key.json`, `key.txt`, sorted by key: the bytes `tarfile` writes
    in stream mode (`w|`, USTAR; a test compares them), without its per-member copies and
    buffering (a third of the writer thread's time, which the download loop shares the GIL with)."""
    with atomic_open(path, mime_type="application/x-tar") as f:
        offset = 0
        for s in sorted(samples, key=lambda s: s["key"]):
            if s["status"] != "success":
                continue
            for name, data in ((f"{s['key']}.{s['ext']}", bytes(s["data"])),  # bytes(): a spool.Parked image
                               (f"{s['key']}.json", meta_json(s)),
                               (f"{s['key']}.txt", (s["caption"] or "").encode("utf-8"))):
                member = _header(name, len(data)) + data + tarfile.NUL * (-len(data) % tarfile.BLOCKSIZE)
                f.write(member)
                offset += len(member)
        offset += 2 * tarfile.BLOCKSIZE  # the end-of-archive blocks, then padding to a whole record
        f.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE + -offset % tarfile.RECORDSIZE))


def parquet_bytes(samples: Iterable[dict]) -> bytes:
    """One row per attempted sample, fixed schema, sorted by key."""
    rows = [parquet_row(s) for s in sorted(samples, key=lambda s: s["key"])]
    return table_bytes(pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA))


def shard_stats(shard: int, samples: list[dict], fingerprint: str, settings: dict,
                cand_hash: str) -> dict:
    """img2dataset-style counts (+ per-reason `status_dict`) and the settings fingerprint."""
    counts = {status: 0 for status in STATUSES}
    reasons: dict[str, int] = {}
    for s in samples:
        counts[s["status"]] += 1
        if s.get("reason"):
            reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
    return {
        "shard": shard, "count": len(samples), "successes": counts["success"],
        "failed_to_download": counts["failed_to_download"],
        "failed_to_resize": counts["failed_to_resize"], "filtered": counts["filtered"],
        "status_dict": dict(sorted(reasons.items())),
        "fingerprint": fingerprint, "candidates_hash": cand_hash, "settings": settings,
    }


def write_shard(out: str, shard: int, samples: list[dict], stats: dict) -> None:
    """Tar, Parquet, then the stats marker; each atomically. Removes an old marker first, so a
    rewrite (--retry-failed) that dies half-way leaves the shard uncommitted, never mixed."""
    marker = layout.shard_path(out, shard, layout.MARKER)
    if FileSystems.exists(marker):
        FileSystems.delete([marker])
    write_tar(layout.shard_path(out, shard, layout.TAR), samples)
    atomic_write_bytes(layout.shard_path(out, shard, layout.PARQUET), parquet_bytes(samples))
    atomic_write_text(marker, json.dumps(stats, indent=1, sort_keys=True, default=str) + "\n")


def write_timing(out: str, shard: int, start_time: float, end_time: float, action: str) -> None:
    """When the shard was fetched (unix seconds), for the report's throughput curve."""
    atomic_write_text(layout.timing_path(out, shard), json.dumps(
        {"action": action, "end_time": round(end_time, 3), "shard": shard,
         "start_time": round(start_time, 3)}, sort_keys=True) + "\n")


def read_stats(out: str, shard: int) -> dict | None:
    """The committed shard's stats, or None when the shard is not committed."""
    path = layout.shard_path(out, shard, layout.MARKER)
    if not FileSystems.exists(path):
        return None
    return read_marker_file(path)


def read_marker_file(path: str) -> dict:
    """A `_stats.json` marker; a corrupt one is a UserError naming it (never read as committed)."""
    try:
        return layout.read_marker(path)
    except layout.BadShardFile as e:
        raise UserError(f"{e}: delete it to rebuild that shard, or write to a new --out") from None


def read_rows(out: str, shard: int, columns: list[str] | None = None) -> list[dict]:
    """A written shard's Parquet rows (all columns, or only `columns`)."""
    with FileSystems.open(layout.shard_path(out, shard, layout.PARQUET)) as f:
        return pq.read_table(f, columns=columns).to_pylist()


def read_images(out: str, shard: int, keys: set[str] | None = None,
                keep: Callable[[bytes], Any] | None = None) -> dict[str, tuple[str, Any]]:
    """key → (ext, image bytes) from a written shard's tar, streamed (only `keys` when given); each
    image through `keep` when given (a `spool.Spool.keep`: past its budget, parked on disk)."""
    images: dict[str, tuple[str, Any]] = {}
    with FileSystems.open(layout.shard_path(out, shard, layout.TAR)) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            key, ext = m.name.split(".", 1)
            if ext not in ("json", "txt") and (keys is None or key in keys):
                data = tar.extractfile(m).read()
                images[key] = (ext, data if keep is None else keep(data))
    return images


def attach_images(out: str, shard: int, samples: list[dict], keep: Callable[[bytes], Any] | None = None
                  ) -> list[dict]:
    """`samples` (rows of the shard), each success given its (ext, image bytes) from the shard's tar,
    through `keep` when given (see read_images); a success the tar lacks is an error."""
    wanted = {s["key"] for s in samples if s["status"] == "success"}
    images = read_images(out, shard, wanted, keep)
    if wanted - set(images):
        raise RuntimeError(f"shard {shard:05d} in {out}: tar lacks images of {sorted(wanted - set(images))[:3]}")
    for s in samples:
        if s["status"] == "success":
            s["ext"], s["data"] = images[s["key"]]
    return samples


def read_shard(out: str, shard: int, keep: Callable[[bytes], Any] | None = None) -> list[dict]:
    """A committed shard's samples (Parquet rows + image bytes from the tar) for --retry-failed."""
    return attach_images(out, shard, [sample_from_row(row) for row in read_rows(out, shard)], keep)


def remove_stale_temps(out: str, shard: int) -> int:
    """Delete temporary files a killed run left for this shard; returns how many."""
    found = match_files(layout.shard_temp_glob(out, shard))
    if found:
        FileSystems.delete(found)
    return len(found)
