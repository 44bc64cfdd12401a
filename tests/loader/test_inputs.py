"""Loader inputs that lie or are absent (issue #10): missing shards, wrong sidecars, decompression bombs."""
import functools
import http.server
import json
import logging
import struct
import threading
import zlib

import fsspec
import pytest

from openwit.common.errors import UserError
from openwit.loader import make_loader
from openwit.loader.cli import main as loader_cli
from openwit.loader.tokenizer import CaptionTokenizer
from openwit.loader.transforms import MAX_IMAGE_PIXELS
from shard_helpers import cifar_samples, write_dataset, write_shard

KW = dict(image_size=32, shuffle_buffer=16)


@pytest.fixture(scope="module")
def bpe(shared_data):
    return str(shared_data / "clip" / "bpe_simple_vocab_16e6.txt.gz")


@pytest.fixture(scope="module")
def tok(bpe):
    return CaptionTokenizer.from_clip_bpe(bpe)


def remove_shard(folder, shard, sidecars=True):
    for suffix in (".tar", ".parquet", "_stats.json") if sidecars else (".tar",):
        (folder / f"{shard:05d}{suffix}").unlink()


# --- missing shards ---------------------------------------------------------------------------------
def test_missing_shards_are_an_error_naming_them_unless_skipped(shared_data, tok, tmp_path, caplog):
    write_dataset(tmp_path, shared_data, [3] * 10)
    for shard in (1, 2, 4, 6, 7, 9):
        remove_shard(tmp_path, shard)
    pattern = str(tmp_path / "{00000..00009}.tar")
    with pytest.raises(UserError) as err:
        make_loader(pattern, 4, tokenizer=tok, **KW)
    msg = str(err.value)
    assert msg.startswith("6 of 10 shards are missing: ") and "\n" not in msg
    assert f"{tmp_path}/00001.tar, {tmp_path}/00002.tar, {tmp_path}/00004.tar, …" in msg
    assert "missing_shards='skip'" in msg and "--missing-shards skip" in msg
    caplog.set_level(logging.WARNING)
    loader = make_loader(pattern, 4, tokenizer=tok, missing_shards="skip", **KW)
    assert loader.num_samples == 12 and len(loader) == 3 and sum(x.shape[0] for x, _ in loader) == 12
    assert any("skipping 6 missing shard(s) of 10" in r.getMessage() for r in caplog.records)
    with pytest.raises(UserError, match="missing_shards must be one of"):
        make_loader(pattern, 4, tokenizer=tok, missing_shards="ignore")


def test_one_missing_shard_says_so_without_counting_by_reading(shared_data, tok, tmp_path, caplog):
    write_dataset(tmp_path, shared_data, [3, 3])
    remove_shard(tmp_path, 1, sidecars=False)  # the tar is gone, its sidecars are still there
    with pytest.raises(UserError, match=r"^1 of 2 shards are missing: .*00001.tar;"):
        make_loader(str(tmp_path / "{00000..00001}.tar"), 4, tokenizer=tok)
    with pytest.raises(UserError, match=r"^all 1 shard\(s\) are missing \(first: .*00007.tar\)"):
        make_loader(str(tmp_path / "00007.tar"), 4, tokenizer=tok)
    assert not any("counting them by reading" in r.getMessage() for r in caplog.records)


def test_inspect_missing_shards_flag(shared_data, bpe, tmp_path, capsys):
    write_dataset(tmp_path, shared_data, [3, 3, 3])
    remove_shard(tmp_path, 1)
    args = ["inspect", str(tmp_path / "{00000..00002}.tar"), "--batch-size", "2", "--image-size", "32",
            "--tokenizer", bpe]
    assert loader_cli(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 of 3 shards are missing") and len(err.strip().splitlines()) == 1
    assert loader_cli(args + ["--missing-shards", "skip"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shards"] == 2 and report["num_samples"] == 6


@pytest.fixture
def http_root(tmp_path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_missing_remote_shards(shared_data, tok, tmp_path, http_root):
    write_dataset(tmp_path, shared_data, [3, 3, 3])
    remove_shard(tmp_path, 2)
    with pytest.raises(UserError, match=r"^1 of 3 shards are missing: http://.*/00002.tar;"):  # 404
        make_loader(f"{http_root}/{{00000..00002}}.tar", 4, tokenizer=tok)
    refused = make_loader([f"{http_root}/00000.tar", "http://127.0.0.1:9/x.tar"], 4, tokenizer=tok,
                          missing_shards="error", **KW)  # cannot tell (refused): kept, counted when read
    assert sum(x.shape[0] for x, _ in refused) == 4 and refused.faults["unreachable"] == 1
    mem = fsspec.filesystem("memory")  # the listing path that gs:// and s3:// take
    for name in ("00000.tar", "00000_stats.json", "00001.tar"):
        mem.pipe(f"/wit-missing/{name}", (tmp_path / name).read_bytes())
    with pytest.raises(UserError, match=r"^2 of 4 shards are missing: memory://wit-missing/00002.tar, .*00003.tar;"):
        make_loader("memory://wit-missing/{00000..00003}.tar", 4, tokenizer=tok)
    loader = make_loader("memory://wit-missing/{00000..00003}.tar", 4, tokenizer=tok, missing_shards="skip", **KW)
    assert loader.num_samples == 6


# --- sidecars ---------------------------------------------------------------------------------------
def lie(folder, shard, successes):
    stats = folder / f"{shard:05d}_stats.json"
    stats.write_text(json.dumps({**json.loads(stats.read_text()), "successes": successes}))


def test_negative_sidecar_counts_are_rejected(shared_data, tok, tmp_path, caplog):
    write_dataset(tmp_path, shared_data, [40, 10])
    lie(tmp_path, 0, -5)
    (tmp_path / "00000.parquet").unlink()  # nothing else to trust: counted by reading
    loader = make_loader(str(tmp_path / "{00000..00001}.tar"), 8, tokenizer=tok, train=False, image_size=32)
    assert loader.num_samples == 50 and sum(x.shape[0] for x, _ in loader) == 50
    assert [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()] == [
        "ignoring 00000_stats.json: successes = -5 is not a count"]


def test_sidecar_count_the_tar_cannot_hold_is_not_trusted(shared_data, tok, tmp_path, caplog):
    write_dataset(tmp_path, shared_data, [40])
    lie(tmp_path, 0, 1000)  # the build's successes; 40 CIFAR samples are ~200 KB of tar
    loader = make_loader(str(tmp_path / "00000.tar"), 8, tokenizer=tok, **KW)
    assert loader.num_samples == 40 and len(loader) == 5
    assert sum(x.shape[0] for x, _ in loader) == 40 and "padded" not in loader.faults
    assert sum("sidecar says 1000 samples" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("workers,told,train", [(0, 52, True), (2, 52, True), (0, 10, True), (2, 10, False)])
def test_wrong_sidecar_count_is_corrected_from_the_next_epoch(shared_data, tok, tmp_path, caplog,
                                                              workers, told, train):
    write_dataset(tmp_path, shared_data, [40, 8])
    lie(tmp_path, 0, told)
    (tmp_path / "00000.parquet").unlink()
    loader = make_loader(str(tmp_path / "{00000..00001}.tar"), 8, tokenizer=tok, num_workers=workers,
                         train=train, **KW)
    first = sum(x.shape[0] for x, _ in loader)
    assert loader.num_samples == 48 and len(loader) == 6  # the real count, once the epoch read it
    warned = [r.getMessage() for r in caplog.records if "its sidecar says" in r.getMessage()]
    assert warned == [f"shard 00000.tar: its sidecar says {told} samples but the tar holds 40; "
                      "using 40 from the next epoch on"]
    assert first == (8 * -(-(told + 8) // 8) if train else 48)  # epoch 0 kept its plan: ceil(told + 8)
    state = loader.state_dict()
    padded = loader.faults.get("padded", 0)
    assert sum(x.shape[0] for x, _ in loader) == 48 and loader.faults.get("padded", 0) == padded
    resumed = make_loader(str(tmp_path / "{00000..00001}.tar"), 8, tokenizer=tok, num_workers=workers,
                          train=train, **KW)
    resumed.load_state_dict(state)  # the corrected counts travel with the state
    assert resumed.num_samples == 48 and len(resumed) == 6


# --- decompression bombs ----------------------------------------------------------------------------
def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height RGB pixels but holds almost no data (decoding it fails)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_before_decoding(shared_data, tok, tmp_path):
    pipeline_images = pytest.importorskip("openwit.pipeline.images")
    assert MAX_IMAGE_PIXELS == pipeline_images.ImageSettings().max_image_pixels == 89_478_485
    good = cifar_samples(shared_data, 4)
    write_shard(tmp_path, 0, good[:2] + [(png_header(9460, 9460), "bomb 9460 squared")] + good[2:])
    loader = make_loader(str(tmp_path / "00000.tar"), 8, tokenizer=tok, train=False, image_size=32)
    assert sum(x.shape[0] for x, _ in loader) == 4  # decoding it would say decode_error, not bomb
    assert loader.faults == {"decompression_bomb": 1}
    for limit, images in ((32 * 32, 4), (32 * 32 - 1, 0)):  # CIFAR's 32×32 at and over the limit
        strict = make_loader(str(tmp_path / "00000.tar"), 8, tokenizer=tok, train=False, image_size=32,
                             max_image_pixels=limit)
        assert sum(x.shape[0] for x, _ in strict) == images
        assert strict.faults == {"decompression_bomb": 5 - images}
