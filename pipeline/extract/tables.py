"""Image candidates from url+caption tables: Parquet, CSV/TSV (with or without header), JSONL.

Column names come from --url-col/--caption-col or are recognised: `URL`/`TEXT` (LAION),
`url`/`text` (DataComp), `url`/`caption` (img2dataset). A header-less CSV/TSV (CC3M's
`caption<TAB>url`) is recognised by which of its two first-row fields is an http(s) URL.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import logging
from typing import IO, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from openwit.pipeline.extract.html_page import RawImage, resolve_url
from openwit.pipeline.extract.warc import BadInput

log = logging.getLogger(__name__)
KNOWN_COLUMNS = (("URL", "TEXT"), ("url", "text"), ("url", "caption"))
TABLE_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".json", ".ndjson")


def table_kind(path: str) -> str | None:
    """`parquet`, `csv`, `tsv` or `jsonl` from the file name (a trailing .gz/.bz2 is ignored)."""
    name = path.lower()
    for comp in (".gz", ".bz2"):
        if name.endswith(comp):
            name = name[: -len(comp)]
    for suffix in TABLE_SUFFIXES:
        if name.endswith(suffix):
            return {"json": "jsonl", "ndjson": "jsonl"}.get(suffix[1:], suffix[1:])
    return None


def pick_columns(names: list[str], url_col: str | None, caption_col: str | None) -> tuple[str, str] | None:
    """The (url, caption) column pair to use, or None when none is given or recognised."""
    if url_col and caption_col:
        return (url_col, caption_col) if url_col in names and caption_col in names else None
    for u, c in KNOWN_COLUMNS:
        if (url_col or u) in names and (caption_col or c) in names:
            return url_col or u, caption_col or c
    return None


def _row(url, text) -> RawImage:
    url, reason = resolve_url(url if isinstance(url, str) else None, None)
    return RawImage(url, text if isinstance(text, str) else None, None, reason)


def dropped(reason: str) -> RawImage:
    """A row that is unusable as a whole (bad JSON line, undecodable bytes): counted as `reason`."""
    return RawImage(None, "", None, reason)


def _utf8(value):
    """bytes → str (None when not valid UTF-8); anything else unchanged."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value


def _missing(names, url_col, caption_col) -> BadInput:
    want = f"{url_col or 'URL'}/{caption_col or 'TEXT'}"
    return BadInput(0, f"no url/caption columns ({want} or a known pair) among {names[:10]}")


def images_from_parquet(stream: IO[bytes], url_col=None, caption_col=None, name: str = "") -> Iterator[RawImage]:
    pf = pq.ParquetFile(stream)
    names = pf.schema_arrow.names
    cols = pick_columns(names, url_col, caption_col)
    if cols is None:
        raise _missing(names, url_col, caption_col)
    binary = [c for c in cols if pa.types.is_binary(pf.schema_arrow.field(c).type)
              or pa.types.is_large_binary(pf.schema_arrow.field(c).type)]
    if binary:
        log.warning("%s: binary-typed column(s) %s: values decoded as UTF-8, the others dropped as bad_utf8",
                    name, ", ".join(binary))
    for batch in pf.iter_batches(columns=list(cols), batch_size=8192):
        for url, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            if binary:
                url_s, text_s = _utf8(url), _utf8(text)
                if (url_s is None and url is not None) or (text_s is None and text is not None):
                    yield dropped("bad_utf8")
                    continue
                url, text = url_s, text_s
            yield _row(url, text)


def images_from_delimited(stream: IO[bytes], delimiter: str, url_col=None, caption_col=None) -> Iterator[RawImage]:
    text_stream = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(text_stream, delimiter=delimiter, quoting=quoting)
    first = next(reader, None)
    if first is None:
        return
    cols = pick_columns(first, url_col, caption_col)
    if cols is not None:
        iu, ic = first.index(cols[0]), first.index(cols[1])
        rows = reader
    else:  # no header: the URL column is the one holding an http(s) URL
        is_url = [f.strip().lower().startswith(("http://", "https://")) for f in first]
        if len(first) < 2 or sum(is_url) != 1:
            raise _missing(first, url_col, caption_col)
        iu = is_url.index(True)
        ic = 1 if iu == 0 else 0
        rows = itertools.chain([first], reader)
    need = max(iu, ic)
    for row in rows:
        if len(row) > need:
            yield _row(row[iu].strip(), row[ic])
        elif row:  # blank lines are no rows
            yield dropped("short_row")


def _json_object(line: str) -> tuple[dict | None, str | None, str]:
    """(object, None, "") for a JSON object line, else (None, drop reason, what is wrong)."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        return None, "bad_json_line", f"bad JSON: {e}"
    if not isinstance(obj, dict):
        return None, "json_not_object", f"a JSON {type(obj).__name__}, not an object"
    return obj, None, ""


def images_from_jsonl(stream: IO[bytes], url_col=None, caption_col=None, name: str = "") -> Iterator[RawImage]:
    """One JSON object a line; a line that is not valid JSON (`bad_json_line`) or not an object
    (`json_not_object`) is skipped and counted (the first of each logged) and reading goes on."""
    cols, warned = None, set()
    for lineno, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace"), 1):
        if not line.strip():
            continue
        obj, reason, problem = _json_object(line)
        if obj is None:
            if reason not in warned:
                warned.add(reason)
                log.warning("%s line %d: %s (skipped; further such lines are counted as %s)",
                            name, lineno, problem, reason)
            yield dropped(reason)
            continue
        if cols is None:
            cols = pick_columns(list(obj), url_col, caption_col)
            if cols is None:
                raise _missing(list(obj), url_col, caption_col)
        yield _row(obj.get(cols[0]), obj.get(cols[1]))


def images_from_table(stream: IO[bytes], kind: str, url_col=None, caption_col=None, name: str = ""
                      ) -> Iterator[RawImage]:
    """Rows of a table file of the given kind as RawImage (page_url None); `name` is for log lines."""
    if kind == "parquet":
        return images_from_parquet(stream, url_col, caption_col, name)
    if kind == "jsonl":
        return images_from_jsonl(stream, url_col, caption_col, name)
    return images_from_delimited(stream, "\t" if kind == "tsv" else ",", url_col, caption_col)
