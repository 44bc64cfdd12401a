"""Bad input to the candidates stage (issue 10): truncated WARCs, broken JSONL lines, BOMs, binary
Parquet columns, unknown file types, bidi overrides, bad shard sizes — each reported or counted."""
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openwit.common.errors import UserError
from openwit.pipeline import cli
from openwit.pipeline.candidates import expand_inputs
from openwit.pipeline.extract.records import extract_file
from openwit.pipeline.extract.warc import BadInput
from openwit.pipeline.shards import shard_config
from openwit.pipeline.extract.captions import normalize_caption

PAGE = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<img src='/%d.jpg' alt='A red bicycle number %d'>"


def _record(warc_type: str, n: int, block: bytes) -> bytes:
    head = (f"WARC/1.1\r\nWARC-Type: {warc_type}\r\nWARC-Target-URI: http://a{n}.org/\r\n"
            f"WARC-Record-ID: <urn:uuid:{n:012d}>\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
            f"Content-Type: application/http; msgtype={warc_type}\r\nContent-Length: {len(block)}\r\n\r\n").encode()
    return head + block + b"\r\n\r\n"


def _warc(pages: int) -> list[bytes]:
    """Common Crawl order: request, response per page; one record per list item."""
    out = []
    for n in range(pages):
        out.append(_record("request", n, b"GET / HTTP/1.1\r\nHost: a.org\r\n\r\n" + b"x" * 300))
        out.append(_record("response", n, PAGE % (n, n)))
    return out


def _extract(path):
    results = list(extract_file(str(path)))
    return [r for r, _ in results if r], [reason for r, reason in results if r is None]


@pytest.mark.parametrize("cut", ["gzip_member", "gzip_trailer", "plain_header", "plain_trailer"])
def test_truncated_warc_is_reported(tmp_path, cut):
    """A WARC cut inside a record FastWARC skips (a request) or inside a header used to end quietly."""
    records = _warc(3) + [_record("request", 9, b"GET /next HTTP/1.1\r\n\r\n" + b"y" * 400)]
    if cut.startswith("gzip"):
        members = [gzip.compress(r) for r in records]
        keep = len(members[-1]) // 2 if cut == "gzip_member" else len(members[-1]) - 3
        data, name = b"".join(members[:-1]) + members[-1][:keep], "cut.warc.gz"
        where = sum(map(len, members[:-1]))
    else:
        keep = 60 if cut == "plain_header" else len(records[-1]) - 2
        data, name = b"".join(records[:-1]) + records[-1][:keep], "cut.warc"
        where = sum(map(len, records[:-1]))
    path = tmp_path / name
    path.write_bytes(data)
    got = []
    with pytest.raises(BadInput, match="truncated") as err:
        for record, _ in extract_file(str(path)):
            got.append(record)
    assert err.value.offset == where
    assert [r["caption"] for r in got] == [f"A red bicycle number {n}" for n in range(3)]  # all before the cut
    whole = tmp_path / ("whole.warc.gz" if cut.startswith("gzip") else "whole.warc")
    whole.write_bytes(b"".join(gzip.compress(r) for r in records) if cut.startswith("gzip") else b"".join(records))
    assert len(_extract(whole)[0]) == 3  # the uncut file reads without complaint


def test_one_broken_jsonl_line_is_skipped_and_counted(tmp_path, caplog):
    lines = [json.dumps({"url": f"https://x.org/{i}.jpg", "caption": f"A dog on beach {i}"}) for i in range(4)]
    lines[1] = lines[1][:25]                     # cut mid-object
    lines.insert(3, "[1, 2, 3]")                 # valid JSON, not an object
    lines.insert(4, '"just a string"')
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    records, reasons = _extract(path)
    assert [r["caption"] for r in records] == ["A dog on beach 0", "A dog on beach 2", "A dog on beach 3"]
    assert sorted(reasons) == ["bad_json_line", "json_not_object", "json_not_object"]
    warnings = [r.getMessage() for r in caplog.records if "pairs.jsonl line" in r.getMessage()]
    assert len(warnings) == 2 and "line 2: bad JSON" in warnings[0]  # the first of each kind, with its line


def test_utf8_bom_is_read(tmp_path):
    bom = "\ufeff".encode("utf-8")
    (tmp_path / "a.csv").write_bytes(bom + b"url,caption\nhttps://x.org/a.jpg,A cat on a mat\n")
    (tmp_path / "b.tsv").write_bytes(bom + b"A dog in the park\thttps://x.org/b.jpg\n")  # CC3M style, no header
    (tmp_path / "c.jsonl").write_bytes(bom + b'{"url": "https://x.org/c.jpg", "caption": "A bird on a wire"}\n')
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(bom + b"URL,TEXT\nhttps://x.org/d.jpg,A fish in a bowl\n"))
    for name, caption in (("a.csv", "A cat on a mat"), ("b.tsv", "A dog in the park"),
                          ("c.jsonl", "A bird on a wire"), ("d.csv.gz", "A fish in a bowl")):
        records, reasons = _extract(tmp_path / name)
        assert [r["caption"] for r in records] == [caption] and reasons == [], name
    (tmp_path / "e.csv").write_text("url,caption\nhttps://x.org/e.jpg\n\nhttps://x.org/f.jpg,A frog on a log\n")
    records, reasons = _extract(tmp_path / "e.csv")
    assert [r["caption"] for r in records] == ["A frog on a log"] and reasons == ["short_row"]


def test_binary_parquet_columns_are_decoded(tmp_path, caplog):
    urls = [b"https://x.org/1.jpg", b"https://x.org/2.jpg", b"https://x.org/\xff.jpg", None]
    texts = ["Caf\u00e9 at night".encode(), b"bad \xc3\x28 bytes", b"A good caption", b"No url here"]
    path = tmp_path / "binary.parquet"
    pq.write_table(pa.table({"URL": pa.array(urls, pa.binary()), "TEXT": pa.array(texts, pa.large_binary())}), path)
    records, reasons = _extract(path)
    assert [(r["url"], r["caption"]) for r in records] == [("https://x.org/1.jpg", "Caf\u00e9 at night")]
    assert sorted(reasons) == ["bad_utf8", "bad_utf8", "no_src"]
    warned = [r.getMessage() for r in caplog.records if "binary-typed" in r.getMessage()]
    assert len(warned) == 1 and "URL, TEXT" in warned[0]


def test_unknown_input_type_is_rejected_up_front(tmp_path):
    (tmp_path / "pairs.csv").write_text("url,caption\nhttps://x.org/a.jpg,A cat\n")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match=r"unknown input file type: .*notes\.txt \(recognised: \.warc"):
        expand_inputs([str(tmp_path / "*")])
    assert expand_inputs([str(tmp_path / "*.csv")]) == [str(tmp_path / "pairs.csv")]


def test_unknown_input_type_stops_the_build_before_any_work(tmp_path, capsys):
    qdir = tmp_path / "q"
    qdir.mkdir()
    pq.write_table(pa.table({"query": ["cat"]}), qdir / "queries.parquet")
    (tmp_path / "x.xml").write_text("<a/>")
    assert cli.main(["--queries", str(qdir), "--input", str(tmp_path / "x.xml"), "--out", str(tmp_path / "o"),
                     "--stage", "candidates"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown input file type" in err[0] and ".jsonl" in err[0]
    assert not (tmp_path / "o").exists()


def test_bidi_controls_are_removed():
    assert normalize_caption("invoice\u202efdp.exe") == "invoicefdp.exe"
    assert normalize_caption("\u2066A\u2069 \u200fcat\u200e \u202aon\u202c a mat\u061c") == "A cat on a mat"


def test_zero_samples_per_shard_is_rejected_like_negative():
    for n in ("0", "-5"):
        args, _ = cli.parse_args(["--queries", "q", "--input", "a", "--out", "o", "--samples-per-shard", n])
        with pytest.raises(UserError, match=f"--samples-per-shard must be at least 1, got {n}"):
            shard_config(args, local=True)


def test_bad_rows_are_counted_by_the_pipeline(tmp_path, capsys):
    """End to end (Beam): a truncated WARC is a bad_input_file; the other drops have their reasons."""
    qdir = tmp_path / "q"
    qdir.mkdir()
    pq.write_table(pa.table({"query": ["bicycle", "dog", "cat"]}), qdir / "queries.parquet")
    records = _warc(2) + [_record("request", 9, b"GET / HTTP/1.1\r\n\r\n" + b"z" * 500)]
    members = [gzip.compress(r) for r in records]
    (tmp_path / "cut.warc.gz").write_bytes(b"".join(members)[:-20])
    (tmp_path / "rows.jsonl").write_text('{"url": "https://x.org/1.jpg", "caption": "A dog sleeping"}\n{"url": \n'
                                         '7\n{"url": "https://x.org/2.jpg", "caption": "A dog running"}\n')
    (tmp_path / "bom.csv").write_bytes("\ufeffurl,caption\nhttps://x.org/3.jpg,A cat \u202eon a mat\n".encode())
    inputs = [str(tmp_path / n) for n in ("cut.warc.gz", "rows.jsonl", "bom.csv")]
    assert cli.main(["--queries", str(qdir), "--input", *inputs, "--out", str(tmp_path / "out"),
                     "--stage", "candidates", "--runner", "FnApiRunner"]) == 0
    out = capsys.readouterr().out
    assert "3 input files (1 bad, see the warnings), 7 records read → 5 extracted" in out, out
    assert "at extraction bad_json_line 1, json_not_object 1" in out, out
    captions = sorted(pq.read_table(tmp_path / "out" / "candidates").column("caption").to_pylist())
    assert captions == ["A cat on a mat", "A dog running", "A dog sleeping", "A red bicycle number 0",
                        "A red bicycle number 1"]
