"""A real, misbehaving HTTP server (and a forward proxy) on 127.0.0.1 for downloader tests.

Use it as a context manager or through the pytest fixtures at the bottom (import them into a test
module: `from loopback_server import loopback_server  # noqa: F401`):

    with LoopbackServer() as srv:
        url = srv.url("/flaky/429/2/gen/64x48.jpg?retry_after=1")
        ...
        assert srv.count("/flaky/429/2/gen/64x48.jpg?retry_after=1") == 3

Routes (GET). `<rest>` is any other route, so wrappers compose: /chain/2/robots-tag/gen/8x8.png?v=noai
  /images/<dir>/<file>      real images from ../shared/data/images (404 when absent); srv.image_paths()
  /gen/<W>x<H>.<jpg|png|webp>  generated gradient image (Pillow), always available
  /bomb.png                 tiny PNG declaring 30000×30000 (decompression bomb; valid, ~110 kB)
  /truncated/<rest>         first half of <rest>'s body (a real JPEG cut in half), served as 200
  /gzip-bomb                Content-Encoding: gzip body of ~50 kB that inflates to 50 MB
  /html-as-jpeg             an HTML page with Content-Type image/jpeg
  /empty                    200 with an empty body
  /status/<code>            that status, always (?retry_after=S adds Retry-After)
  /flaky/<code>/<k>/<rest>  first k requests (per exact path+query) get <code>, then <rest>;
                            ?retry_after=S (seconds) or ?retry_after_date=S (HTTP-date S s ahead)
  /slow-headers/<secs>/<rest>  wait before the status line
  /trickle/<interval>/<n>   declares n bytes (JPEG magic first), sends 1 byte per interval
  /endless                  chunked JPEG-looking body that never ends (until the client leaves)
  /huge                     declares Content-Length 10**12, then dribbles
  /reset                    declares 100000 bytes, sends 1000, then resets the connection (RST)
  /redirect?to=URL&code=302 one redirect;   /chain/<n>/<rest>  n redirects, then <rest>
  /loop/<n>                 redirects forever (/loop/n → /loop/n+1)
  /to-private?ip=A          302 to http://A/latest/meta-data (default 169.254.169.254). Only for clients that
                            must refuse it (allow_private_addresses=False): others would really go there
  /robots-tag/<rest>?v=D&v=D  <rest> with one X-Robots-Tag header per v
  /robots.txt               srv.robots_txt (404 when None);   /echo-headers  request headers as JSON
Bookkeeping: srv.requests (RequestRecord list), srv.count(path), srv.max_in_flight (concurrent
requests), srv.max_connections (concurrent TCP connections), srv.reset_stats().
Loops are bounded and every waiting handler wakes up on close(), which joins the server threads.
"""
from __future__ import annotations

import http.client
import io
import json
import os
import socket
import struct
import ssl
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

IMAGES_DIR = Path(os.environ.get("OPENWIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "images"
_CTYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
_MAX_STREAM_SECONDS = 120  # no handler streams longer than this, whatever the client does
_cache: dict[str, bytes] = {}
_cache_lock = threading.Lock()


def _cached(key: str, make) -> bytes:
    with _cache_lock:
        if key not in _cache:
            _cache[key] = make()
        return _cache[key]


def generated_image(width: int, height: int, fmt: str = "jpg") -> bytes:
    """A deterministic gradient image of that size, encoded as jpg, png or webp."""
    def make() -> bytes:
        from PIL import Image
        img = Image.new("RGB", (width, height))
        img.putdata([((x * 255) // max(1, width - 1), (y * 255) // max(1, height - 1), 128)
                     for y in range(height) for x in range(width)])
        buf = io.BytesIO()
        img.save(buf, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt])
        return buf.getvalue()
    return _cached(f"gen/{width}x{height}.{fmt}", make)


def gzip_bomb(megabytes: int = 50) -> bytes:
    """gzip of a JPEG-looking body of `megabytes` MB (~50 kB on the wire): an HTTP-level bomb."""
    def make() -> bytes:
        z = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31 = gzip container
        parts = [z.compress(b"\xff\xd8\xff\xe0")] + [z.compress(bytes(1 << 20)) for _ in range(megabytes)]
        return b"".join(parts) + z.flush()
    return _cached(f"gzip-bomb/{megabytes}", make)


def self_signed_cert() -> tuple[str, str]:
    """(certfile, keyfile) of a self-signed certificate for 127.0.0.1 (needs `cryptography`)."""
    def make() -> bytes:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pem = _cached("tls/pem", make)
    path = os.path.join(tempfile.gettempdir(), f"openwit-loopback-{os.getpid()}.pem")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(pem)
    return path, path


def bomb_png(side: int = 30000) -> bytes:
    """A valid 1-bit grayscale PNG of side×side pixels (all black): ~110 kB that inflates to ~112 MB."""
    def make() -> bytes:
        row = b"\x00" * (1 + (side + 7) // 8)
        z = zlib.compressobj(9)
        idat = b"".join([z.compress(row * 1000) for _ in range(side // 1000)]
                        + [z.compress(row * (side % 1000)), z.flush()])

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return _cached(f"bomb/{side}", make)


@dataclass
class RequestRecord:
    method: str
    path: str                    # path + query exactly as requested
    headers: dict[str, str]
    time: float                  # time.monotonic() when the request line was read
    connection: int              # id of the TCP connection that carried it


@dataclass
class _Stats:
    requests: list[RequestRecord] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    max_connections: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end on their own, too
    server: "_Server"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._connection_opened(self)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._connection_closed(self)

    def do_GET(self) -> None:
        owner = self.server.owner
        owner._request_started(self)
        try:
            split = urlsplit(self.path)
            self.query = parse_qs(split.query)
            owner._serve(self, split.path.lstrip("/"))
        except ValueError:  # bad route parameter
            self.send(400, b"bad request", "text/plain")
        except OSError:  # the client went away (reset, broken pipe) or close() cut the socket
            self.close_connection = True
        finally:
            owner._request_finished()

    def send(self, status: int, body: bytes = b"", ctype: str = "application/octet-stream",
             headers: list[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = False   # server_close() joins handler threads
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 256  # listen backlog: the default 5 drops SYNs under a burst of connects

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up mid-request are expected
            super().handle_error(request, client_address)


class LoopbackServer:
    """The misbehaving image server (see the module doc for routes). Starts on a free port."""

    def __init__(self, images_dir: Path | str | None = None, host: str = "127.0.0.1", tls: bool = False):
        """tls=True serves https with a self-signed certificate (clients that verify must refuse it)."""
        self.images_dir = Path(images_dir) if images_dir else IMAGES_DIR
        self.scheme = "https" if tls else "http"
        self.robots_txt: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stats = _Stats()
        self._counts: dict[str, int] = {}
        self._sockets: dict[int, socket.socket] = {}
        self._httpd = _Server((host, 0), _Handler)
        self._httpd.owner = self
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self_signed_cert())
            # handshake in the handler thread, not in the accept loop
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"loopback-{self.port}", daemon=True)
        self._thread.start()
        bomb_png(), gzip_bomb()  # ~0.7 s of zlib once per process, so no request waits on it

    # --- public helpers -------------------------------------------------------------------------
    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.host}:{self.port}/{path.lstrip('/')}"

    def image_paths(self) -> list[str]:
        """Paths (/images/...) of every real image in the shared data (empty when absent)."""
        if not self.images_dir.is_dir():
            return []
        return sorted(f"/images/{p.relative_to(self.images_dir).as_posix()}"
                      for p in self.images_dir.glob("*/*") if p.suffix.lower() in _CTYPES)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._stats.requests)

    @property
    def max_in_flight(self) -> int:
        return self._stats.max_in_flight

    @property
    def max_connections(self) -> int:
        return self._stats.max_connections

    def count(self, path: str) -> int:
        """How many requests asked for exactly `path` (path + query as sent, leading '/')."""
        with self._lock:
            return sum(1 for r in self._stats.requests if r.path == path)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.requests.clear()
            self._stats.max_in_flight = self._stats.in_flight
            self._stats.max_connections = self._stats.connections
            self._counts.clear()

    def close(self) -> None:
        """Stop serving, wake every waiting handler, cut open connections, join the threads."""
        self._stop.set()
        self._httpd.shutdown()
        with self._lock:
            socks = list(self._sockets.values())
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LoopbackServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- bookkeeping ----------------------------------------------------------------------------
    def _connection_opened(self, h: _Handler) -> None:
        with self._lock:
            self._sockets[id(h)] = h.connection
            self._stats.connections += 1
            self._stats.max_connections = max(self._stats.max_connections, self._stats.connections)

    def _connection_closed(self, h: _Handler) -> None:
        with self._lock:
            self._sockets.pop(id(h), None)
            self._stats.connections -= 1

    def _request_started(self, h: _Handler) -> None:
        rec = RequestRecord(h.command, h.path, {k: v for k, v in h.headers.items()}, time.monotonic(), id(h))
        with self._lock:
            self._stats.requests.append(rec)
            self._stats.in_flight += 1
            self._stats.max_in_flight = max(self._stats.max_in_flight, self._stats.in_flight)

    def _request_finished(self) -> None:
        with self._lock:
            self._stats.in_flight -= 1

    def _bump(self, key: str) -> int:
        with self._lock:
            self._counts[key] = n = self._counts.get(key, 0) + 1
            return n

    # --- routes ---------------------------------------------------------------------------------
    def _static(self, path: str) -> tuple[bytes, str] | None:
        """Body and Content-Type of a plain content route, or None."""
        parts = path.split("/")
        if parts[0] == "images" and len(parts) == 3 and ".." not in parts:
            f = self.images_dir / parts[1] / parts[2]
            if f.is_file():
                return f.read_bytes(), _CTYPES.get(f.suffix.lower(), "application/octet-stream")
        if parts[0] == "gen" and len(parts) == 2:
            size, _, ext = parts[1].partition(".")
            w, _, h = size.partition("x")
            if w.isdigit() and h.isdigit() and ext in ("jpg", "png", "webp") and 0 < int(w) * int(h) <= 4_000_000:
                return generated_image(int(w), int(h), ext), _CTYPES["." + ext]
        if path == "bomb.png":
            return bomb_png(), "image/png"
        if path == "html-as-jpeg":
            return b"<!doctype html><html><body><h1>Not an image</h1></body></html>", "image/jpeg"
        if path == "empty":
            return b"", "image/jpeg"
        if parts[0] == "truncated":
            inner = self._static("/".join(parts[1:]))
            return (inner[0][: len(inner[0]) // 2], inner[1]) if inner else None
        return None

    def _serve(self, h: _Handler, path: str) -> None:
        parts = path.split("/")
        q = {k: v[-1] for k, v in h.query.items()}
        rest = "/".join(parts[3:] if parts[0] == "flaky" else parts[2:])
        static = self._static(path)
        if static is not None:
            return h.send(200, static[0], static[1])
        if parts[0] == "status" and len(parts) == 2 and parts[1].isdigit():
            extra = [("Retry-After", q["retry_after"])] if "retry_after" in q else []
            return h.send(int(parts[1]), f"status {parts[1]}".encode(), "text/plain", extra)
        if parts[0] == "flaky" and len(parts) >= 4:
            if self._bump(h.path) <= int(parts[2]):
                extra = []
                if "retry_after" in q:
                    extra.append(("Retry-After", q["retry_after"]))
                if "retry_after_date" in q:
                    extra.append(("Retry-After", formatdate(time.time() + float(q["retry_after_date"]), usegmt=True)))
                return h.send(int(parts[1]), b"try again later", "text/plain", extra)
            return self._serve(h, rest)
        if parts[0] == "slow-headers" and len(parts) >= 3:
            if self._stop.wait(float(parts[1])):
                return
            return self._serve(h, rest)
        if parts[0] == "robots-tag":
            inner = self._static("/".join(parts[1:]))
            if inner is None:
                return h.send(404, b"no such inner route", "text/plain")
            return h.send(200, inner[0], inner[1], [("X-Robots-Tag", v) for v in h.query.get("v", [])])
        if parts[0] == "redirect":
            return h.send(int(q.get("code", 302)), b"", "text/plain", [("Location", q.get("to", "/"))])
        if parts[0] == "chain" and len(parts) >= 3 and parts[1].isdigit():
            n = int(parts[1])
            query = urlsplit(h.path).query
            target = (f"/chain/{n - 1}/{rest}" if n > 1 else f"/{rest}") + (f"?{query}" if query else "")
            return h.send(302, b"", "text/plain", [("Location", target)])
        if parts[0] == "loop" and len(parts) == 2 and parts[1].isdigit():
            return h.send(302, b"", "text/plain", [("Location", f"/loop/{int(parts[1]) + 1}")])
        if path == "to-private":
            target = f"http://{q.get('ip', '169.254.169.254')}/latest/meta-data"
            return h.send(302, b"", "text/plain", [("Location", target)])
        if path == "robots.txt":
            if self.robots_txt is None:
                return h.send(404, b"no robots.txt", "text/plain")
            return h.send(200, self.robots_txt.encode(), "text/plain")
        if path == "echo-headers":
            return h.send(200, json.dumps(dict(h.headers.items())).encode(), "application/json")
        if parts[0] == "trickle" and len(parts) == 3:
            return self._trickle(h, float(parts[1]), int(parts[2]))
        if path in ("endless", "huge"):
            return self._endless(h, declared=10**12 if path == "huge" else None)
        if path == "gzip-bomb":
            return h.send(200, gzip_bomb(), "image/jpeg", [("Content-Encoding", "gzip")])
        if path == "reset":
            return self._reset(h)
        h.send(404, b"not found", "text/plain")

    def _trickle(self, h: _Handler, interval: float, n: int) -> None:
        body = (b"\xff\xd8\xff\xe0" + b"\x00" * n)[:n]
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(n))
        h.end_headers()
        h.wfile.flush()
        deadline = time.monotonic() + _MAX_STREAM_SECONDS
        for i in range(n):
            if self._stop.is_set() or time.monotonic() > deadline:
                break
            h.wfile.write(body[i:i + 1])
            h.wfile.flush()
            if self._stop.wait(interval):
                break
        h.close_connection = True

    def _endless(self, h: _Handler, declared: int | None) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        if declared is None:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(declared))
        h.end_headers()
        block = b"\xff\xd8\xff\xe0" + b"\x00" * (64 * 1024 - 4)
        deadline = time.monotonic() + _MAX_STREAM_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            if declared is None:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            else:  # /huge dribbles: the client should give up on the declared size alone
                h.wfile.write(block[:1024])
                self._stop.wait(0.05)
            h.wfile.flush()
        h.close_connection = True

    def _reset(self, h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        h.wfile.write(b"\xff\xd8\xff\xe0" + b"\x00" * 996)
        h.wfile.flush()
        self._stop.wait(0.05)
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.connection.close()  # linger 0: close sends RST, not FIN
        h.close_connection = True


class LoopbackCA:
    """A throwaway certificate authority for an intercepting proxy: trust `cert_file` (e.g. through
    SSL_CERT_FILE in a client process); `context_for(host)` is a server SSLContext whose certificate
    for `host` it signed (made once per host, one shared key). Needs `cryptography`."""

    def __init__(self):
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        self._x509, self._hashes, self._ser = x509, hashes, serialization
        self._now = datetime.datetime.now(datetime.timezone.utc)
        self._day = datetime.timedelta(days=1)
        self.dir = tempfile.mkdtemp(prefix="openwit-loopback-ca-")
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "openwit loopback test CA")])
        ski = x509.SubjectKeyIdentifier.from_public_key(self._key.public_key())
        self._ca = (x509.CertificateBuilder().subject_name(self._name).issuer_name(self._name)
                    .public_key(self._key.public_key()).serial_number(1)
                    .not_valid_before(self._now - self._day).not_valid_after(self._now + self._day)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                    .add_extension(ski, critical=False)
                    .sign(self._key, hashes.SHA256()))
        self.cert_file = os.path.join(self.dir, "ca.pem")
        with open(self.cert_file, "wb") as f:
            f.write(self._ca.public_bytes(serialization.Encoding.PEM))
        self._leaf_pem_key = self._leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption())
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def context_for(self, host: str) -> ssl.SSLContext:
        import ipaddress
        x509 = self._x509
        with self._lock:
            if host in self._contexts:
                return self._contexts[host]
            try:
                alt = x509.IPAddress(ipaddress.ip_address(host))
            except ValueError:
                alt = x509.DNSName(host)
            cert = (x509.CertificateBuilder()
                    .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, host[:64])]))
                    .issuer_name(self._name).public_key(self._leaf_key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(self._now - self._day).not_valid_after(self._now + self._day)
                    .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
                    .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                                   critical=False)
                    .sign(self._key, self._hashes.SHA256()))
            path = os.path.join(self.dir, f"leaf-{len(self._contexts)}.pem")
            with open(path, "wb") as f:
                f.write(cert.public_bytes(self._ser.Encoding.PEM) + self._leaf_pem_key)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(path)
            self._contexts[host] = ctx
            return ctx


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: "_Server"
    _tunnel: str | None = None  # "https://host[:port]" once a CONNECT tunnel is intercepted
    _HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
            "transfer-encoding", "upgrade"}

    def log_message(self, *args) -> None:
        pass

    def do_CONNECT(self) -> None:
        """With a CA: answer 200, then speak TLS as the requested host and serve the requests inside."""
        proxy: LoopbackProxy = self.server.owner
        if proxy.ca is None:
            return self.send_error(501, "CONNECT (https) is not supported by this test proxy (no ca=)")
        host, _, port = self.path.rpartition(":")
        host = host.strip("[]")
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        try:
            tls = proxy.ca.context_for(host).wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):  # the client refused our certificate, or left
            self.close_connection = True
            return
        import socketserver
        self.connection = tls
        self.rfile = tls.makefile("rb")
        self.wfile = socketserver._SocketWriter(tls)
        self._tunnel = f"https://{host}" + (f":{port}" if port not in ("", "443") else "")
        self.close_connection = False

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._tunnel is not None:
                try:
                    self.connection.close()  # the TLS socket took over the accepted one
                except OSError:
                    pass

    def do_GET(self) -> None:
        proxy: LoopbackProxy = self.server.owner
        raw = self.requestline.split(" ")[1]  # http.server collapses a leading "//" in self.path; keep it as sent
        absolute = self._tunnel + raw if self._tunnel and raw.startswith("/") else raw
        url = urlsplit(absolute)
        if url.scheme not in ("http", "https") or not url.hostname or (url.scheme == "https" and not self._tunnel):
            return self.send_error(400, "absolute http:// URL expected (forward proxy)")
        with proxy._lock:
            proxy.requests.append(absolute)
        if proxy.rewrite is not None:
            to = urlsplit(proxy.rewrite(absolute))
            target, path = to.netloc, to.path + (f"?{to.query}" if to.query else "")
        else:
            target = proxy.host_map.get(url.hostname, f"{url.hostname}:{url.port or 80}")
            path = url.path + (f"?{url.query}" if url.query else "")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self._HOP}
        headers["Via"] = "1.1 openwit-test-proxy"
        conn = http.client.HTTPConnection(target, timeout=proxy.timeout)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read(proxy.max_body)
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in self._HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError as e:
            try:
                self.send_error(502, f"upstream: {e}")
            except OSError:  # the client left (e.g. its deadline passed while upstream was slow)
                self.close_connection = True
        finally:
            conn.close()


class _ProxyServer(_Server):
    daemon_threads = True  # a client holding a keep-alive connection must not delay close()
    block_on_close = False


class LoopbackProxy:
    """A forward proxy on 127.0.0.1. `requests` lists the absolute URLs it forwarded; `host_map` sends
    a host name to "ip:port" (e.g. {"images.test": "127.0.0.1:8000"}), so a test can use a name that
    only the proxy can resolve; `rewrite(url) -> url` instead decides where every request goes (e.g.
    any URL of the open web → one of a LoopbackServer's routes). https (CONNECT) only with `ca=` a
    LoopbackCA: the proxy then intercepts the tunnel with a certificate that CA signs for the host,
    which clients accept only when they trust `ca.cert_file`."""

    def __init__(self, host_map: dict[str, str] | None = None, timeout: float = 30, max_body: int = 50_000_000,
                 rewrite=None, ca: LoopbackCA | None = None):
        self.host_map = dict(host_map or {})
        self.timeout, self.max_body = timeout, max_body
        self.rewrite, self.ca = rewrite, ca
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._httpd = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"loopback-proxy-{self.port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LoopbackProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture(scope="module")
def loopback_server():
    """One LoopbackServer per test module (use unique paths or reset_stats() between tests)."""
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def loopback_server_factory():
    """Call it to get fresh LoopbackServers (e.g. two hosts); all are closed after the test."""
    servers: list[LoopbackServer] = []

    def make(**kwargs) -> LoopbackServer:
        servers.append(LoopbackServer(**kwargs))
        return servers[-1]
    yield make
    for srv in servers:
        srv.close()


@pytest.fixture
def loopback_proxy():
    """A LoopbackProxy; set its host_map to route names to a LoopbackServer."""
    with LoopbackProxy() as proxy:
        yield proxy
