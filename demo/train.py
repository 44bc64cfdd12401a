"""The demo's last steps: `openwit-train` a tiny CLIP on the shards, `openwit-eval` it, one table.

The shards' last one is held out of training for retrieval; zero-shot runs on pictures drawn
apart from the site's (draw.held_out), with caption-like prompts averaged per class. Settings
follow what trains tiny-vit on a few hundred 32 px pictures on a CPU (batch 64, lr 5e-4, warmup
30, weight decay 0.05, one loader worker).
"""
from __future__ import annotations

import os

from openwit.common import layout
from openwit.common.errors import UserError
from openwit.demo import draw

MODEL = "tiny-vit"
IMAGE_SIZE = 32  # tiny-vit's input: the shards are built at this size, so the loader only decodes


def split_shards(dataset: str) -> tuple[list[str], str]:
    """(training shard paths, the held-out shard path): every committed shard but the last, the last."""
    shards = [layout.shard_path(dataset, s.shard, layout.TAR) for s in layout.list_shards(dataset)[0]]
    if len(shards) < 2:
        raise UserError(f"{dataset}: {len(shards)} shard(s) written; the demo needs 2 or more (one is held out)")
    return shards[:-1], shards[-1]


def train(train_shards: list[str], run: str, epochs: int, seed: int = 0) -> dict:
    """openwit-train tiny-vit on the shards → `run`; returns the trainer's result (last step, loss)."""
    from openwit.trainer.cli import build_parser, to_config
    from openwit.trainer.train import train as run_training

    args = build_parser().parse_args([
        "--train-data", "::".join(train_shards), "--model", MODEL, "--out", run, "--epochs", str(epochs),
        "--batch-size", "64", "--lr", "5e-4", "--warmup", "30", "--wd", "0.05", "--workers", "1",
        "--log-every", "25", "--seed", str(seed), "--device", "cpu", "--keep-last", "1"])
    return run_training(to_config(args))


def evaluate(run: str, zeroshot_root: str, held_out_shard: str) -> dict:
    """openwit-eval: zero-shot per task (draw.TASKS) and retrieval on the held-out shard."""
    from openwit.trainer.eval_cli import build_parser, run as run_eval

    results = {}
    for task in draw.TASKS:
        args = build_parser().parse_args([
            "--checkpoint", run, "--zeroshot-folder", os.path.join(zeroshot_root, task),
            "--templates", os.path.join(zeroshot_root, f"{task}-templates.txt"), "--device", "cpu"])
        results[task] = run_eval(args)
    args = build_parser().parse_args(["--checkpoint", run, "--retrieval-data", held_out_shard, "--device", "cpu"])
    results["retrieval"] = run_eval(args)
    return results


def table(results: dict) -> str:
    """The eval numbers next to chance, as the demo prints them."""
    lines = [f"  {'zero-shot task':<16}{'classes':>8}{'images':>8}{'top-1':>9}{'chance':>9}"]
    for task in draw.TASKS:
        r = results[task]
        lines.append(f"  {task:<16}{r['zeroshot_classes']:>8}{r['zeroshot_images']:>8}"
                     f"{r['zeroshot_top1']:>9.1%}{r['zeroshot_chance_top1']:>9.1%}")
    r = results["retrieval"]
    n = r["retrieval_samples"]
    lines.append(f"  retrieval on the held-out shard ({n} samples; chance R@1 {1 / n:.1%}, R@5 {min(1, 5 / n):.1%}):")
    for d, label in (("image_to_text", "image → text"), ("text_to_image", "text → image")):
        lines.append(f"    {label:<14}R@1 {r[f'{d}_R@1']:>6.1%}   R@5 {r[f'{d}_R@5']:>6.1%}")
    return "\n".join(lines)
