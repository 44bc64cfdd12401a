"""`openwit-train` (also `python -m openwit.trainer` and `torchrun -m openwit.trainer`).

    openwit-train --train-data 'out/{00000..00099}.tar' --model ViT-B-32 --out runs/b32 [--val-data URLS]
    torchrun --nproc_per_node 8 -m openwit.trainer --train-data 'gs://b/wit/{00000..09999}.tar' ...
    openwit-train --model ViT-B-32 --describe
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tomllib

from openwit.common.errors import UserError, cli_main, setup_logging
from openwit.common.version import add_version_flag
from openwit.trainer.config import MODELS
from openwit.trainer.train import TrainConfig

DEFAULTS = TrainConfig()

# (flag, type, help) — defaults come from TrainConfig, shown in --help
FLAGS = [
    ("--train-data", str, "training shards: brace patterns {00000..00099}, '::'-joined lists, local paths, "
                          "http(s)://, gs://, s3://, pipe: commands"),
    ("--val-data", str, "held-out shards for retrieval recall@k and validation loss"),
    ("--zeroshot-folder", str, "image folder (one sub-folder per class) for zero-shot accuracy during training"),
    ("--zeroshot-templates", str, "clip1, clip80 or a file with one template a line ({} = class name)"),
    ("--model", str, "architecture: " + ", ".join(MODELS) + " (a -quickgelu suffix uses QuickGELU)"),
    ("--model-config", str, "JSON file with a custom architecture (see --describe's output for the fields)"),
    ("--pretrained", str, "initial weights to fine-tune: an openwit run folder or checkpoint (its tokenizer comes "
                          "along), or open_clip/OpenAI weights of --model (.pt/.bin; CLIP's BPE as tokenizer: "
                          "--tokenizer or $OPENWIT_CLIP_BPE); ignored when --resume finds a checkpoint"),
    ("--out", str, "run folder: checkpoints/, metrics.jsonl, tensorboard/ (local, gs:// or s3://)"),
    ("--epochs", int, "passes over the data"),
    ("--batch-size", int, "samples per process (GPU) per micro-batch"),
    ("--lr", float, "peak learning rate"),
    ("--wd", float, "AdamW weight decay (not applied to gains, biases, class token, logit scale)"),
    ("--warmup", int, "linear warmup steps before the cosine decay"),
    ("--precision", str, "bf16, fp16 (GPU, with a grad scaler), fp32, or auto (bf16 on GPU, fp32 on CPU)"),
    ("--workers", int, "loader processes per training process"),
    ("--accum-freq", int, "micro-batches per step; the contrastive loss sees all of them at once"),
    ("--grad-clip-norm", float, "clip the gradient norm to this value (off when unset)"),
    ("--resume", str, "'latest' (the newest checkpoint in --out; starts fresh if there is none) or a checkpoint path"),
    ("--train-num-samples", int, "samples per epoch (default: counted from the shards' stats files)"),
    ("--seed", int, "seed for initialisation, shard order, shuffling and crops"),
    ("--save-every", int, "checkpoint every N steps (0: at the end of each epoch)"),
    ("--keep-last", int, "keep the newest N checkpoints (0: keep all)"),
    ("--log-every", int, "a progress line and a metrics.jsonl record every N steps"),
    ("--val-every", int, "evaluate every N steps (0: at the end of each epoch)"),
    ("--loss", str, "clip (symmetric cross-entropy) or siglip (sigmoid)"),
    ("--tokenizer", str, "tokenizer.json or CLIP's bpe_simple_vocab_16e6.txt.gz (default: tokenizer.json "
                         "beside the shards, else $OPENWIT_CLIP_BPE)"),
    ("--max-steps", int, "stop after N steps (the schedule then spans N steps)"),
    ("--max-bad-steps", int, "stop with an error after N non-finite losses in a row"),
    ("--device", str, "auto (GPU when there is one), cpu or cuda"),
    ("--shuffle-buffer", int, "loader shuffle buffer in samples (default 1000)"),
    ("--device-augment", str, "on: loader workers only decode and crop, the training device resizes and "
                              "normalises whole batches; off: workers do it all (auto: on with a GPU)"),
]
METAVARS = {"--train-data": "URLS", "--val-data": "URLS", "--zeroshot-folder": "DIR", "--zeroshot-templates": "T",
            "--model": "NAME", "--model-config": "FILE", "--pretrained": "PATH", "--out": "DIR", "--precision": "P", "--resume": "latest|PATH",
            "--loss": "clip|siglip", "--tokenizer": "FILE", "--device": "D", "--device-augment": "auto|on|off"}
SWITCHES = [
    ("--grad-checkpointing", "recompute activations in the backward pass (less memory, ~30%% more compute)"),
    ("--dataset-resampled", "draw shards with replacement instead of splitting them into epochs"),
    ("--compile", "torch.compile the model"),
    ("--quick-gelu", "QuickGELU activation (OpenAI's released weights)"),
]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="openwit-train", description="Train CLIP on WebDataset shards (one process, "
                                 "or many under torchrun).")
    ap.add_argument("--config", help="JSON or TOML file of these settings (keys as the flags, - or _); "
                                     "flags given on the command line override it")
    for flag, typ, text in FLAGS:
        default = getattr(DEFAULTS, flag[2:].replace("-", "_"))
        metavar = METAVARS.get(flag, {int: "N", float: "X"}.get(typ, "S"))
        ap.add_argument(flag, type=typ, default=None, metavar=metavar,
                        help=f"{text} (default: {default})" if default is not None else text)
    for flag, text in SWITCHES:
        ap.add_argument(flag, action="store_true", default=None, help=text)
    ap.add_argument("--describe", action="store_true", help="print the model's config and parameter count, then exit")
    ap.add_argument("--verbose", action="store_true", help="debug logging")
    return add_version_flag(ap)


def read_config_file(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        data = tomllib.loads(raw.decode()) if path.endswith(".toml") else json.loads(raw)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read --config {path}: {e}") from e
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise UserError(f"--config {path}: unknown settings {', '.join(unknown)}")
    return data


def to_config(args: argparse.Namespace) -> TrainConfig:
    values = read_config_file(args.config) if args.config else {}
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return TrainConfig(**values)


def describe(cfg: TrainConfig) -> dict:
    from openwit.loader.tokenizer import load_tokenizer
    from openwit.trainer.config import forward_flops, model_config
    from openwit.trainer.model import CLIP, count_parameters

    m = model_config(cfg.model, cfg.model_config)
    if cfg.train_data or cfg.tokenizer:
        from openwit.trainer.train import _first_url

        tok = load_tokenizer(cfg.tokenizer, _first_url(cfg.train_data) if cfg.train_data else None, m.text.context_length)
        m = m.with_vocab(tok.vocab_size)
    model = CLIP(m)
    image, text = forward_flops(m)
    return {"model": m.name, "parameters": count_parameters(model),
            "parameters_visual": sum(p.numel() for p in model.visual.parameters()),
            "parameters_text": sum(p.numel() for p in model.text.parameters()),
            "gflops_forward_per_sample": {"image": image / 1e9, "text": text / 1e9,
                                          "train_approx": 3 * (image + text) / 1e9},
            "config": m.to_dict()}


@cli_main
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = to_config(args)
    if args.describe:
        info = describe(cfg)
        print(json.dumps(info["config"], indent=2))
        print(f"{info['model']}: {info['parameters']:,} parameters "
              f"(image {info['parameters_visual']:,}, text {info['parameters_text']:,}, logit scale); "
              f"forward {info['gflops_forward_per_sample']['image']:.2f} + {info['gflops_forward_per_sample']['text']:.2f} "
              "GFLOPs per sample (image + text, a multiply-add = 2 FLOPs)")
        return 0
    from openwit.trainer.stopping import Stopped
    from openwit.trainer.train import train

    try:
        result = train(cfg)
    except Stopped as e:  # SIGTERM or Ctrl-C: a checkpoint of the step it stopped at is saved
        if int(os.environ.get("RANK", 0)) == 0:
            print(str(e), file=sys.stderr)
        return 128 + e.signum
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
