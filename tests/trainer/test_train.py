"""openwit-train end to end on real shards: checkpoints, metrics, evaluation, mid-epoch resume that
continues exactly, one-line errors, and a 2-process torchrun run on CPU."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from openwit.loader.tokenizer import CaptionTokenizer
from openwit.trainer import checkpoint, logs
from openwit.trainer.cli import main as train_main
from trainer_helpers import free_port, make_shards, metrics

SIZES = [40, 40, 24]  # 104 samples: 7 batches of 16 per epoch (the last one topped up)


@pytest.fixture(scope="module")
def shards(shared_data, tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards"), shared_data, SIZES)


def _flags(shards: str, out: Path, *extra: str) -> list[str]:
    return ["--train-data", shards, "--model", "tiny-vit", "--out", str(out), "--batch-size", "16",
            "--epochs", "2", "--workers", "0", "--warmup", "3", "--lr", "1e-3", "--log-every", "1",
            "--seed", "7", *extra]


def shards_dir(run: Path) -> str:
    return os.path.dirname(checkpoint.load(str(run))["train_config"]["train_data"])


def _weights(run: Path) -> dict:
    return checkpoint.load(str(run))["model"]


@pytest.fixture(scope="module")
def straight(shards, tmp_path_factory):
    """An uninterrupted run: 2 epochs × 7 steps, a checkpoint every 3 steps, all kept."""
    out = tmp_path_factory.mktemp("straight")
    assert train_main(_flags(shards, out, "--save-every", "3", "--keep-last", "0", "--workers", "2",
                             "--val-data", shards.replace("{00000..00002}", "00002"))) == 0
    return out


def test_run_writes_checkpoints_metrics_and_eval(straight):
    names = sorted(p.name for p in (straight / "checkpoints").iterdir())
    assert names == ["latest", "step-00000003.pt", "step-00000006.pt", "step-00000009.pt",
                     "step-00000012.pt", "step-00000014.pt"]
    assert (straight / "checkpoints" / "latest").read_text().strip() == "step-00000014.pt"
    state = checkpoint.load(str(straight))
    assert state["step"] == 14 and state["model_config"]["name"] == "tiny-vit"
    tok = CaptionTokenizer.from_file(str(Path(shards_dir(straight)) / "tokenizer.json"), context_length=32)
    assert state["model_config"]["text"]["vocab_size"] == tok.vocab_size < 600  # the dataset's tokenizer.json
    assert state["tokenizer"] == tok.tokenizer.to_str()
    assert {"optimizer", "rng", "loader", "tokenizer", "schedule"} <= set(state)
    train = metrics(straight)
    assert [r["step"] for r in train] == list(range(1, 15))
    for r in train:
        assert r["samples_per_s"] > 0 and 0 <= r["data_wait"] <= 1 and r["lr"] > 0
    evals = metrics(straight, "eval")
    assert len(evals) == 2  # end of epoch 1, and the end of training
    assert evals[-1]["retrieval_samples"] == 24 and 0 <= evals[-1]["image_to_text_R@10"] <= 1
    assert evals[-1]["text_to_image_R@10"] >= evals[-1]["text_to_image_R@1"]


def test_resume_mid_epoch_continues_exactly(straight, shards, tmp_path):
    """Start from the step-3 checkpoint (mid-epoch 0): the next batches and the final weights are
    the uninterrupted run's (same loader workers: 2)."""
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(straight / "checkpoints" / "step-00000003.pt", resumed / "checkpoints")
    (resumed / "checkpoints" / "latest").write_text("step-00000003.pt\n")
    assert train_main(_flags(shards, resumed, "--save-every", "3", "--keep-last", "2", "--resume", "latest",
                             "--workers", "2")) == 0
    ref, got = {r["step"]: r["loss"] for r in metrics(straight)}, {r["step"]: r["loss"] for r in metrics(resumed)}
    assert sorted(got) == list(range(4, 15))
    for step, loss in got.items():
        assert abs(loss - ref[step]) < 1e-5, step
    a, b = _weights(straight), _weights(resumed)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0, msg=k)
    assert sorted(p.name for p in (resumed / "checkpoints").glob("step-*")) == ["step-00000012.pt", "step-00000014.pt"]


def test_pretrained_weights_start_the_run(straight, shards, tmp_path, capsys):
    """--pretrained: an openwit run folder (its tokenizer comes along) or the same weights in open_clip's
    layout start a new run from them: with lr 0 the weights stay exactly those, and both runs' first
    step (the same batch) has the trained model's loss, not a fresh model's."""
    from openwit.trainer import interop

    trained = _weights(straight)
    exported = tmp_path / "open_clip.pt"
    model, _, _ = interop.load_model(str(straight))
    interop.save_open_clip(model, str(exported))
    tokenizer = str(Path(shards_dir(straight)) / "tokenizer.json")
    fresh = tmp_path / "fresh"
    assert train_main(_flags(shards, fresh, "--lr", "0", "--max-steps", "1")) == 0
    for name, source, extra in (("from-run", straight, ()), ("from-open-clip", exported, ("--tokenizer", tokenizer))):
        out = tmp_path / name
        assert train_main(_flags(shards, out, "--lr", "0", "--max-steps", "1", "--pretrained", str(source),
                                 *extra)) == 0, name
        got = _weights(out)
        for k in trained:
            torch.testing.assert_close(got[k], trained[k], atol=0, rtol=0, msg=k)
        first = metrics(out)[0]["loss"]
        assert first < metrics(fresh)[0]["loss"] - 0.02 and abs(first - metrics(tmp_path / "from-run")[0]["loss"]) < 1e-6
        assert checkpoint.load(str(out))["train_config"]["pretrained"] == str(source)
    assert train_main(_flags(shards, tmp_path / "wrong", "--pretrained", str(straight), "--model", "tiny-rn")) == 2
    assert "holds a tiny-vit model, not tiny-rn: pass --model tiny-vit" in capsys.readouterr().err


def test_progress_line_names_what_the_rate_is_per():
    one = logs.progress_line(12, 100, 0, 250.0, 1, 0.05, 2.5, 1e-4, 14.3, 90)
    assert "250.0 samples/s | data wait 5%" in one and "/GPU" not in one  # one process: no per-unit rate
    assert "(125.0/GPU)" in logs.progress_line(12, 100, 0, 250.0, 2, 0.05, 2.5, 1e-4, 14.3, 90, "GPU")


def test_one_line_errors(shards, tmp_path, capsys, straight):
    cases = [
        (["--train-data", str(tmp_path / "none-{00000..00003}.tar")], "shard"),
        (["--model", "ViT-Z-1"], "unknown model 'ViT-Z-1'"),
        (["--batch-size", "200"], "fewer than one step needs"),
        (["--precision", "fp16"], "fp16 needs a GPU"),
    ]
    for extra, message in cases:
        assert train_main(_flags(shards, tmp_path / "bad", *extra)) == 2, extra
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    other = tmp_path / "other"
    shutil.copytree(straight / "checkpoints", other / "checkpoints")
    assert train_main(_flags(shards, other, "--model", "tiny-rn", "--resume", "latest")) == 2
    err = capsys.readouterr().err
    assert "is a tiny-vit checkpoint" in err and "tiny-rn" in err


def test_diverging_run_stops_after_bounded_bad_steps(shards, tmp_path, capsys):
    rc = train_main(_flags(shards, tmp_path / "nan", "--lr", "1e30", "--warmup", "1", "--max-bad-steps", "3"))
    err = capsys.readouterr().err
    assert rc == 2 and "not finite for 3 steps in a row" in err


def test_accumulation_and_config_file(shards, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('model = "tiny-vit"\nbatch-size = 8\naccum_freq = 2\nepochs = 1\nworkers = 0\n'
                   'log_every = 1\nmax_steps = 3\n')
    out = tmp_path / "acc"
    assert train_main(["--config", str(cfg), "--train-data", shards, "--out", str(out), "--batch-size", "4"]) == 0
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert checkpoint.load(str(out))["train_config"]["batch_size"] == 4  # the flag beat the file


def test_torchrun_two_processes_on_cpu(shards, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(free_port()), "-m", "openwit.trainer",
                           *_flags(shards, out, "--epochs", "1", "--batch-size", "8")],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es) on cpu" in proc.stderr and "batch 8 × 1 × 2 = 16" in proc.stderr
    assert "/process) | data wait" in proc.stderr and "/GPU)" not in proc.stderr  # the rate per CPU process
    state = checkpoint.load(str(out))
    assert state["step"] == 7 and len(state["rng"]) == 2
    assert [r["step"] for r in metrics(out)] == list(range(1, 8))  # rank 0 logs alone


def test_device_augment_trains_on_the_same_batches(shards, tmp_path):
    """--device-augment on (workers decode + crop, the device resizes) sees the same samples and
    nearly the same pixels (Pillow's bicubic to ±1 level): the losses agree closely."""
    runs = {}
    for mode in ("off", "on"):
        out = tmp_path / mode
        assert train_main(_flags(shards, out, "--max-steps", "3", "--device-augment", mode)) == 0
        runs[mode] = [r["loss"] for r in metrics(out)]
    assert len(runs["on"]) == 3
    for a, b in zip(runs["off"], runs["on"]):
        assert abs(a - b) < 2e-3, runs
