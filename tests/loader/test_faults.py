"""Loader under bad input (issue #10): nothing invented, every fault counted exactly once, resume exact.

Real shards (tarfile + CIFAR-10 JPEGs, garbage bytes where an image should be), real DataLoader workers.
"""
import gzip
import tarfile

import pytest
import torch

from openwit.loader import make_loader
from openwit.loader.samples import FaultLog, iter_shard
from openwit.loader.tokenizer import CaptionTokenizer
from openwit.loader.transforms import clip_eval_preprocess
from shard_helpers import caption_of, cifar_samples, write_shard

KW = dict(image_size=32, shuffle_buffer=16)


@pytest.fixture(scope="module")
def tok(shared_data):
    return CaptionTokenizer.from_clip_bpe(str(shared_data / "clip" / "bpe_simple_vocab_16e6.txt.gz"))


def mixed_shards(out, shared_data, plan):
    """Shards from `plan`: one string per shard, 'g' a good JPEG, 'b' garbage bytes, 't' a JPEG cut in
    half, 'i' no image, 'c' no caption. Returns {caption: image bytes or None} for every sample written."""
    pool = iter(cifar_samples(shared_data, sum(len(p) for p in plan)))
    table = {}
    for shard, kinds in enumerate(plan):
        samples = []
        for i, kind in enumerate(kinds):
            img, cap = next(pool)
            cap = f"{cap} in shard {shard}" if kind == "g" else f"broken sample {i} of shard {shard}"
            img = (b"\xff\xd8\xff\xe0 not a jpeg %d" % i if kind == "b" else None if kind == "i"
                   else img[: len(img) // 2] if kind == "t" else img)
            samples.append((img, None if kind == "c" else cap))
            table[cap] = img if kind == "g" else None
        write_shard(out, shard, samples)
    return table


def run(loader, lookup):
    """Captions and images of one epoch, batch by batch."""
    return [([lookup(r) for r in tokens], images) for images, tokens in loader]


BAD_FIRST = "b" * 8 + "gbgbgbgg" * 4  # a whole eval batch of garbage, then 12 more among 24 good: 20 bad of 40


@pytest.mark.parametrize("workers", [0, 2])
def test_eval_skips_undecodable_samples_and_invents_none(shared_data, tok, tmp_path, workers):
    table = mixed_shards(tmp_path, shared_data, [BAD_FIRST, "g" * 10])
    lookup = caption_of(tok, list(table))
    loader = make_loader(str(tmp_path / "{00000..00001}.tar"), 8, tokenizer=tok, train=False,
                         num_workers=workers, image_size=32)
    batches = run(loader, lookup)
    got = [c for caps, _ in batches for c in caps]
    good = [c for c, img in table.items() if img is not None]
    assert sorted(got) == sorted(good)  # each decodable sample once; no broken one, no duplicate
    assert all(0 < len(caps) <= 8 for caps, _ in batches) and any(len(caps) < 8 for caps, _ in batches)
    for caps, images in batches:  # every image is its own sample's, none made up
        expected = torch.cat([clip_eval_preprocess(table[c], 32) for c in caps])
        assert torch.equal(images, expected)
    assert loader.faults == {"decode_error": 20}


@pytest.mark.parametrize("workers", [0, 2])
def test_train_fills_batches_from_the_following_samples(shared_data, tok, tmp_path, workers):
    table = mixed_shards(tmp_path, shared_data, [BAD_FIRST, "g" * 10])
    lookup = caption_of(tok, list(table))
    loader = make_loader(str(tmp_path / "{00000..00001}.tar"), 8, tokenizer=tok, num_workers=workers, **KW)
    batches = run(loader, lookup)
    assert len(batches) == len(loader) == 7  # 50 samples by the sidecars
    assert all(len(caps) == 8 for caps, _ in batches)
    got = [c for caps, _ in batches for c in caps]
    assert all(table[c] is not None for c in got)  # never a broken sample's caption (or a grey image)
    assert set(got) == {c for c, img in table.items() if img is not None}
    assert len(got) - len(set(got)) <= loader.faults["padded"]  # repeats come from the counted top-up only
    assert loader.faults["decode_error"] == 20  # garbage read by a top-up is not counted again


RESUME_PLAN = ["ggbgggtgbggbbggg" + "g" * 8, "g" * 12, "gbbggtbggggbgggb"]  # replays meet garbage and cut JPEGs


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_with_undecodable_samples_yields_exactly_the_rest(shared_data, tok, tmp_path, workers):
    table = mixed_shards(tmp_path, shared_data, RESUME_PLAN)
    lookup = caption_of(tok, list(table))
    urls = str(tmp_path / "{00000..00002}.tar")
    full_loader = make_loader(urls, 4, tokenizer=tok, num_workers=workers, seed=3, **KW)
    full = [caps for caps, _ in run(full_loader, lookup)]
    assert all(table[c] is not None for caps in full for c in caps)
    for stop in (3, 7, len(full) - 1):
        first = make_loader(urls, 4, tokenizer=tok, num_workers=workers, seed=3, **KW)
        seen = []
        for _, tokens in first:
            seen.append([lookup(r) for r in tokens])
            if len(seen) == stop:
                break
        state = first.state_dict()
        variants = {"positions": state, "replay": {**state, "positions": None},  # an old checkpoint
                    "another rank's": {**state, "rank": 1}}  # DDP: rank 0's state loaded everywhere
        for variant, saved in variants.items():
            resumed = make_loader(urls, 4, tokenizer=tok, num_workers=workers, seed=3, **KW)
            resumed.load_state_dict(saved)
            rest = [caps for caps, _ in run(resumed, lookup)]
            assert seen + rest == full, (stop, variant)
            if variant != "another rank's":  # (its own counts are not restored)
                assert resumed.faults == full_loader.faults, (stop, variant)  # nothing lost or counted twice


def fault_zoo(out, shared_data):
    """Five shards with one kind of trouble each; the exact fault counts they must give."""
    good = cifar_samples(shared_data, 60)
    write_shard(out, 0, good[:10] + [(b"garbage-a", "bad jpeg a"), (b"garbage-b", "bad jpeg b")])
    write_shard(out, 1, good[10:16] + [(None, f"no image {i}") for i in range(4)]
                + [(good[16 + i][0], None) for i in range(2)])
    (out / "00002.tar").write_bytes(b"")  # empty file, no sidecars
    write_shard(out, 3, good[20:32], sidecars=False)
    data = (out / "00003.tar").read_bytes()
    (out / "00003.tar").write_bytes(data[: len(data) // 2 + 100])  # cut mid-member
    write_shard(out, 4, good[40:48], sidecars=False)
    (out / "00004.tar.gz").write_bytes(gzip.compress((out / "00004.tar").read_bytes()))
    (out / "00004.tar").unlink()
    urls = [str(out / f"{i:05d}.tar") for i in range(4)] + [str(out / "00004.tar.gz")]
    whole = 10 + 6 + sum(1 for _ in iter_shard(urls[3], FaultLog())) + 8  # the cut tar keeps a few
    return urls, whole, {"decode_error": 2, "missing_image": 4, "missing_caption": 2, "unreachable": 1, "truncated_tar": 1}


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_fault_counts_are_exact_with_any_worker_count(shared_data, tok, tmp_path, workers):
    urls, whole, expected = fault_zoo(tmp_path, shared_data)
    loader = make_loader(urls, 4, tokenizer=tok, train=False, num_workers=workers, image_size=32)
    images = sum(x.shape[0] for x, _ in loader)
    assert loader.faults == expected and images == whole
    list(loader)  # a second epoch adds the same again
    assert loader.faults == {k: 2 * v for k, v in expected.items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_top_up_reads_do_not_count_faults_again(shared_data, tok, tmp_path, workers):
    urls, whole, expected = fault_zoo(tmp_path, shared_data)
    loader = make_loader(urls, 16, tokenizer=tok, num_workers=workers, **KW)  # 3 batches: workers top up
    assert sum(x.shape[0] for x, _ in loader) == 16 * len(loader) > whole and loader.faults["padded"] > 0
    assert {k: v for k, v in loader.faults.items() if k != "padded"} == expected


def test_truncated_and_compressed_tars_are_judged_once(shared_data, tmp_path):
    write_shard(tmp_path, 0, cifar_samples(shared_data, 12), sidecars=False)
    data = (tmp_path / "00000.tar").read_bytes()
    with tarfile.open(tmp_path / "00000.tar") as tar:
        end = max(m.offset_data + m.size for m in tar.getmembers())
    for cut in range(700, end, 997):  # every kind of cut: in headers, data, between members
        (tmp_path / "cut.tar").write_bytes(data[:cut])
        faults = FaultLog()
        n = sum(1 for _ in iter_shard(str(tmp_path / "cut.tar"), faults))
        assert faults.counts == {"truncated_tar": 1} and n < 12, cut
    packed = gzip.compress(data)
    (tmp_path / "whole.tar.gz").write_bytes(packed)
    (tmp_path / "gzipped.tar").write_bytes(packed)  # compressed but named .tar: found by its magic bytes
    (tmp_path / "cut.tar.gz").write_bytes(packed[: len(packed) * 2 // 3])
    for name, n_expected, reasons in (("whole.tar.gz", 12, {}), ("gzipped.tar", 12, {}),
                                      ("cut.tar.gz", None, {"truncated_tar": 1})):
        faults = FaultLog()
        n = sum(1 for _ in iter_shard(str(tmp_path / name), faults))
        assert faults.counts == reasons and (n == n_expected or n_expected is None and 0 < n < 12), name
    with tarfile.open(tmp_path / "00000.tar") as src, tarfile.open(tmp_path / "whole.tar.bz2", "w:bz2") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
    faults = FaultLog()
    assert sum(1 for _ in iter_shard(str(tmp_path / "whole.tar.bz2"), faults)) == 12 and not faults.counts
