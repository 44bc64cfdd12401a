"""One input file → candidate records (url, caption, source, page_url, uid) or drop reasons.

Dispatches on the file name: `*.warc*` / `*.wat*` (WARC with HTML responses or WAT metadata) or a
table (`.parquet`, `.csv`, `.tsv`, `.jsonl`, optionally compressed). Files are opened through Beam's
FileSystems, so local paths, `gs://` and `s3://` work alike.
"""
from __future__ import annotations

import bz2
import dataclasses
import gzip
from typing import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from openwit.common.hashing import blake_hex
from openwit.pipeline.extract.html_page import RawImage
from openwit.pipeline.extract.tables import images_from_table, table_kind
from openwit.pipeline.extract.warc import BadInput, images_from_warc
from openwit.pipeline.extract.captions import MAX_CAPTION_CHARS, MIN_CAPTION_CHARS, junk_reason, normalize_caption
from openwit.pipeline.extract.domains import is_excluded, url_host


RECOGNISED = ".warc, .warc.gz, .wat, .warc.wat.gz, .parquet, .csv, .tsv, .jsonl (.json, .ndjson; tables also .gz/.bz2)"


def file_kind(path: str) -> str | None:
    """`warc` or a table kind (`parquet`, `csv`, `tsv`, `jsonl`); None when not recognised."""
    name = path.rsplit("/", 1)[-1].lower()
    if ".warc" in name or ".wat" in name:
        return "warc"
    return table_kind(name)


@dataclasses.dataclass(frozen=True)
class ExtractRules:
    """The user's extraction settings: caption length bounds (characters, after normalisation) and
    the domains whose image URLs are dropped (`excluded_domain`; see extract.domains)."""

    min_caption_chars: int = MIN_CAPTION_CHARS
    max_caption_chars: int = MAX_CAPTION_CHARS
    exclude_domains: frozenset[str] = frozenset()


DEFAULT_RULES = ExtractRules()


def candidate(raw: RawImage, source: str, rules: ExtractRules = DEFAULT_RULES) -> tuple[dict | None, str | None]:
    """(record, None) for a usable image+caption, else (None, drop reason)."""
    if raw.text is None:
        return None, "no_text"
    if raw.url is None:
        return None, raw.reason
    if rules.exclude_domains and is_excluded(url_host(raw.url), rules.exclude_domains):
        return None, "excluded_domain"
    caption = normalize_caption(raw.text)
    reason = junk_reason(caption, rules.min_caption_chars, rules.max_caption_chars)
    if reason:
        return None, reason
    page_url = raw.page_url
    if page_url is not None and not page_url.isascii():
        page_url = page_url.encode("utf-8", "replace").decode("utf-8")  # drop lone surrogates
    return {"url": raw.url, "caption": caption, "source": source, "page_url": page_url,
            "uid": blake_hex(raw.url, caption)}, None


def raw_images(path: str, url_col: str | None = None, caption_col: str | None = None) -> Iterator[RawImage]:
    """Every image+text found in one file; raises BadInput on corrupt or unreadable input."""
    kind = file_kind(path)
    if kind is None:
        raise BadInput(0, f"unknown file type (recognised: {RECOGNISED})")
    try:  # FastWARC and Parquet read their own compression; text tables are unwrapped here
        stream = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as e:
        raise BadInput(0, f"cannot open: {e}") from None
    with stream:
        if kind == "warc":
            yield from images_from_warc(stream)
        else:
            name = path.lower()
            text = (gzip.GzipFile(fileobj=stream) if name.endswith(".gz")
                    else bz2.BZ2File(stream) if name.endswith(".bz2") else stream)
            try:
                yield from images_from_table(text, kind, url_col, caption_col, path)
            except BadInput:
                raise
            except Exception as e:  # corrupt Parquet, bad gzip, ...
                raise BadInput(getattr(stream, "tell", lambda: 0)(), f"{type(e).__name__}: {e}") from None


def extract_file(path: str, url_col: str | None = None, caption_col: str | None = None,
                 rules: ExtractRules = DEFAULT_RULES) -> Iterator[tuple[dict | None, str | None]]:
    """(record, None) or (None, reason) for every image+text in the file. Raises BadInput after
    yielding what came before the damage."""
    for raw in raw_images(path, url_col, caption_col):
        yield candidate(raw, path, rules)
