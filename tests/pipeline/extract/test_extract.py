"""Candidate extraction: HTML/WARC/WAT/table readers and caption rules, on real sample files."""
import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openwit.pipeline.extract.records import candidate, extract_file, file_kind
from openwit.pipeline.extract.html_page import RawImage, decode_html, images_from_html, resolve_url
from openwit.pipeline.extract.warc import BadInput, images_from_warc
from openwit.pipeline.extract.captions import junk_reason, normalize_caption


def _records(path):
    return [r for r, _ in extract_file(str(path)) if r is not None]


def _warc_record(warc_type: str, uri: str, content_type: str, block: bytes) -> bytes:
    head = (f"WARC/1.1\r\nWARC-Type: {warc_type}\r\nWARC-Target-URI: {uri}\r\n"
            f"WARC-Record-ID: <urn:uuid:{abs(hash(block)) % 10**12:012d}>\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(block)}\r\n\r\n").encode()
    return gzip.compress(head + block + b"\r\n\r\n")


def test_caption_rules():
    assert normalize_caption("  A&amp;B\u00a0 \t cat\x07\u200b ") == "A&B cat"
    assert normalize_caption("Apple iPhone") == "Apple iPhone"  # never lowercased
    assert junk_reason("") == "empty"
    assert junk_reason("ok") == "too_short"
    assert junk_reason("x" * 1001) == "too_long"
    for name in ("IMG_1234.jpg", "DSC01234", "photo-3.PNG", "img 20230101_1200", "banner11.gif"):
        assert junk_reason(name) == "filename_like", name
    for good in ("A cat on a mat", "IMG of the day", "Vol. 8 by Various Artists", "1975"):
        assert junk_reason(good) is None, good


def test_resolve_url():
    assert resolve_url("../a b.jpg", "http://x.org/p/q/page.html") == ("http://x.org/p/a b.jpg", None)
    assert resolve_url("//cdn.x.org/i.png", "https://x.org/") == ("https://cdn.x.org/i.png", None)
    assert resolve_url("data:image/png;base64,AAAA", "http://x.org/") == (None, "data_uri")
    assert resolve_url("javascript:void(0)", "http://x.org/") == (None, "bad_scheme")
    assert resolve_url("ftp://x.org/i.png", None) == (None, "bad_scheme")
    assert resolve_url("  ", "http://x.org/") == (None, "no_src")


def test_html_base_title_and_charset():
    html = ('<html><head><meta charset="windows-1251"><base href="/static/"></head><body>'
            '<img src="a.jpg" alt="Кошка на крыше"><img src="b.jpg" title="only title">'
            '<img src="c.jpg" alt="" title="empty alt, title used"><img src="d.jpg">'
            '<img src="data:image/gif;base64,R0lGOD" alt="inline"></body></html>').encode("cp1251")
    images = list(images_from_html(decode_html(html), "http://example.ru/dir/page.html"))
    assert images[0] == RawImage("http://example.ru/static/a.jpg", "Кошка на крыше", "http://example.ru/dir/page.html", None)
    assert images[1].text == "only title" and images[2].text == "empty alt, title used"
    assert images[3].text is None and images[4].reason == "data_uri"
    # an attribute written without a value is empty, as HTML says (real pages: WordPress's `<img ... alt />`)
    bare = list(images_from_html('<img src="e.jpg" alt><img src="f.jpg" alt title="bare alt, title used">', None))
    assert [i.text for i in bare] == ["", "bare alt, title used"]
    # the HTTP header's charset wins over a wrong guess; undecodable bytes never raise
    assert decode_html("é".encode("latin-1"), "ISO-8859-1") == "é"
    assert isinstance(decode_html(b"\xff\xfe\xfa broken", None), str)


def test_real_warcs(shared_data):
    warc = shared_data / "warc"
    dolma = _records(warc / "dolma-warc-sample-0000.warc.gz") + _records(warc / "dolma-warc-sample-0001.warc.gz")
    assert len(dolma) > 200
    assert all(r["url"].startswith(("http://", "https://")) and "<" not in r["page_url"] for r in dolma)
    resil = _records(warc / "resiliparse-warcfile.warc.gz")
    captions = {r["caption"] for r in resil}
    assert "Стратегия пожарной безопасности" in captions  # windows-1251 page (HTTP header)
    assert "中山英才网" in captions                         # gb2312 page
    assert "中国新闻网" in captions                         # no charset declared anywhere
    assert all(r["uid"] and r["source"].endswith("resiliparse-warcfile.warc.gz") for r in resil)


def test_truncated_warc_reports_offset(shared_data):
    with pytest.raises(BadInput) as err:
        with open(shared_data / "warc" / "resiliparse-clipped.warc.gz", "rb") as f:
            list(images_from_warc(f))
    assert "byte 0" in str(err.value) and "truncated" in str(err.value)
    # a good record before the damage is still extracted; the error names the damaged record's offset
    page = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<img src='/x.jpg' alt='A red bicycle'>"
    good = _warc_record("response", "http://a.org/", "application/http; msgtype=response", page)
    bad = _warc_record("response", "http://b.org/", "application/http; msgtype=response", page * 50)[:-40]
    got = []
    with pytest.raises(BadInput) as err:
        for image in images_from_warc(io.BytesIO(good + bad)):
            got.append(image)
    assert [i.url for i in got] == ["http://a.org/x.jpg"]
    assert err.value.offset == len(good)


def test_non_http_response_record_is_skipped():
    dns = _warc_record("response", "dns:example.com", "text/dns", b"20240101 example.com. 300 IN A 1.2.3.4\n")
    page = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<img src='x.jpg' alt='A red bike'>"
    html = _warc_record("response", "http://a.org/", "application/http; msgtype=response", page)
    assert [(i.url, i.text) for i in images_from_warc(io.BytesIO(dns + html))] == [("http://a.org/x.jpg", "A red bike")]


def test_wat_metadata_record(tmp_path):
    wat = {"Envelope": {
        "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": "http://shop.example/cats/index.html"},
        "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": {
            "Head": {"Base": "http://img.example/base/"},
            "Links": [
                {"path": "IMG@/src", "url": "tabby.jpg", "alt": "A tabby cat asleep"},
                {"path": "IMG@/src", "url": "/siamese.png", "title": "Siamese cat portrait"},
                {"path": "A@/href", "url": "/next", "text": "Next page"},
                {"path": "IMG@/src", "url": "data:image/png;base64,AA", "alt": "inline pixel"},
                {"path": "IMG@/src", "url": "spacer.gif"},
            ]}}}}}
    path = tmp_path / "sample.warc.wat.gz"
    path.write_bytes(_warc_record("metadata", "http://shop.example/cats/index.html", "application/json",
                                  json.dumps(wat).encode()))
    assert file_kind(str(path)) == "warc"
    results = list(extract_file(str(path)))
    records = [r for r, _ in results if r]
    assert [(r["url"], r["caption"]) for r in records] == [
        ("http://img.example/base/tabby.jpg", "A tabby cat asleep"),
        ("http://img.example/siamese.png", "Siamese cat portrait")]
    assert records[0]["page_url"] == "http://shop.example/cats/index.html"
    assert sorted(reason for r, reason in results if r is None) == ["data_uri", "no_text"]


def test_tables(shared_data, tmp_path):
    laion = _records(shared_data / "metadata" / "img2dataset_test_10000.parquet")
    assert len(laion) > 9000 and laion[0]["caption"].startswith("Classical Masterpieces")
    cc3m = _records(shared_data / "metadata" / "cc3m_Train_GCC-training.first5.tsv")
    assert len(cc3m) == 5 and cc3m[0]["caption"] == "a very typical bus station"
    assert cc3m[0]["url"].startswith("http://lh6.ggpht.com/") and cc3m[0]["page_url"] is None

    rows = [{"url": "https://x.org/1.jpg", "caption": "A dog on a beach"},
            {"url": "https://x.org/2.jpg", "caption": ""},
            {"url": "not a url", "caption": "Broken URL row"}]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    results = list(extract_file(str(jsonl)))
    assert results[0][0]["caption"] == "A dog on a beach"
    assert [reason for _, reason in results] == [None, "empty", "bad_scheme"]

    csv_path = tmp_path / "custom.csv.gz"
    csv_path.write_bytes(gzip.compress(b'id,img,alt text\n1,https://x.org/a.jpg,"Sunset, over the sea"\n'))
    got = [r for r, _ in extract_file(str(csv_path), "img", "alt text") if r]
    assert [(r["url"], r["caption"]) for r in got] == [("https://x.org/a.jpg", "Sunset, over the sea")]
    with pytest.raises(BadInput, match="no url/caption columns"):
        list(extract_file(str(csv_path)))

    pq_path = tmp_path / "datacomp.parquet"
    pq.write_table(pa.table({"uid": ["u1"], "url": ["http://y.org/i.webp"], "text": ["Mountain lake at dawn"]}), pq_path)
    assert [r["caption"] for r in _records(pq_path)] == ["Mountain lake at dawn"]


def test_candidate_drop_reasons():
    assert candidate(RawImage(None, "A cat", "http://p/", "data_uri"), "f")[1] == "data_uri"
    assert candidate(RawImage("http://x/i.jpg", None, "http://p/", None), "f")[1] == "no_text"
    assert candidate(RawImage("http://x/i.jpg", "IMG_1234.JPG", None, None), "f")[1] == "filename_like"
    rec, reason = candidate(RawImage("http://x/i.jpg", " A  cat ", None, None), "f")
    assert reason is None and rec["caption"] == "A cat" and len(rec["uid"]) == 32


def test_lone_surrogates_from_json(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text('{"url": "https://x.org/a.jpg", "caption": "A cat \\ud800 on a mat"}\n'
                    '{"url": "https://x.org/\\udc00.jpg", "caption": "A dog in the park"}\n')
    results = list(extract_file(str(path)))
    assert results[0][0]["caption"] == "A cat on a mat"
    assert results[1] == (None, "bad_url")
    pa.Table.from_pylist([results[0][0]])  # storable
