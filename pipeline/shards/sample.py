"""One sample's fate and its records: the single place that decides status (img2dataset pasted it 3×).

A sample is a plain dict: the candidate's fields plus `key`, `status`, `reason`, `error_message`,
image sizes, `sha256`, `exif`, where it came from (`page_url`, `source`: the page and the input
file of the candidate), what was downloaded (`original_format` as sniffed, `original_bytes`) and
written (`image_bytes`), and (successes only) `data`/`ext`. From it come the shard Parquet
row, the tar's `key.json`, and the per-reason counts in `_stats.json`.
"""
from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

STATUSES = ("success", "failed_to_download", "failed_to_resize", "filtered")

PARQUET_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("url", pa.string()),
    ("caption", pa.string()),
    ("status", pa.string()),
    ("error_message", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("original_width", pa.int32()),
    ("original_height", pa.int32()),
    ("sha256", pa.string()),
    ("exif", pa.string()),
    ("uid", pa.string()),
    ("query_ids", pa.list_(pa.int32())),
    # provenance and file sizes (since issue 13; older shards lack these columns, readers allow that)
    ("page_url", pa.string()),
    ("source", pa.string()),
    ("original_format", pa.string()),
    ("original_bytes", pa.int64()),
    ("image_bytes", pa.int64()),
])
META_FIELDS = ("url", "caption", "key", "status", "error_message", "width", "height",
               "original_width", "original_height", "sha256", "exif", "uid", "query_ids")


def decide(fetch: Any, image: Any | None) -> tuple[str, str | None, str | None]:
    """(status, reason, error) from a FetchResult and (if downloaded) an ImageResult."""
    if not fetch.ok:
        return "failed_to_download", fetch.reason or "download_error", fetch.error
    if image is None:
        return "failed_to_resize", "not_processed", None
    if image.status == "success":
        return "success", None, None
    status = image.status if image.status in STATUSES else "failed_to_resize"
    return status, image.reason or status, image.error


def error_message(reason: str | None, error: str | None) -> str | None:
    """`reason: detail` (fetch and images already write errors so); None for successes."""
    if reason is None:
        return None
    if not error or error == reason:
        return reason
    return error if error.startswith(f"{reason}:") else f"{reason}: {error}"


def make_sample(key: str, cand: dict, fetch: Any, image: Any | None) -> dict:
    """Build the sample record for one attempted candidate."""
    status, reason, error = decide(fetch, image)
    ok = status == "success"
    has_image = image is not None
    sample = {
        "key": key,
        "url": cand["url"],
        "caption": cand.get("caption"),
        "uid": cand["uid"],
        "query_ids": [int(q) for q in (cand.get("query_ids") or [])],
        "status": status,
        "reason": reason,
        "error_message": error_message(reason, error),
        "width": image.width if ok else None,
        "height": image.height if ok else None,
        "original_width": image.original_width if has_image else None,
        "original_height": image.original_height if has_image else None,
        "sha256": image.sha256 if has_image else None,
        "exif": image.exif if ok else None,
        "page_url": cand.get("page_url"),
        "source": cand.get("source"),
        "original_format": getattr(fetch, "image_format", None) if fetch.ok else None,
        "original_bytes": len(fetch.data) if fetch.ok and fetch.data is not None else None,
        "image_bytes": len(image.data) if ok else None,
    }
    if ok:
        sample["data"], sample["ext"] = image.data, image.ext
    return sample


def mark_duplicate(sample: dict, first_key: str) -> dict:
    """Turn a success whose image sha256 was already written into a `filtered` sample."""
    out = {k: v for k, v in sample.items() if k not in ("data", "ext")}
    out.update(status="filtered", reason="duplicate_sha256",
               error_message=f"duplicate_sha256: same image as {first_key}", width=None, height=None,
               exif=None, image_bytes=None)
    return out


def _int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


def parquet_row(sample: dict) -> dict:
    """The shard Parquet row (fixed schema, see PARQUET_SCHEMA)."""
    row = {name: sample.get(name) for name in PARQUET_SCHEMA.names}
    for name in ("width", "height", "original_width", "original_height", "original_bytes", "image_bytes"):
        row[name] = _int_or_none(row[name])
    if row["exif"] is not None and not isinstance(row["exif"], str):
        row["exif"] = json.dumps(row["exif"], sort_keys=True, default=str)
    return row


def meta_json(sample: dict) -> bytes:
    """The tar's `key.json`: img2dataset-like metadata, deterministic bytes."""
    row = parquet_row(sample)
    return json.dumps({k: row[k] for k in META_FIELDS}, ensure_ascii=False).encode("utf-8")


def sample_from_row(row: dict) -> dict:
    """Inverse of parquet_row (used by --retry-failed); `reason` is the error message's prefix."""
    sample = dict(row)
    msg = row.get("error_message")
    sample["reason"] = msg.split(":", 1)[0] if msg else None
    sample["query_ids"] = list(row.get("query_ids") or [])
    return sample


def dedup_by_sha256(samples: list[dict]) -> list[dict]:
    """Exact de-duplication in key order: later successes with an already-seen sha256 are filtered."""
    first: dict[str, str] = {}
    out = []
    for s in sorted(samples, key=lambda s: s["key"]):
        if s["status"] == "success" and s.get("sha256"):
            if s["sha256"] in first:
                s = mark_duplicate(s, first[s["sha256"]])
            else:
                first[s["sha256"]] = s["key"]
        out.append(s)
    return out
