"""openwit-loader CLI: tokenizer train/encode and inspect on real shards; bad input → `error:`, exit 2."""
import json

from openwit.loader.cli import main
from shard_helpers import write_dataset


def test_train_encode_inspect(shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENWIT_TOKENIZER", raising=False)
    write_dataset(tmp_path, shared_data, [12, 9])
    urls = str(tmp_path / "{00000..00001}.tar")
    assert main(["tokenizer", "train", "--shards", urls, "--vocab-size", "600"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["out"] == str(tmp_path / "tokenizer.json") and 514 < trained["vocab_size"] <= 600
    assert main(["tokenizer", "encode", "--tokenizer", trained["out"], "a photo of a cat"]) == 0
    ids = json.loads(capsys.readouterr().out)
    assert ids[0] == trained["vocab_size"] - 2 and ids[-1] == trained["vocab_size"] - 1
    assert main(["inspect", urls, "--batch-size", "4", "--image-size", "32", "--max-batches", "3"]) == 0
    report = json.loads(capsys.readouterr().out)  # tokenizer.json beside the shards is the default
    assert report["num_samples"] == 21 and report["images_read"] == 12 and report["batches_per_epoch"] == 6
    assert report["cpu_ms_per_image"] > 0 and report["device_augment"] is False
    assert main(["inspect", urls, "--batch-size", "4", "--image-size", "32", "--max-batches", "3",
                 "--device-augment"]) == 0
    device = json.loads(capsys.readouterr().out)  # decode + crop only: the same samples are read
    assert device["device_augment"] is True and device["images_read"] == 12 and device["faults"] == report["faults"]


def test_bad_input_is_one_line_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none-{0..2}.tar")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: all 3 shard(s) are missing") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_tokenizer_train_without_captions_says_why(tmp_path, capsys):
    """Missing shards: no bytes-only tokenizer.json written beside them, one line saying why."""
    assert main(["tokenizer", "train", "--shards", str(tmp_path / "gone" / "{00000..00001}.tar")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no captions read from 2 shard(s)") and "unreachable 2" in err
    assert not (tmp_path / "gone").exists()
