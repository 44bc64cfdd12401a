"""Acceptance on real crawl data: the four WARC samples in ../shared/data/warc (Common Crawl, wget,
a clipped file) through `openwit-build --stage candidates` with the query list `openwit-queries`
builds from the real enwiki excerpt. Every count — per drop reason, duplicates, matched, no match,
kept, and every query's matches — equals an independent count: our own gzip/WARC reader, the
standard library's HTMLParser instead of lexbor, the rules re-written from the README, and
matching as MetaCLIP defines it (n-grams of the padded text looked up in a set)."""
import html
import json
import html.parser
import re
import zlib
from collections import Counter
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pyarrow.parquet as pq
import pytest
from charset_normalizer import from_bytes

from openwit.pipeline import cli as build_cli
from openwit.queries import cli as queries_cli

EXCERPT = "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
WARCS = ["dolma-warc-sample-0000.warc.gz", "dolma-warc-sample-0001.warc.gz",
         "resiliparse-warcfile.warc.gz", "resiliparse-clipped.warc.gz"]
MAIN = ("input_files", "extracted", "duplicate", "matched", "no_match", "kept", "balanced_out", "bad_input_file")
T = 3  # a small cap, so balancing decides something on ~300 captions


# --- an independent reader: gzip members → WARC records → HTML pages → <img> tags -------------------
def warc_records(path: Path) -> tuple[list[tuple[dict, bytes]], bool]:
    """(records as (headers, block), damaged?) — reading stops at the first damaged gzip member."""
    data, pos, records = path.read_bytes(), 0, []
    while pos < len(data):
        d = zlib.decompressobj(31)
        try:
            raw = d.decompress(data[pos:])
        except zlib.error:
            return records, True
        if not d.eof:
            return records, True
        pos = len(data) - len(d.unused_data)
        while raw.strip():
            head, _, rest = raw.lstrip(b"\r\n").partition(b"\r\n\r\n")
            lines = head.decode("utf-8", "replace").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            n = int(headers["content-length"])
            if len(rest) < n:
                return records, True
            records.append((headers, rest[:n]))
            raw = rest[n:]
    return records, False


def decode(body: bytes, header_charset: str | None) -> str:
    labels = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
              "us-ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030", "euc-kr": "cp949", "shift_jis": "cp932"}
    for label in (header_charset, *re.findall(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w\-:.]+)", body[:4096], re.I)[:1]):
        if isinstance(label, bytes):
            label = label.decode("ascii", "ignore")
        if label:
            label = labels.get(label.lower(), label.lower())
            try:
                return body.decode(label, errors="replace")
            except LookupError:
                pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        best = from_bytes(body[:65536]).best()
        return body.decode(labels.get(best.encoding, best.encoding) if best else "utf-8", errors="replace")


class Imgs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.base, self.imgs = None, []

    def handle_starttag(self, tag, attrs):
        a = {}
        for k, v in attrs:
            a.setdefault(k, v if v is not None else "")  # the first of a repeated attribute counts
        if tag == "base" and self.base is None and "href" in a:
            self.base = a["href"]
        if tag == "img":
            self.imgs.append(a)


def pages(path: Path):
    """(page URL, decoded HTML) of every HTML response; and whether the file was damaged."""
    records, damaged = warc_records(path)
    out = []
    for headers, block in records:
        if headers.get("warc-type") != "response" or not block.startswith(b"HTTP/"):
            continue
        head, _, body = block.partition(b"\r\n\r\n")
        http = {k.strip().lower(): v.strip() for k, _, v in
                (ln.partition(":") for ln in head.decode("latin-1").split("\r\n")[1:])}
        ctype = http.get("content-type", "").lower()
        if ctype and "html" not in ctype:
            continue
        if http.get("content-encoding", "").lower() in ("gzip", "x-gzip"):
            try:
                body = zlib.decompress(body, 47)
            except zlib.error:
                pass
        charset = re.search(r"charset=[\"']?([\w\-:.]+)", ctype)
        out.append((headers["warc-target-uri"].strip("<> "), decode(body, charset.group(1) if charset else None)))
    return out, damaged


def fate(img: dict, base: str) -> tuple[str | None, str | None, str | None]:
    """(url, caption, drop reason) of one <img>, by the README's rules in their order."""
    text = img.get("alt")
    if text is None or not text.strip():
        text = img.get("title") or text
    if text is None:
        return None, None, "no_text"
    src = (img.get("src") or "").strip()
    if not src:
        return None, None, "no_src"
    if src.lower().startswith("data:"):
        return None, None, "data_uri"
    url = urljoin(base, src)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return None, None, "bad_scheme"
    if len(url) > 2048:
        return None, None, "url_too_long"
    caption = " ".join(re.sub("[\x00-\x08\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]",
                              "", html.unescape(text)).split())
    if not caption:
        return None, None, "empty"
    if len(caption) < 3:
        return None, None, "too_short"
    if len(caption) > 1000:
        return None, None, "too_long"
    if re.fullmatch(r"[^\s/]+\.(jpe?g|png|gif|webp|bmp|tiff?|svg|heic|avif|ico)|(img|dsc|dscn|dcim|pxl|mvimg|photo|image|p)"
                    r"[_\- ]?\d{3,}\w*", caption, re.I):
        return None, None, "filename_like"
    return url, caption, None


def padded(text: str) -> list[str]:
    """MetaCLIP's padding: `, . ; : ? !` and backtick padded with spaces, tabs/newlines → space."""
    for mark in ",.;:?!`":
        text = text.replace(mark, f" {mark} ")
    return (" " + text.replace("\t", " ").replace("\n", " ") + " ").split(" ")


def matches(caption: str, index: dict[str, int], longest: int) -> set[int]:
    toks = padded(caption)
    return {index[g] for n in range(1, longest + 1) for i in range(len(toks) - n + 1)
            if (g := " ".join(toks[i:i + n])) in index}


# --- the runs ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(shared_data, wordnet_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("real-warc")
    assert queries_cli.main(["--out", str(root / "queries"), "--wiki-dump", str(shared_data / EXCERPT),
                             "--wordnet-dir", str(wordnet_dir)]) == 0
    return root


def build(root: Path, shared_data: Path, capsys, balance: str) -> dict:
    out = root / f"build-{balance}"
    capsys.readouterr()
    assert build_cli.main(["--queries", str(root / "queries"), "--stage", "candidates", "--out", str(out),
                           "--max-per-query", str(T), "--balance", balance,
                           "--input", *[str(shared_data / "warc" / w) for w in WARCS]]) == 0
    printed = capsys.readouterr().out
    funnel = json.loads((out / "candidate_counts.json").read_text())  # what the summary prints, exactly
    counts = {"input_files": funnel["inputs"]["files"], "bad_input_file": funnel["inputs"]["bad_files"],
              "duplicate": funnel["duplicates"], **funnel["extract_drops"],
              **{k: funnel[k] for k in ("extracted", "matched", "no_match", "kept", "balanced_out")}}
    assert f"{funnel['records_read']:,} records read → {funnel['extracted']:,} extracted" in printed
    kept = [r for f in sorted((out / "candidates").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return {"counts": counts, "kept": kept, "query_counts": pq.read_table(out / "query_counts.parquet").to_pylist()}


def test_real_warcs_every_count_matches_an_independent_count(runs, shared_data, capsys):
    reasons, pairs, damaged = Counter(), [], []
    for name in WARCS:
        found, bad = pages(shared_data / "warc" / name)
        damaged += [name] if bad else []
        for page_url, text in found:
            parser = Imgs()
            parser.feed(text)
            parser.close()
            base = urljoin(page_url, parser.base.strip()) if parser.base and parser.base.strip() else page_url
            for img in parser.imgs:
                url, caption, reason = fate(img, base)
                reasons[reason or "ok"] += 1
                if url:
                    pairs.append((url, caption))
    assert damaged == ["resiliparse-clipped.warc.gz"]  # and the run below goes on past it
    unique = list(dict.fromkeys(pairs))
    queries = (runs / "queries" / "queries.txt").read_text(encoding="utf-8").split("\n")[:-1]
    index = {q: i for i, q in enumerate(queries)}
    longest = max(len(q.split(" ")) for q in queries)
    matched = {p: matches(p[1], index, longest) for p in unique}
    per_query = Counter(q for ids in matched.values() for q in ids)

    got = build(runs, shared_data, capsys, "metaclip")
    c = got["counts"]
    drops = {k: v for k, v in reasons.items() if k != "ok"}
    assert {k: v for k, v in c.items() if k not in MAIN} == drops and reasons["ok"] > 250, (c, reasons)
    assert c["input_files"] == 4 and c["bad_input_file"] == 1
    assert c["extracted"] == len(pairs) and c["duplicate"] == len(pairs) - len(unique)
    assert c["matched"] == sum(1 for ids in matched.values() if ids) and c["no_match"] == len(unique) - c["matched"]
    assert 0 < c["balanced_out"] and c["kept"] + c["balanced_out"] == c["matched"]
    # every query's matches; and a candidate with a query at or under the cap is always kept
    assert {r["query"]: r["matched"] for r in got["query_counts"] if r["matched"]} == \
        {queries[q]: n for q, n in per_query.items()}
    kept = {(r["url"], r["caption"]) for r in got["kept"]}
    assert len(kept) == c["kept"]
    assert all(p in kept for p, ids in matched.items() if any(per_query[q] <= T for q in ids))
    assert all(sorted(r["query_ids"]) == sorted(matched[(r["url"], r["caption"])]) for r in got["kept"])

    exact = build(runs, shared_data, capsys, "exact")  # at most T per query, among the same matches
    per_query_kept = Counter(q for r in exact["kept"] for q in r["query_ids"])
    assert max(per_query_kept.values()) <= T and exact["counts"]["matched"] == c["matched"]
