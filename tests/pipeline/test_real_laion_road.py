"""Acceptance on real metadata: the 10,000 real LAION rows (URL, TEXT) of
../shared/data/metadata/img2dataset_test_10000.parquet through the whole road — the query list from
the real enwiki excerpt, `openwit-build` (candidates, balancing, shards, report, tokenizer) as a
command, a few `openwit-train` steps, `openwit-eval`.

The URLs are the real ones, http and https (62%), fetched through a forward proxy on loopback: it
answers every URL — https too, by intercepting the CONNECT tunnel with a certificate of a throwaway
CA the command trusts through SSL_CERT_FILE — with one of the real photos in ../shared/data/images
or a real failure from the loopback server (404, 403, 500, an HTML page, a truncated JPEG, an
`X-Robots-Tag: noai`, an empty body, a server that never answers). The choice is a hash of the URL,
so every shard row's status and reason is checked against the URL's own fate."""
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from yarl import URL

from loopback_server import LoopbackCA, LoopbackProxy, LoopbackServer
from openwit.common.hashing import blake_u64
from openwit.queries import cli as queries_cli
from openwit.trainer.eval_cli import main as eval_main
from shard_helpers import CIFAR_TGZ

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
EXCERPT = "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LAION = "metadata/img2dataset_test_10000.parquet"
# fate of a URL by blake_u64(url) % 1000: (upper bound, route or None for a photo, expected reason)
FATES = [(650, None, None), (700, "/status/404", "http_404"), (730, "/status/403", "http_403"),
         (750, "/html-as-jpeg", "not_an_image"), (770, "/truncated/{photo}", "failed_to_resize"),
         (790, "/robots-tag/{photo}?v=noai", "opt_out_noai"), (800, "/status/500", "http_500"),
         (810, "/empty", "empty_body"), (812, "/slow-headers/30/{photo}", "timeout"), (1000, None, None)]


def fate(url: str) -> tuple[str, str | None]:
    """(loopback route, expected failure reason or None) for one URL of the open web, as written in
    the table or as requested (percent-encoded, IDNA host, no fragment: yarl's form of it)."""
    h = blake_u64(str(URL(url).with_fragment(None)), key="laion-road")
    photo_key = h >> 20
    for bound, route, reason in FATES:
        if h % 1000 < bound:
            photo = PHOTOS[photo_key % len(PHOTOS)]
            return (route or "/{photo}").format(photo=photo), reason
    raise AssertionError


PHOTOS: list[str] = []  # "images/<dir>/<file>" routes, filled by the fixture


def _photos(shared_data: Path, root: Path) -> tuple[list[str], Path]:
    """The real photos, plus 160 CIFAR-10 JPEGs unpacked; the rest of CIFAR (class folders) for zero-shot."""
    routes = []
    for d in ("skimage", "sklearn", "img2dataset_tests"):
        (root / "images" / d).mkdir(parents=True)
        for f in sorted((shared_data / "images" / d).iterdir()):
            if f.suffix.lower() in (".jpg", ".png"):
                (root / "images" / d / f.name).write_bytes(f.read_bytes())
                routes.append(f"images/{d}/{f.name}")
    (root / "images" / "cifar").mkdir()
    held_out = root / "zeroshot"
    with tarfile.open(shared_data / CIFAR_TGZ) as tar:
        seen: Counter = Counter()
        for m in sorted((m for m in tar.getmembers() if m.name.endswith(".jpg")), key=lambda m: m.name):
            cls = m.name.split("/")[-2]
            seen[cls] += 1
            if seen[cls] <= 16:
                name = f"{cls}-{os.path.basename(m.name)}"
                (root / "images" / "cifar" / name).write_bytes(tar.extractfile(m).read())
                routes += [f"images/cifar/{name}"] * 3  # small photos are the common case, as on the web
            elif seen[cls] <= 26:
                (held_out / cls).mkdir(parents=True, exist_ok=True)
                (held_out / cls / os.path.basename(m.name)).write_bytes(tar.extractfile(m).read())
    return routes, held_out


@pytest.fixture(scope="module")
def road(shared_data, wordnet_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("laion-road")
    PHOTOS[:], held_out = _photos(shared_data, root / "www")
    assert queries_cli.main(["--out", str(root / "queries"), "--wiki-dump", str(shared_data / EXCERPT),
                             "--wordnet-dir", str(wordnet_dir)]) == 0
    ca = LoopbackCA()
    with LoopbackServer(images_dir=root / "www" / "images") as srv, \
            LoopbackProxy(rewrite=lambda url: srv.url(fate(url)[0]), ca=ca) as proxy:
        env = dict(os.environ, SSL_CERT_FILE=ca.cert_file, SSL_CERT_DIR=ca.dir)
        cmd = [sys.executable, "-m", "openwit.pipeline", "--queries", str(root / "queries"),
               "--input", str(shared_data / LAION), "--out", str(root / "dataset"), "--proxy", proxy.url,
               "--samples-per-shard", "2000", "--image-size", "64", "--resize-mode", "center_crop",
               "--timeout", "4", "--retries", "1", "--tokenizer-vocab-size", "4000"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
        assert done.returncode == 0, done.stderr[-3000:]
        n_requests = len(proxy.requests)
    return root, held_out, done.stdout, n_requests


def test_laion_rows_through_the_whole_road(road, tmp_path, capsys):
    root, held_out, summary, n_requests = road
    dataset = root / "dataset"
    counts = json.loads((dataset / "candidate_counts.json").read_text())
    assert counts["extracted"] > 9000 and counts["kept"] > 3000, counts
    rows = [r for f in sorted(dataset.glob("[0-9]" * 5 + ".parquet")) for r in pq.read_table(f).to_pylist()]
    assert len(rows) == counts["kept"] and n_requests >= len(rows)
    # every attempted sample ended as its URL's fate says
    wrong, seen = [], Counter()
    for r in rows:
        _, reason = fate(r["url"])
        seen[reason] += 1
        if reason is None:
            ok = r["status"] == "success" and r["width"] == r["height"] == 64
        elif reason == "failed_to_resize":
            ok = r["status"] == "failed_to_resize"
        else:
            ok = r["status"] == "failed_to_download" and (r["error_message"] or "").startswith(reason)
        if not ok:
            wrong.append((r["url"], reason, r["status"], r["error_message"]))
    assert not wrong, wrong[:10]
    assert all(seen[reason] > 0 for _, _, reason in FATES), seen
    # the report and the tokenizer
    assert (dataset / "report" / "report.html").stat().st_size > 1000
    assert json.loads((dataset / "tokenizer.json").read_text())["model"]["type"] == "BPE"

    # a few training steps on the shards, then eval: zero-shot on held-out CIFAR, retrieval on a shard
    from openwit.trainer.cli import main as train_main
    shards = sorted(dataset.glob("[0-9]" * 5 + ".tar"))
    run = tmp_path / "run"
    assert train_main(["--train-data", "::".join(map(str, shards)), "--model", "tiny-vit", "--out", str(run),
                       "--batch-size", "32", "--max-steps", "6", "--workers", "1", "--warmup", "2",
                       "--log-every", "3"]) == 0
    capsys.readouterr()
    assert eval_main(["--checkpoint", str(run), "--zeroshot-folder", str(held_out), "--templates", "clip1",
                      "--retrieval-data", str(shards[-1]), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["zeroshot_images"] == 100 and res["zeroshot_chance_top1"] == 0.1
    assert 0 <= res["zeroshot_top1"] <= 1 and res["retrieval_samples"] > 100 and res["step"] == 6
