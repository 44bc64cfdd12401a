"""Make tests/fixtures/img2dataset/: one shard written by the real img2dataset (1.47), for the loader tests.

Images are generated here (Pillow gradients, so no third-party picture enters the repo), served on
127.0.0.1, and fetched by img2dataset with one URL that 404s (a failure row in the Parquet file).
Regenerate with (img2dataset from the venv bench_download.py uses: pip install img2dataset==1.47.0):

    .venv/bin/python benchmarks/bench_loader_img2dataset_fixture.py
"""
import functools
import http.server
import io
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "img2dataset"
IMG2DATASET = ROOT / "benchmarks" / ".venv-img2dataset" / "bin" / "img2dataset"
CAPTIONS = ["a red gradient", "a green square", "a wide blue banner", "a tall yellow strip",
            "a grey tile &amp; more", "café au lait"]
SIZES = [(80, 60), (64, 64), (120, 40), (30, 90), (50, 50), (70, 70)]


def _image(i: int, size: tuple[int, int]) -> bytes:
    w, h = size
    img = Image.new("RGB", size)
    img.putdata([((x * 255 // w + 40 * i) % 256, (y * 255 // h) % 256, (60 * i) % 256)
                 for y in range(h) for x in range(w)])
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "www").mkdir()
        for i, size in enumerate(SIZES):
            (tmp / "www" / f"{i}.jpg").write_bytes(_image(i, size))

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp / "www")))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = [f"{base}/{i}.jpg" for i in range(len(SIZES))] + [f"{base}/missing.jpg"]
        pq.write_table(pa.table({"URL": urls, "TEXT": CAPTIONS + ["never downloaded"]}), tmp / "urls.parquet")
        subprocess.run([str(IMG2DATASET), "--url_list", str(tmp / "urls.parquet"),
                        "--input_format", "parquet", "--url_col", "URL", "--caption_col", "TEXT",
                        "--output_format", "webdataset", "--output_folder", str(tmp / "out"),
                        "--image_size", "48", "--processes_count", "1", "--thread_count", "2",
                        "--distributor", "multiprocessing", "--retries", "0", "--timeout", "5"], check=True)
        server.shutdown()
        if OUT.exists():
            shutil.rmtree(OUT)
        OUT.mkdir(parents=True)
        for name in ("00000.tar", "00000.parquet", "00000_stats.json"):
            shutil.copy(tmp / "out" / name, OUT / name)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
