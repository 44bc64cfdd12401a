"""End-to-end: real images and misbehaving routes on a loopback server → shards, resume, retry, errors.

Drives `python -m openwit.pipeline.shards` (in-process `main`, FnApiRunner) on candidate Parquet.
"""
import hashlib
import http.server
import io
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from openwit.common.hashing import blake_hex
from openwit.pipeline.shards import main

IMAGE_DIRS = ("skimage", "sklearn", "img2dataset_tests")


def _bomb_png() -> bytes:
    """A tiny PNG whose header claims 20000×20000 pixels (decompression bomb)."""
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    images: dict = {}
    flaky_ok = False
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", ctype="image/jpeg", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0]
        name = path.rsplit("/", 1)[-1]
        if path.startswith("/img/") and name in self.images:
            return self._send(200, self.images[name])
        if path == "/html":
            return self._send(200, b"<html><body>not an image</body></html>")
        if path == "/truncated":
            return self._send(200, self.images["china.jpg"][:3000])
        if path == "/bomb":
            return self._send(200, BOMB, "image/png")
        if path == "/noai":
            return self._send(200, self.images["flower.jpg"], headers=[("X-Robots-Tag", "noai")])
        if path == "/flaky":
            return self._send(200, self.images["rocket.jpg"]) if _Handler.flaky_ok else self._send(503, b"busy")
        if path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100):
                try:
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.5)
            return
        return self._send(404, b"nope", "text/plain")


BOMB = _bomb_png()


@pytest.fixture(scope="module")
def server(shared_data):
    images = {}
    for d in IMAGE_DIRS:
        for p in sorted((shared_data / "images" / d).glob("*")):
            if p.suffix in (".jpg", ".png"):
                images[p.name] = p.read_bytes()
    _Handler.images = images
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", sorted(images)
    srv.shutdown()


BAD = {"/missing.jpg": ("failed_to_download", "http_404"), "/html": ("failed_to_download", "not_an_image"),
       "/truncated": ("failed_to_resize", "truncated_image"), "/bomb": ("failed_to_resize", "decompression_bomb"),
       "/slow": ("failed_to_download", "timeout"), "/flaky": ("failed_to_download", "http_503"),
       "/noai": ("failed_to_download", "opt_out_noai")}


def _candidates(tmp_path: Path, base: str, names: list[str]) -> str:
    rows = [{"url": f"{base}/img/{n}", "caption": f"photo {n}"} for n in names]
    rows += [{"url": f"{base}{p}", "caption": f"bad {p}"} for p in BAD]
    for r in rows:
        r.update(uid=blake_hex(r["url"], r["caption"]), query_ids=[len(r["caption"])], source="t", page_url=None)
    path = tmp_path / "cands.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def _flags(out, cands, *extra):
    return ["--candidates", cands, "--out", str(out), "--samples-per-shard", "8", "--image-size", "64",
            "--allow-private-addresses", "--timeout", "3", "--retries", "0", *extra]


def _digest(out: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())
            if p.is_file() and p.name[0].isdigit()}


@pytest.fixture(scope="module")
def built(server, tmp_path_factory):
    base, names = server
    tmp = tmp_path_factory.mktemp("shards")
    cands = _candidates(tmp, base, names)
    out = tmp / "out"
    _Handler.flaky_ok = False
    start = time.monotonic()
    assert main(_flags(out, cands)) == 0
    return out, cands, base, names, time.monotonic() - start


def _rows(out: Path) -> list[dict]:
    return pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("*.parquet"))]).to_pylist()


def test_every_url_gets_its_status_and_reason(built):
    out, _, base, names, secs = built
    rows = {r["url"]: r for r in _rows(out)}
    assert len(rows) == len(names) + len(BAD)
    for n in names:
        assert rows[f"{base}/img/{n}"]["status"] == "success", rows[f"{base}/img/{n}"]
    for path, (status, reason) in BAD.items():
        row = rows[base + path]
        assert (row["status"], row["error_message"].split(":")[0]) == (status, reason), row
    assert secs < 60  # the trickling /slow route is cut by the 3 s deadline


def test_shards_are_full_readable_and_counted(built):
    out, _, _, names, _ = built
    n = len(names) + len(BAD)
    assert sorted(p.name for p in out.glob("*.tar")) == [f"{i:05d}.tar" for i in range((n + 7) // 8)]
    sizes = [pq.read_metadata(p).num_rows for p in sorted(out.glob("*.parquet"))]
    assert sizes[:-1] == [8] * (len(sizes) - 1)
    samples = list(wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False)
                   .decode("pil").to_tuple("jpg", "txt"))
    assert len(samples) == len(names)
    assert all(img.size == (64, 64) and txt.startswith("photo ") for img, txt in samples)


def test_rerun_skips_and_is_byte_identical(built):
    out, cands, *_ = built
    before = _digest(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(_flags(out, cands)) == 0
    assert _digest(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes  # skipped, not rewritten


def test_changed_setting_stops_with_one_line(built, capsys):
    out, cands, *_ = built
    before = _digest(out)
    assert main(_flags(out, cands, "--image-size", "32")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "image_size: 64 -> 32" in err[0]
    assert _digest(out) == before


def test_retry_failed_refetches_only_failures(built):
    out, cands, base, *_ = built
    _Handler.flaky_ok = True
    assert main(_flags(out, cands, "--retry-failed")) == 0
    rows = {r["url"]: r for r in _rows(out)}
    assert rows[base + "/flaky"]["status"] == "success"
    assert rows[base + "/bomb"]["status"] == "failed_to_resize"
    keys = [s["__key__"] for s in wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False)]
    assert rows[base + "/flaky"]["key"] in keys and keys == sorted(keys)
