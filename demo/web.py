"""The demo's little web: generated images and captions served from a loopback HTTP server.

Everything is made here, offline and deterministically: drawn shapes (Pillow) and crops of the
photo matplotlib ships (grace_hopper.jpg), each with a caption that mentions WordNet words, plus a
few broken URLs (404, an HTML page posing as a JPEG, a truncated JPEG) so the report shows failures.
"""
from __future__ import annotations

import functools
import http.server
import io
import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from openwit.common.hashing import blake_u64

COLORS = {"red": (200, 30, 30), "green": (30, 160, 60), "blue": (40, 70, 200), "yellow": (230, 200, 20),
          "orange": (240, 130, 20), "purple": (120, 40, 160), "black": (10, 10, 10), "brown": (120, 70, 30)}
BACKGROUNDS = {"white": (250, 250, 250), "grey": (128, 128, 128), "pink": (250, 190, 200), "sand": (220, 200, 150)}
SHAPES = ["circle", "square", "triangle", "star", "ellipse", "rectangle", "cross", "diamond"]
PORTRAIT_CAPTIONS = [
    "Portrait of Grace Hopper, computer scientist and naval officer, in uniform",
    "Grace Hopper photographed in her navy uniform with a medal",
    "Black and white style portrait of a woman in a uniform",
    "Detail of an official portrait photograph: face and collar",
]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) // 2, (y0 + y1) // 2, (x1 - x0) // 2
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "ellipse":
        draw.ellipse((x0, y0 + r // 2, x1, y1 - r // 2), fill=fill)
    elif shape in ("square", "rectangle"):
        draw.rectangle(box if shape == "square" else (x0, y0 + r // 3, x1, y1 - r // 3), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    elif shape == "cross":
        w = r // 3
        draw.rectangle((cx - w, y0, cx + w, y1), fill=fill)
        draw.rectangle((x0, cy - w, x1, cy + w), fill=fill)
    else:  # star
        import math
        pts = [(cx + (r if i % 2 == 0 else r // 2.5) * math.sin(i * math.pi / 5),
                cy - (r if i % 2 == 0 else r // 2.5) * math.cos(i * math.pi / 5)) for i in range(10)]
        draw.polygon(pts, fill=fill)


def shape_image(i: int) -> tuple[bytes, str]:
    """The i-th drawn image (JPEG bytes) and its caption; sizes and aspect ratios vary."""
    h = blake_u64("demo-shape", i)
    shape = SHAPES[h % len(SHAPES)]
    color = list(COLORS)[(h >> 8) % len(COLORS)]
    bg = list(BACKGROUNDS)[(h >> 16) % len(BACKGROUNDS)]
    w, hgt = 160 + (h >> 24) % 480, 160 + (h >> 34) % 320
    img = Image.new("RGB", (w, hgt), BACKGROUNDS[bg])
    side = min(w, hgt) * 3 // 4
    x0, y0 = (w - side) // 2, (hgt - side) // 2
    _draw_shape(ImageDraw.Draw(img), shape, (x0, y0, x0 + side, y0 + side), COLORS[color])
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    caption = f"A {color} {shape} drawn on a {bg} background"
    return buf.getvalue(), caption


def portrait_images() -> list[tuple[bytes, str]]:
    """Crops of matplotlib's sample photo (shipped inside the matplotlib wheel)."""
    import matplotlib
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.exists():
        return []
    photo = Image.open(path).convert("RGB")
    W, H = photo.size
    boxes = [(0, 0, W, H), (0, 0, W, H * 2 // 3), (W // 6, H // 10, W * 5 // 6, H * 3 // 5), (W // 4, H // 8, W * 3 // 4, H // 2)]
    out = []
    for box, caption in zip(boxes, PORTRAIT_CAPTIONS):
        buf = io.BytesIO()
        photo.crop(box).save(buf, "JPEG", quality=90)
        out.append((buf.getvalue(), caption))
    return out


def write_site(root: str, n_shapes: int = 240) -> list[tuple[str, str]]:
    """Write the demo's files under `root`; return (path under root, caption) pairs, broken ones included."""
    os.makedirs(root, exist_ok=True)
    items = [shape_image(i) for i in range(n_shapes)] + portrait_images()
    pairs = []
    for i, (data, caption) in enumerate(items):
        name = f"img/{i:05d}.jpg"
        os.makedirs(os.path.join(root, "img"), exist_ok=True)
        Path(root, name).write_bytes(data)
        pairs.append((name, caption))
    # Broken on purpose, so the report shows failure reasons.
    Path(root, "img/not-really.jpg").write_bytes(b"<html><body>This is a web page, not a picture</body></html>")
    Path(root, "img/truncated.jpg").write_bytes(items[0][0][: len(items[0][0]) // 3])
    pairs += [("img/not-really.jpg", "A red circle that is actually a web page"),
              ("img/truncated.jpg", "A green square cut short by a broken transfer"),
              ("img/missing.jpg", "A blue triangle that was deleted from the server")]
    return pairs


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the demo prints its own progress
        pass


class SiteServer:
    """A threaded HTTP server on 127.0.0.1 serving `root`; a context manager."""

    def __init__(self, root: str):
        handler = functools.partial(_QuietHandler, directory=root)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "SiteServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_caption_table(path: str, base_url: str, pairs: list[tuple[str, str]]) -> str:
    """An img2dataset-style url+caption Parquet table (columns `url`, `caption`)."""
    table = pa.table({"url": [base_url + p for p, _ in pairs], "caption": [c for _, c in pairs]})
    pq.write_table(table, path)
    return path
