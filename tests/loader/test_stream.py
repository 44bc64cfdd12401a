"""make_loader end to end on real shards (CIFAR-10 JPEGs): coverage, both shard styles, URL forms,
faults, determinism, resume, workers."""
import functools
import http.server
import tarfile
import threading
from pathlib import Path

import fsspec
import pytest
import torch

from openwit.common.errors import UserError
from openwit.loader import make_loader
from openwit.loader.tokenizer import CaptionTokenizer
from shard_helpers import all_captions, caption_of, cifar_samples, write_dataset, write_shard

SIZES = [30, 20, 7]  # uneven on purpose
KW = dict(image_size=32, shuffle_buffer=16)


@pytest.fixture(scope="module")
def tok(shared_data):
    return CaptionTokenizer.from_clip_bpe(str(shared_data / "clip" / "bpe_simple_vocab_16e6.txt.gz"))


@pytest.fixture(scope="module")
def shards(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    write_dataset(out, shared_data, SIZES)
    return out


@pytest.fixture(scope="module")
def lookup(shared_data, tok):
    return caption_of(tok, all_captions(shared_data, SIZES))


def captions_of(loader, lookup):
    out = []
    for images, tokens in loader:
        assert images.dtype == torch.float32 and tokens.dtype == torch.int64
        assert images.shape[1:] == (3, 32, 32) and tokens.shape[1] == 77
        out += [lookup(row) for row in tokens]
    return out


def test_epoch_covers_every_sample_with_counted_padding(shards, tok, lookup, shared_data):
    loader = make_loader(str(shards / "{00000..00002}.tar"), 8, tokenizer=tok, **KW)
    assert loader.num_samples == 57 and len(loader) == 8  # from the _stats.json files
    got = captions_of(loader, lookup)
    assert len(got) == 64 and set(got) == set(all_captions(shared_data, SIZES))
    assert loader.faults == {"padded": 7} and loader.epoch == 1
    second = captions_of(loader, lookup)
    assert set(second) == set(got) and second != got  # next epoch: a new order


@pytest.mark.parametrize("workers", [0, 2])
def test_eval_mode_yields_each_sample_once(shards, tok, lookup, shared_data, workers):
    loader = make_loader(str(shards / "{00000..00002}.tar"), 8, tokenizer=tok, train=False,
                         num_workers=workers, image_size=32)
    got = captions_of(loader, lookup)
    assert sorted(got) == sorted(all_captions(shared_data, SIZES))  # 57: no top-up, partial last batch
    assert loader.batches == 0 and loader.epoch == 1 and "padded" not in loader.faults


def test_img2dataset_style_shards(shared_data, tok, lookup, tmp_path):
    write_dataset(tmp_path, shared_data, SIZES, style="img2dataset")
    loader = make_loader([str(tmp_path / f"{i:05d}.tar") for i in range(3)], 8, tokenizer=tok, **KW)
    assert loader.num_samples == 57
    assert set(captions_of(loader, lookup)) == set(all_captions(shared_data, SIZES))


def test_counts_by_reading_without_sidecars(shared_data, tok, tmp_path):
    write_shard(tmp_path, 0, cifar_samples(shared_data, 12), sidecars=False)
    loader = make_loader(str(tmp_path / "00000.tar"), 5, tokenizer=tok, **KW)
    assert loader.num_samples == 12 and len(loader) == 3


@pytest.fixture
def http_root(shards):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(shards))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_forms_all_read_the_same(shards, tok, lookup, http_root):
    s = str(shards)
    forms = [f"{s}/{{00000..00002}}.tar", f"{s}/00000.tar::{s}/{{00001..00002}}.tar",
             [f"{s}/00000.tar", f"{s}/0000{{1,2}}.tar"], f"file://{s}/{{00000..00002}}.tar",
             f"{http_root}/{{00000..00002}}.tar"]
    expected = None
    for urls in forms:
        loader = make_loader(urls, 8, tokenizer=tok, train=False, **KW)
        got = captions_of(loader, lookup)
        assert loader.num_samples == 57 and not {k for k in loader.faults if k != "padded"}, urls
        expected = expected or got
        assert got == expected, urls  # same shards, same seed → same order, whatever the transport
    mem = fsspec.filesystem("memory")  # the fsspec branch that gs:// and s3:// take
    for f in sorted(shards.iterdir()):
        mem.pipe(f"/bucket/{f.name}", f.read_bytes())
    via_fsspec = make_loader("memory://bucket/{00000..00002}.tar", 8, tokenizer=tok, train=False, **KW)
    assert via_fsspec.num_samples == 57 and captions_of(via_fsspec, lookup) == expected
    mem.pipe("/bucket/tokenizer.json", tok.tokenizer.to_str().encode())  # default: beside remote shards
    beside = make_loader("memory://bucket/{00000..00002}.tar", 8, train=False, **KW)
    assert captions_of(beside, lookup) == expected
    piped = make_loader([f"pipe:cat {s}/0000{i}.tar" for i in range(3)], 8, tokenizer=tok, train=False, **KW)
    assert piped.num_samples == 57  # no sidecar for pipe: → counted by reading
    assert sorted(captions_of(piped, lookup)) == sorted(expected)


def test_faults_are_skipped_counted_and_never_crash(shared_data, tok, tmp_path, caplog):
    good = cifar_samples(shared_data, 40)
    write_shard(tmp_path, 0, good[:10])
    write_shard(tmp_path, 1, [(b"\xff\xd8garbage", "corrupt jpeg")] + good[10:15]
                + [(None, "no image"), (good[15][0], None)])
    write_shard(tmp_path, 2, good[20:40])
    data = (tmp_path / "00002.tar").read_bytes()
    (tmp_path / "00002.tar").write_bytes(data[: len(data) // 2 + 100])  # truncated mid-member
    urls = [str(tmp_path / f"{i:05d}.tar") for i in range(3)] + [
        str(tmp_path / "missing.tar"), "http://127.0.0.1:9/none.tar", "pipe:false"]
    loader = make_loader(urls, 4, tokenizer=tok, num_samples=36, missing_shards="skip", **KW)
    batches = list(loader)
    assert len(batches) == len(loader) == 9
    assert loader.faults["decode_error"] >= 1 and loader.faults["missing_image"] >= 1
    assert loader.faults["missing_caption"] >= 1 and loader.faults["truncated_tar"] >= 1
    assert loader.faults["unreachable"] >= 2  # the refused http:// and pipe:false (missing.tar is skipped)
    assert all(torch.isfinite(images).all() for images, _ in batches)
    warned = [r.getMessage() for r in caplog.records if "skipping (truncated_tar)" in r.getMessage()]
    assert len(warned) == 1 and "00002.tar" in warned[0]  # logged once with the shard name


def test_only_bad_inputs_is_a_clear_error(tok, tmp_path):
    with pytest.raises(UserError, match=r"all 4 shard\(s\) are missing \(first: .*nothing-0.tar"):
        make_loader(str(tmp_path / "nothing-{0..3}.tar"), 4, tokenizer=tok)
    for i in range(2):
        (tmp_path / f"empty-{i}.tar").write_bytes(b"")
    with pytest.raises(UserError, match="no samples in 2 shard"):
        make_loader(str(tmp_path / "empty-{0..1}.tar"), 4, tokenizer=tok)
    with pytest.raises(UserError, match="nosuchscheme://"):
        make_loader("nosuchscheme://bucket/{0..3}.tar", 4, tokenizer=tok)


def test_deterministic_given_seed(shards, tok, tmp_path):
    def run(seed, urls=str(shards / "{00000..00002}.tar")):
        return [(x.sum().item(), t.sum().item()) for x, t in make_loader(urls, 8, tokenizer=tok, seed=seed, **KW)]
    assert run(1) == run(1) and run(1) != run(2)
    moved = tmp_path / "elsewhere" / "wit"  # the same shards in another folder and in a bucket: same batches
    moved.mkdir(parents=True)
    mem = fsspec.filesystem("memory")
    for f in sorted(shards.iterdir()):
        (moved / f.name).write_bytes(f.read_bytes())
        mem.pipe(f"/moved-bucket/{f.name}", f.read_bytes())
    assert run(1, str(moved / "{00000..00002}.tar")) == run(1) == run(1, "memory://moved-bucket/{00000..00002}.tar")


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_yields_exactly_the_rest(shards, tok, lookup, workers):
    urls = str(shards / "{00000..00002}.tar")
    full = captions_of(make_loader(urls, 4, tokenizer=tok, num_workers=workers, seed=3, **KW), lookup)
    first = make_loader(urls, 4, tokenizer=tok, num_workers=workers, seed=3, **KW)
    seen = []
    for _, tokens in first:
        seen += [lookup(r) for r in tokens]
        if len(seen) == 5 * 4:
            break
    state = first.state_dict()
    assert state["epoch"] == 0 and state["batches"] == 5
    resumed = make_loader(urls, 4, tokenizer=tok, num_workers=workers, seed=3, **KW)
    resumed.load_state_dict(state)
    rest = captions_of(resumed, lookup)
    assert seen + rest == full


def test_fewer_shards_than_ranks_and_workers(shards, tok):
    counts = []
    for rank in range(2):
        loader = make_loader(str(shards / "00002.tar"), 2, tokenizer=tok, num_workers=2,
                             rank=rank, world_size=2, **KW)
        counts.append((len(loader), sum(1 for _ in loader)))
    assert counts == [(2, 2), (2, 2)]  # 7 samples, 2 ranks × batch 2 → 2 batches each, no hang


def test_resampled_differs_per_rank(shards, tok, lookup):
    runs = [captions_of(make_loader(str(shards / "{00000..00002}.tar"), 8, tokenizer=tok, resampled=True,
                                    num_samples=48, rank=r, world_size=2, **KW), lookup) for r in range(2)]
    assert len(runs[0]) == len(runs[1]) == 24 and runs[0] != runs[1]


def test_default_tokenizer_json_beside_shards(shared_data, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENWIT_TOKENIZER", raising=False)
    samples = cifar_samples(shared_data, 6)
    write_shard(tmp_path, 0, samples)
    trained = CaptionTokenizer.train([c for _, c in samples] * 20, vocab_size=600)
    trained.save(str(tmp_path / "tokenizer.json"))
    images, tokens = next(iter(make_loader(str(tmp_path / "00000.tar"), 6, **KW)))
    assert trained.vocab_size <= 600 and tokens.max().item() == trained.eot_id == trained.vocab_size - 1
    with tarfile.open(tmp_path / "00000.tar") as tar:
        assert sorted(tar.getnames()) == tar.getnames()  # contract: members sorted


def test_reads_shards_from_openwit_shard_writer(shared_data, tok, tmp_path):
    """The pipeline's own writer (tar + Parquet with a failure row + stats marker) → the loader."""
    from openwit.pipeline.shards import writer as shard_writer
    pool = cifar_samples(shared_data, 12)
    samples = [{"key": f"00000{i:04d}", "status": "success", "ext": "jpg", "data": img, "caption": cap,
                "url": f"http://example.com/{i}.jpg", "query_ids": [i]} for i, (img, cap) in enumerate(pool)]
    samples.append({"key": "000000012", "status": "failed_to_download", "caption": "lost", "query_ids": [],
                    "url": "http://example.com/lost.jpg", "error_message": "http_404"})
    shard_writer.write_shard(str(tmp_path), 0, samples, shard_writer.shard_stats(0, samples, "fp", {}, "h"))
    loader = make_loader(str(tmp_path / "00000.tar"), 4, tokenizer=tok, **KW)
    assert loader.num_samples == 12 and len(loader) == 3
    lookup = caption_of(tok, [c for _, c in pool])
    assert sorted(captions_of(loader, lookup)) == sorted(c for _, c in pool)


def test_reads_a_real_img2dataset_shard(tok):
    """tests/fixtures/img2dataset: written by img2dataset 1.47 itself (members unsorted, a 404 row)."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "img2dataset"
    captions = ["a red gradient", "a green square", "a wide blue banner", "a tall yellow strip",
                "a grey tile &amp; more", "café au lait"]
    loader = make_loader(str(fixture / "00000.tar"), 3, tokenizer=tok, train=False, image_size=32)
    assert loader.num_samples == 6 and len(loader) == 2  # `successes` from its _stats.json
    got = captions_of(loader, caption_of(tok, captions))
    assert sorted(got) == sorted(captions) and not loader.faults
