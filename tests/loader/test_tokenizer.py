"""Caption tokenizer: CLIP parity against open_clip's own tokenizer, truncation, trained BPE round trip."""
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from openwit.common.errors import UserError
from openwit.loader.tokenizer import CaptionTokenizer, clean_caption, load_tokenizer

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "clip_tokens.json"


@pytest.fixture(scope="module")
def clip_tok(shared_data):
    return CaptionTokenizer.from_clip_bpe(str(shared_data / "clip" / "bpe_simple_vocab_16e6.txt.gz"))


def test_ids_equal_open_clip_reference(clip_tok):
    """200 captions (LAION, unicode, HTML entities, mojibake, control chars, very long): exact ids."""
    cases = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]
    assert len(cases) >= 200
    got = clip_tok([c["caption"] for c in cases])
    assert got.shape == (len(cases), 77) and got.dtype == np.int64
    for case, row in zip(cases, got):
        n = len(case["ids"])
        assert row[:n].tolist() == case["ids"], case["caption"][:80]
        assert not row[n:].any(), "padding must be zeros"


def test_layout_and_truncation_keep_end_token(clip_tok):
    assert (clip_tok.vocab_size, clip_tok.sot_id, clip_tok.eot_id) == (49408, 49406, 49407)
    long = clip_tok(["word " * 200])[0]
    assert long[0] == 49406 and long[76] == 49407 and (long[1:76] != 0).all()
    assert clip_tok.encode("a photo of a cat.") == [49406, 320, 1125, 539, 320, 2368, 269, 49407]
    assert clip_tok.encode("") == [49406, 49407]


def test_whole_word_cache_gives_the_bpe_s_own_ids(shared_data, clip_tok):
    """The cache a tokenizer starts with (every whole-word vocabulary entry, also in pickled copies
    for DataLoader workers) changes nothing: same ids as a tokenizer that sends every word to the BPE."""
    import pickle

    texts = [t for t in pq.read_table(shared_data / "metadata" / "img2dataset_test_10000.parquet",
                                      columns=["TEXT"]).column("TEXT").to_pylist() if t][:2000]
    assert len(clip_tok._seed) > 30_000 and clip_tok._seed["photo"] == [1125]
    cold = pickle.loads(pickle.dumps(clip_tok))
    assert cold._words == cold._seed  # a worker's copy starts from the whole words, not from what was seen
    cold._seed, cold._words = {}, {}
    assert np.array_equal(cold(texts), clip_tok(texts))
    copy = pickle.loads(pickle.dumps(clip_tok))
    assert np.array_equal(copy(texts), clip_tok(texts))


def test_cleanup_like_clip():
    assert clean_caption("  Tom &amp;amp; Jerry\n\tSHOW ") == "tom & jerry show"
    assert clean_caption("don’t") == "don't"  # ftfy uncurls quotes: needed for parity


def test_trained_bpe_round_trip(shared_data, tmp_path):
    texts = pq.read_table(shared_data / "metadata" / "img2dataset_test_10000.parquet",
                          columns=["TEXT"]).column("TEXT").to_pylist()
    texts = [t for t in texts if t][:3000]
    tok = CaptionTokenizer.train(texts, vocab_size=2000)
    assert tok.vocab_size == 2000
    assert tok.eot_id == 1999 and tok.sot_id == 1998  # specials last: argmax pooling finds the end token
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    again = load_tokenizer(str(path))
    sample = texts[:300] + ["日本語 émoji 🐱 &amp;", "x" * 1000]
    a, b = tok(sample), again(sample)
    assert np.array_equal(a, b)
    assert (a.max(axis=1) == 1999).all()  # every row holds exactly its end token as max id
    lengths = (a != 0).sum(axis=1)
    assert lengths.mean() < (tok(["a"])[0] != 0).sum() * 40  # learned merges compress the text
    common = tok.tokenizer.token_to_id("the</w>")
    assert common is not None and common > 511  # a merged word token was learned


def test_bad_tokenizer_inputs(tmp_path):
    with pytest.raises(UserError):
        CaptionTokenizer.from_clip_bpe(str(tmp_path / "missing.txt.gz"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError):
        load_tokenizer(str(tmp_path / "bad.json"))
    with pytest.raises(UserError):
        CaptionTokenizer.train(["a b c"], vocab_size=100)


def test_no_tokenizer_names_where_it_looked(tmp_path, monkeypatch):
    """With no tokenizer anywhere, the error names the file it looked for beside the shards (a wrong
    shard path shows there) and the flag that passes one."""
    for var in ("OPENWIT_TOKENIZER", "OPENWIT_CLIP_BPE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)  # no open_clip / clip BPE
    with pytest.raises(UserError) as e:
        load_tokenizer(None, str(tmp_path / "typo" / "00000.tar"))
    assert str(tmp_path / "typo" / "tokenizer.json") in str(e.value)
    assert "--tokenizer FILE" in str(e.value)
    (tmp_path / "typo").mkdir()
    tok = CaptionTokenizer.train(["a red fox", "a blue bird"] * 50, vocab_size=600)
    tok.save(str(tmp_path / "typo" / "tokenizer.json"))
    found = load_tokenizer(None, str(tmp_path / "typo" / "00000.tar"))  # the one beside the shards
    assert np.array_equal(found(["a red fox"]), tok(["a red fox"]))
