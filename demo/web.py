"""The demo's internet: one HTTP forward proxy on 127.0.0.1 that answers for the demo's made-up hosts.

The crawl (crawl.py) and `openwit-build --proxy` ask it for absolute URLs, as any client asks a
proxy; it serves `root/<host>/<path>` (the files site.py wrote) with these behaviours:

  /members/...   X-Robots-Tag: noai (the owner opts the pictures out of AI datasets)
  /slow/...      no answer until the server stops (the downloader's deadline must end it)
  /error/...     500 Internal Server Error
  /go/NAME       302 to http://169.254.169.254/latest/meta-data/NAME (a cloud metadata address)
  unknown host   502 Bad Gateway, as a proxy whose name lookup failed answers
  missing file   404

Because the proxy resolves the names, `openwit-build` runs without `--allow-private-addresses`:
its private-address guard stays on and refuses the literal private IPs on the pages. Responses
carry a fixed Date, so a crawl of the same files gives the same bytes.
"""
from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

CRAWL_DATE = "Mon, 15 Jan 2024 12:00:00 GMT"
_TYPES = {".html": "text/html", ".jpg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".txt": "text/plain"}
_SLOW_LIMIT_S = 120  # a slow answer never outlives this, whatever the client does


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args) -> None:  # the demo prints its own progress
        pass

    def date_time_string(self, timestamp=None) -> str:
        return CRAWL_DATE

    def version_string(self) -> str:
        return "openwit-demo-web/1.0"

    def _send(self, status: int, body: bytes, ctype: str, headers: tuple = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        try:
            self._route()
        except OSError:  # the client went away
            self.close_connection = True

    def _route(self) -> None:
        url = urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            return self._send(400, b"this is the demo's proxy: ask for absolute http:// URLs", "text/plain")
        host, path = url.hostname, unquote(url.path) or "/"
        root = self.server.root
        if not os.path.isdir(os.path.join(root, host)):
            return self._send(502, f"cannot resolve {host}".encode(), "text/plain")
        if path.startswith("/slow/"):
            self.server.stopping.wait(_SLOW_LIMIT_S)
            self.close_connection = True
            return None
        if path.startswith("/error/"):
            return self._send(500, b"internal server error", "text/plain")
        if path.startswith("/go/"):
            target = "http://169.254.169.254/latest/meta-data/" + path[len("/go/"):]
            return self._send(302, b"", "text/plain", (("Location", target),))
        parts = [p for p in path.split("/") if p]
        file = os.path.join(root, host, *parts)
        if ".." in parts or not os.path.isfile(file):
            return self._send(404, b"not found", "text/plain")
        with open(file, "rb") as f:
            body = f.read()
        headers = (("X-Robots-Tag", "noai"),) if path.startswith("/members/") else ()
        self._send(200, body, _TYPES.get(os.path.splitext(file)[1].lower(), "application/octet-stream"), headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class DemoWeb:
    """The proxy over the files under `root`; a context manager. `proxy` is its URL."""

    def __init__(self, root: str):
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.root = root
        self.httpd.stopping = threading.Event()
        self.proxy = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> "DemoWeb":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
