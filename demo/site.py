"""The demo's web site: HTML pages whose `<img>` tags carry alt texts, and the files behind them.

`write_site(root, n_pictures)` writes every file under `root/<host>/<path>` and returns the page
URLs (what the demo crawls into a WARC) and one `Img` per `<img>` tag with the outcome the road
should give it, so a test can check the accounting. What the pages hold, as real pages do:

- gallery pages on www.shapes-gallery.test: drawn pictures with root-relative, page-relative,
  absolute and protocol-relative `src`s, and pages with a `<base href>` pointing at the CDN host;
  on every page the same logo (a duplicate), a spacer without alt, a `data:` URI, a `mailto:`
  src and a camera file name as alt text;
- a museum page in windows-1252 (declared only in a `<meta>`): photos shipped inside matplotlib;
- a blog page of odd ones: opted out (`X-Robots-Tag: noai`, see web.py), slow, deleted (404),
  failing (500), a host that does not exist, private addresses (literal and behind a redirect),
  an HTML page and a truncated JPEG posing as pictures, a 1×1 counter pixel, alt texts that match
  no (English) query.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageDraw

from openwit.demo import draw

WWW = "www.shapes-gallery.test"
CDN = "cdn.shapes-gallery.test"
BLOG = "blog.shapes-gallery.test"
MUSEUM = "photos.museum.test"
PER_PAGE = 30


class Img(NamedTuple):
    url: str | None      # absolute URL the `src` resolves to (None: dropped before fetching)
    alt: str | None
    expect: str          # ok | duplicate | a drop reason at extraction | a fetch/shard failure reason


class Site(NamedTuple):
    pages: list[str]     # page URLs, in crawl order
    images: list[Img]    # every <img> of every page, in page order


def _put(root: str, url: str, data: bytes) -> None:
    host, _, path = url.split("://", 1)[1].partition("/")
    target = Path(root, host, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _logo() -> bytes:
    img = Image.new("RGB", (120, 40), (250, 250, 250))
    d = ImageDraw.Draw(img)
    for k, shape in enumerate(("circle", "square", "triangle")):
        draw._draw_shape(d, shape, (8 + 38 * k, 6, 36 + 38 * k, 34), list(draw.COLOURS.values())[k])
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _pixel() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (40, 70, 210)).save(buf, "GIF")
    return buf.getvalue()


def _html(title: str, body: list[str], head: str = '<meta charset="utf-8">') -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head>" + head + f"<title>{title}</title></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _gallery_page(root: str, p: int, first: int, last: int, n_pages: int) -> tuple[str, list[Img]]:
    """Gallery page p (pictures first..last-1); the way `src`s are written cycles with p."""
    page_url = f"http://{WWW}/gallery/page-{p:02d}.html"
    kind = p % 4
    head = '<meta charset="utf-8">' + (f'<base href="http://{CDN}/2024/">' if kind == 1 else "")
    body = [f'<h1>Shapes gallery, page {p + 1} of {n_pages}</h1>',
            '<img src="/static/logo.png" alt="Shapes gallery logo">' if kind != 1
            else f'<img src="http://{WWW}/static/logo.png" alt="Shapes gallery logo">',
            '<img src="/static/spacer.gif" width="1" height="1">',
            '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="a red dot">',
            '<img src="mailto:art@shapes-gallery.test" alt="Write to the gallery about a red star">',
            '<img src="upload/IMG_0042.JPG" alt="IMG_0042.JPG">']
    images = [Img(f"http://{WWW}/static/logo.png", "Shapes gallery logo", "ok" if p == 0 else "duplicate"),
              Img(None, None, "no_text"), Img(None, "a red dot", "data_uri"),
              Img(None, "Write to the gallery about a red star", "bad_scheme"), Img(None, "IMG_0042.JPG", "filename_like")]
    for i in range(first, last):
        data, alt, _ = draw.shape_picture(i)
        name = f"{i:05d}.jpg"
        if kind == 0:
            url, src = f"http://{WWW}/img/{name}", f"/img/{name}"
        elif kind == 1:
            url, src = f"http://{CDN}/2024/{name}", name  # resolved against <base href>
        elif kind == 2:
            url, src = f"http://{WWW}/img/{name}", f"../img/{name}"
        else:
            url = f"http://{CDN}/2024/{name}"
            src = url if i % 2 else url[len("http:"):]  # absolute, or protocol-relative
        _put(root, url, data)
        body.append(f'<figure><img src="{src}" alt="{alt}"><figcaption>No. {i}</figcaption></figure>')
        images.append(Img(url, alt, "ok"))
    if p + 1 < n_pages:
        body.append(f'<a href="page-{p + 1:02d}.html">next page</a>')
    _put(root, page_url, _html(f"Shapes gallery – page {p + 1}", body, head).encode("utf-8"))
    return page_url, images


def _museum_page(root: str) -> tuple[str, list[Img]]:
    """A windows-1252 page (curly quotes, dashes, accents) declared only in its <meta>."""
    page_url = f"http://{MUSEUM}/collection/portraits.html"
    body, images = ["<h1>Portr\u00e4ts \u2013 the museum\u2019s collection</h1>"], []
    for k, (data, alt) in enumerate(draw.package_photos()):
        url = f"http://{MUSEUM}/collection/images/photo-{k}.jpg"
        _put(root, url, data)
        alt = alt.replace("Portrait", "Portr\u00e4t").replace("uniform", "uniform \u2013 caf\u00e9 \u201cnavy\u201d")
        body.append(f'<p><img src="images/photo-{k}.jpg" alt="{alt}"></p>')
        images.append(Img(url, alt, "ok"))
    head = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
    _put(root, page_url, _html("Portraits \u2013 Museum", body, head).encode("cp1252"))
    return page_url, images


def _odd_ones(root: str) -> tuple[str, list[Img]]:
    """The blog page whose pictures fail, each in its own way (web.py serves the behaviours)."""
    page_url = f"http://{BLOG}/2024/01/odd-ones.html"
    extra = [draw.shape_picture(10_000_000 + k) for k in range(12)]
    cases = [  # (src as written, URL it resolves to or None, expected outcome, file to put there)
        *[(f"/members/{k}.jpg", f"http://{BLOG}/members/{k}.jpg", "opt_out_noai", extra[k][0]) for k in range(4)],
        ("/slow/wave.jpg", f"http://{BLOG}/slow/wave.jpg", "timeout", extra[4][0]),
        ("/img/deleted.jpg", f"http://{BLOG}/img/deleted.jpg", "http_404", None),
        ("/error/busy.jpg", f"http://{BLOG}/error/busy.jpg", "http_500", extra[5][0]),
        ("http://old-cdn.shapes-gallery.test/square.jpg", "http://old-cdn.shapes-gallery.test/square.jpg",
         "http_502", None),
        ("http://10.0.0.7/cam/snapshot.jpg", "http://10.0.0.7/cam/snapshot.jpg", "private_address", None),
        ("/go/sunset.jpg", f"http://{BLOG}/go/sunset.jpg", "private_address", None),  # 302 → 169.254.169.254
        ("/img/not-really.jpg", f"http://{BLOG}/img/not-really.jpg", "not_an_image",
         b"<html><body>This is a web page, not a picture</body></html>"),
        ("/img/cut-short.jpg", f"http://{BLOG}/img/cut-short.jpg", "failed_to_resize",
         extra[6][0][: len(extra[6][0]) // 3]),
        ("/img/counter.gif", f"http://{BLOG}/img/counter.gif", "filtered", _pixel()),
        ("/img/rating.png", f"http://{BLOG}/img/rating.png", "no_match", None),  # no English query in these
        ("/img/zukei.jpg", f"http://{BLOG}/img/zukei.jpg", "no_match", None),
    ]
    alts = [extra[k][1] for k in range(4)] + [
        "A blue circle, slow to load", "A green square that was deleted", "A yellow star on a busy server",
        "A red square on an old server", "Webcam snapshot of a red square on the office wall",
        "An orange circle at sunset (redirect)", "A red circle that is actually a web page",
        "A green triangle cut short by a broken transfer", "Blue square visitor counter",
        "\u2605\u2605\u2605\u2605\u2606", "\u56f3\u5f62\u306e\u30b5\u30f3\u30d7\u30eb"]
    body, images = ["<h1>Odd ones</h1>", "<p>Pictures that did not make it into the dataset.</p>"], []
    for (src, url, expect, data), alt in zip(cases, alts):
        if data is not None:
            _put(root, url, data)
        body.append(f'<img src="{src}" alt="{alt}">')
        images.append(Img(url, alt, expect))
    _put(root, page_url, _html("Odd ones", body).encode("utf-8"))
    return page_url, images


def write_site(root: str, n_pictures: int = 1200) -> Site:
    """Write the site under `root` (one folder per host); return its pages and <img> tags."""
    os.makedirs(root, exist_ok=True)
    _put(root, f"http://{WWW}/static/logo.png", _logo())
    _put(root, f"http://{WWW}/static/spacer.gif", _pixel())
    _put(root, f"http://{WWW}/robots.txt", b"User-agent: *\nAllow: /\n")
    n_pages = max(1, -(-n_pictures // PER_PAGE))
    pages, images = [], []
    for p in range(n_pages):
        url, imgs = _gallery_page(root, p, p * PER_PAGE, min(n_pictures, (p + 1) * PER_PAGE), n_pages)
        pages.append(url)
        images += imgs
    for make in (_museum_page, _odd_ones):
        url, imgs = make(root)
        pages.append(url)
        images += imgs
    return Site(pages, images)
