"""WARC candidate extraction: openwit (FastWARC + selectolax/lexbor) vs warcio + BeautifulSoup(lxml).

warcio + BeautifulSoup is what Common Crawl's own examples (cc-pyspark) and most scripts use. Both
sides read the same real WARC files (dolma + Common Crawl samples of ../shared/data/warc), find every
`<img>` of every HTML response with its alt (else title) text, decode with the page's charset, and
resolve src against the page URL and `<base href>`. The baseline runs in its own venv:

    python3 -m venv benchmarks/.venv-warcio
    benchmarks/.venv-warcio/bin/pip install warcio beautifulsoup4 lxml
    .venv/bin/python benchmarks/bench_extract.py --repeat 20
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import time

from openwit.pipeline.extract.warc import images_from_warc

HERE = os.path.dirname(os.path.abspath(__file__))
WARCS = sorted(glob.glob(os.path.join(HERE, "..", "..", "shared", "data", "warc", "*-warc*.warc.gz")))

BASELINE = r"""
import json, sys, time
from urllib.parse import urljoin
from bs4 import BeautifulSoup
from warcio.archiveiterator import ArchiveIterator
files, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
t0 = time.process_time(); pages = images = with_text = 0
for _ in range(repeat):
    for path in files:
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type != "response":
                    continue
                ctype = rec.http_headers.get_header("Content-Type") or ""
                if ctype and "html" not in ctype.lower():
                    continue
                page = rec.rec_headers.get_header("WARC-Target-URI").strip("<>")
                body = rec.content_stream().read()
                charset = ctype.lower().split("charset=")[-1].strip() if "charset=" in ctype.lower() else None
                soup = BeautifulSoup(body, "lxml", from_encoding=charset)
                pages += 1
                base = soup.find("base", href=True)
                base = urljoin(page, base["href"]) if base else page
                for img in soup.find_all("img"):
                    images += 1
                    text = img.get("alt") or img.get("title")
                    if text and text.strip() and img.get("src"):
                        urljoin(base, img["src"].strip())
                        with_text += 1
print(json.dumps({"cpu": time.process_time() - t0, "pages": pages, "images": images, "with_text": with_text}))
"""


def run_openwit(files: list[str], repeat: int) -> dict:
    t0 = time.process_time()
    images = with_text = 0
    for _ in range(repeat):
        for path in files:
            with open(path, "rb") as f:
                for image in images_from_warc(f):
                    images += 1
                    with_text += bool(image.text and image.text.strip() and image.url)
    return {"cpu": time.process_time() - t0, "images": images, "with_text": with_text}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--baseline-python", default=os.path.join(HERE, ".venv-warcio", "bin", "python"))
    args = ap.parse_args()
    ours = run_openwit(WARCS, args.repeat)
    proc = subprocess.run([args.baseline_python, "-c", BASELINE, json.dumps(WARCS), str(args.repeat)],
                          capture_output=True, text=True, check=True)
    base = json.loads(proc.stdout)
    mb = sum(os.path.getsize(f) for f in WARCS) * args.repeat / 1e6
    print(f"files: {len(WARCS)} x {args.repeat}  ({mb:.1f} MB gzipped), HTML pages: {base['pages']}")
    print(f"openwit (fastwarc+selectolax): {ours['cpu']:.2f} CPU-s  {mb / ours['cpu']:.1f} MB/s  "
          f"imgs {ours['images']}  with text+src {ours['with_text']}")
    print(f"warcio + BeautifulSoup(lxml) : {base['cpu']:.2f} CPU-s  {mb / base['cpu']:.1f} MB/s  "
          f"imgs {base['images']}  with text+src {base['with_text']}")
    print(f"ratio: {base['cpu'] / ours['cpu']:.1f}x")


if __name__ == "__main__":
    main()
