"""The training loop: shards → loader → CLIP → contrastive loss → AdamW, checkpoints and evaluation.

`train(TrainConfig)` runs on one CPU or GPU, or as one rank of many under torchrun. Each rank reads
its own shards through `openwit.loader` (which keeps batch counts equal on all ranks). Resuming
restores model, optimizer, scaler, step, RNG states and the loader's position in the epoch, so the
batches after a resume are the ones an uninterrupted run would have seen.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import random
import signal
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from openwit.common.errors import UserError
from openwit.loader import make_loader
from openwit.loader.tokenizer import CaptionTokenizer, load_tokenizer
from openwit.trainer import checkpoint, distributed, logs
from openwit.trainer.config import ModelConfig, model_config
from openwit.trainer.evaluate import Encoder, retrieval
from openwit.trainer.zeroshot import zeroshot_folder
from openwit.trainer.interop import _tokenizer_from_json
from openwit.trainer.loss import LOSSES
from openwit.trainer.model import CLIP, count_parameters
from openwit.trainer.optim import lr_at, make_optimizer
from openwit.trainer.step import Stepper
from openwit.trainer.stopping import Stopped, StopSignals
from openwit.trainer.templates import load_templates

log = logging.getLogger("openwit.train")
log.setLevel(logging.INFO)  # progress stays visible when the CLIs quiet other INFO logs


@dataclass
class TrainConfig:
    train_data: str | None = None
    out: str | None = None
    model: str = "ViT-B-32"
    model_config: str | None = None
    val_data: str | None = None
    zeroshot_folder: str | None = None
    zeroshot_templates: str = "clip80"
    epochs: int = 32
    batch_size: int = 256
    lr: float = 5e-4
    wd: float = 0.2
    warmup: int = 2000
    precision: str = "auto"  # bf16 on GPU, fp32 on CPU
    workers: int = 4
    accum_freq: int = 1
    grad_checkpointing: bool = False
    grad_clip_norm: float | None = None
    resume: str | None = None
    train_num_samples: int | None = None
    dataset_resampled: bool = False
    seed: int = 0
    save_every: int = 0  # steps; 0: at the end of each epoch
    keep_last: int = 3
    log_every: int = 20
    val_every: int = 0  # steps; 0: at the end of each epoch
    loss: str = "clip"
    tokenizer: str | None = None
    max_steps: int | None = None
    max_bad_steps: int = 10
    compile: bool = False
    device: str = "auto"
    shuffle_buffer: int | None = None
    quick_gelu: bool = False
    device_augment: str = "auto"  # on: workers only decode + crop, the device resizes; auto: on with a GPU
    pretrained: str | None = None  # initial weights: an openwit checkpoint or open_clip/OpenAI weights


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise UserError("--precision fp16 needs a GPU (its grad scaler is CUDA-only); use bf16 or fp32 on CPU")
    if precision not in ("bf16", "fp16", "fp32"):
        raise UserError(f"--precision {precision}: choose bf16, fp16, fp32 or auto")
    return precision


def _rng_state(device: torch.device) -> dict:
    _, key, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                       "cached": float(cached)}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


class Run:
    """Everything one training run holds; `fit()` runs it."""

    def __init__(self, cfg: TrainConfig, d: distributed.Dist):
        self.cfg, self.d = cfg, d
        if not cfg.train_data:
            raise UserError("no training data: pass --train-data URLS (e.g. 'out/{00000..00099}.tar')")
        if not cfg.out:
            raise UserError("no output folder: pass --out DIR")
        if cfg.loss not in LOSSES:
            raise UserError(f"--loss {cfg.loss}: choose one of {', '.join(LOSSES)}")
        if cfg.accum_freq < 1 or cfg.batch_size < 1:
            raise UserError("--batch-size and --accum-freq must be >= 1")
        self.precision = resolve_precision(cfg.precision, d.device)
        self.resumed = self._load_resume()
        self.tokenizer, self.model_cfg, pretrained = self._model_and_tokenizer()
        torch.manual_seed(cfg.seed)
        self.model = CLIP(self.model_cfg).to(d.device)
        if pretrained is not None:  # --pretrained, in a run that does not resume
            _load_pretrained(self.model, pretrained)
        if cfg.grad_checkpointing:
            self.model.set_grad_checkpointing(True)
        self.loader = self._make_loader()
        self.to_device = self.loader.device_transform()  # resize + normalise on the device, or just move
        self.steps_per_epoch = len(self.loader) // cfg.accum_freq
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.optimizer = make_optimizer(self.model, cfg.lr, cfg.wd)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.step, self.bad_in_a_row = 0, 0
        self.signals, self.stop_requested = StopSignals(), False  # fit() listens for SIGTERM / Ctrl-C
        self.saved_step, self.saved_path = None, None
        if self.resumed:
            self._restore(self.resumed)
        net = self.model
        if d.enabled:
            net = DistributedDataParallel(net, device_ids=[d.device.index] if d.device.type == "cuda" else None)
        if cfg.compile:
            net = torch.compile(net)
        self.stepper = Stepper(self.model, net, LOSSES[cfg.loss], self.optimizer, d, self.precision,
                               cfg.grad_clip_norm, self.scaler)
        self.metrics = logs.MetricsLog(cfg.out, enabled=d.is_main)

    # --- setup -----------------------------------------------------------------------------
    def _load_resume(self) -> dict | None:
        spec = self.cfg.resume
        if not spec:
            return None
        if spec == "latest":
            found = checkpoint.resolve(self.cfg.out) if _exists(self.cfg.out) else None
            if found is None:
                log.info("--resume latest: no checkpoint in %s yet, starting from scratch", self.cfg.out)
                return None
            spec = found
        state = checkpoint.load(spec)
        if state.get("format") != checkpoint.FORMAT:
            raise UserError(f"{state['__path__']} is not an openwit training checkpoint "
                            "(open_clip weights: evaluate them with openwit-eval)")
        return state

    def _model_and_tokenizer(self) -> tuple[CaptionTokenizer, ModelConfig, dict | None]:
        """The tokenizer, the model's config and the --pretrained weights to start from (or None)."""
        cfg = self.cfg
        base = model_config(cfg.model, cfg.model_config)
        if cfg.quick_gelu:
            base = dataclasses.replace(base, quick_gelu=True)
        if cfg.loss == "siglip" and base.init_logit_bias is None:
            base = dataclasses.replace(base, init_logit_scale=math.log(10), init_logit_bias=-10.0)
        if self.resumed:
            saved = ModelConfig.from_dict(self.resumed["model_config"])
            if base.with_vocab(saved.text.vocab_size).architecture() != saved.architecture():
                raise UserError(f"{self.resumed['__path__']} is a {saved.name} checkpoint; this run asks for "
                                f"{base.name} ({_diff(saved.architecture(), base.architecture())}): "
                                "pass the same --model or a new --out")
            tok = CaptionTokenizer(_tokenizer_from_json(self.resumed["tokenizer"]), saved.text.context_length)
            if cfg.pretrained and self.d.is_main:
                log.info("resuming: the checkpoint's weights, not --pretrained %s", cfg.pretrained)
            return tok, saved, None
        if cfg.pretrained:
            return self._from_pretrained(base)
        first = _first_url(cfg.train_data)
        tok = load_tokenizer(cfg.tokenizer, first, base.text.context_length)
        return tok, base.with_vocab(tok.vocab_size), None

    def _from_pretrained(self, base: ModelConfig) -> tuple[CaptionTokenizer, ModelConfig, dict]:
        """Tokenizer, config and weights of --pretrained (the weights' vocabulary decides the tokenizer:
        an openwit checkpoint's own, CLIP's BPE for open_clip/OpenAI weights — not the shards')."""
        from openwit.trainer.interop import load_model

        named = None if self.cfg.model_config else self.cfg.model  # a --model-config: compared below
        model, tok, info = load_model(self.cfg.pretrained, named, self.cfg.tokenizer, base.quick_gelu)
        cfg = model.config
        if named is None and base.with_vocab(cfg.text.vocab_size).architecture() != cfg.architecture():
            raise UserError(f"--pretrained {self.cfg.pretrained} holds a {cfg.name} model, not the "
                            f"--model-config one ({_diff(cfg.architecture(), base.architecture())})")
        if base.init_logit_bias is not None and cfg.init_logit_bias is None:  # siglip on CLIP weights: a new bias
            cfg = dataclasses.replace(cfg, init_logit_bias=base.init_logit_bias)
        if self.d.is_main:
            log.info("initial weights: %s (%s%s), vocabulary %s of its tokenizer", info["checkpoint"], info["model"],
                     ", open_clip layout" if info.get("format") == "open_clip" else f", step {info.get('step')}",
                     f"{tok.vocab_size:,}")
        return tok, cfg, model.state_dict()

    def _make_loader(self):
        cfg, d = self.cfg, self.d
        loader = make_loader(cfg.train_data, cfg.batch_size, image_size=self.model_cfg.vision.image_size,
                             resampled=cfg.dataset_resampled, num_samples=cfg.train_num_samples, seed=cfg.seed,
                             shuffle_buffer=cfg.shuffle_buffer, tokenizer=self.tokenizer, num_workers=cfg.workers,
                             rank=d.rank, world_size=d.world_size, context_length=self.model_cfg.text.context_length,
                             pin_memory=d.device.type == "cuda", device_augment=self._device_augment())
        need = cfg.batch_size * cfg.accum_freq * d.world_size
        if loader.num_samples < need:
            raise UserError(f"the dataset has {loader.num_samples} samples, fewer than one step needs "
                            f"({cfg.batch_size} × {cfg.accum_freq} accumulation × {d.world_size} processes = {need}): "
                            "lower --batch-size or add data")
        if len(loader) < cfg.accum_freq:
            raise UserError(f"an epoch has {len(loader)} batches per process, fewer than --accum-freq {cfg.accum_freq}")
        return loader

    def _device_augment(self) -> bool:
        mode = self.cfg.device_augment
        if mode not in ("auto", "on", "off"):
            raise UserError(f"--device-augment {mode}: choose auto, on or off")
        return mode == "on" or (mode == "auto" and self.d.device.type == "cuda")

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.loader.load_state_dict(state["loader"])
        rng = state["rng"][self.d.rank] if self.d.rank < len(state["rng"]) else state["rng"][0]
        _set_rng_state(rng, self.d.device)
        if self.d.is_main:
            log.info("resumed from %s: step %d, epoch %d, batch %d of the epoch", state["__path__"], self.step,
                     self.loader.epoch, self.loader.batches)

    # --- the loop --------------------------------------------------------------------------
    def describe(self) -> str:
        m, c = self.model_cfg, self.cfg
        return (f"training {m.name} ({count_parameters(self.model):,} parameters, vocabulary {m.text.vocab_size:,}) "
                f"on {self.loader.num_samples:,} samples, {self.d.world_size} process(es) on {self.d.device.type}, "
                f"batch {c.batch_size} × {c.accum_freq} × {self.d.world_size} = {c.batch_size * c.accum_freq * self.d.world_size}, "
                f"{self.steps_per_epoch:,} steps/epoch, {self.total_steps:,} steps, precision {self.precision}, loss {c.loss}, "
                f"image resize on the {'device' if self._device_augment() else 'loader workers'}")

    def fit(self) -> dict:
        if self.d.is_main:
            log.info("%s", self.describe())
        window, last = logs.Window(), {}
        t_wait = time.perf_counter()
        with self.signals:  # SIGTERM / Ctrl-C: finish the step, save it, stop
            while self.step < self.total_steps:
                micro = []
                for images, tokens in self.loader:
                    micro.append((self.to_device(images, self.d.device), tokens.to(self.d.device, non_blocking=True)))
                    if len(micro) < self.cfg.accum_freq:
                        continue
                    wait = time.perf_counter() - t_wait
                    last = self._one_step(micro, window, wait)
                    micro = []
                    self._after_step(window, last)
                    if self.stop_requested:
                        self._stop()
                    t_wait = time.perf_counter()
                    if self.step >= self.total_steps:
                        break
                # leftover micro-batches at an epoch's end (len % accum_freq) are dropped
        self.save()
        final = self.evaluate() if self._has_eval() else {}
        self.metrics.close()
        return {"step": self.step, "loss": last.get("loss"), **final}

    def _one_step(self, micro, window: logs.Window, wait: float) -> dict:
        lr = lr_at(self.step, self.cfg.lr, self.cfg.warmup, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        result = self.stepper.step(micro, stop=self.signals.requested)
        self.stop_requested = result.stop  # on any rank: all ranks stop after this step
        self.step += 1
        window.add(wait, sum(b[0].shape[0] for b in micro) * self.d.world_size, result.loss if result.ok else None)
        if result.ok:
            self.bad_in_a_row = 0
        else:
            self.bad_in_a_row += 1
            if self.d.is_main:
                log.warning("step %d: loss %s or gradient norm %s is not finite; update skipped (%d in a row)",
                            self.step, result.loss, result.grad_norm, self.bad_in_a_row)
            if self.bad_in_a_row >= self.cfg.max_bad_steps:
                raise UserError(f"the loss or gradients were not finite for {self.bad_in_a_row} steps in a row "
                                f"(last at step {self.step}): lower --lr, raise --warmup, use --precision bf16/fp32, "
                                "or check the data")
        return {"loss": result.loss, "lr": lr, "grad_norm": result.grad_norm, "skipped": not result.ok}

    def _after_step(self, window: logs.Window, last: dict) -> None:
        c = self.cfg
        if self.d.is_main and (self.step % c.log_every == 0 or self.step == self.total_steps):
            rate, wait = window.rates()
            scale = float(self.model.logit_scale.detach().exp())
            eta = (self.total_steps - self.step) * (time.perf_counter() - window.start) / max(window.steps, 1)
            mean_loss = window.mean_loss()
            log.info("%s", logs.progress_line(self.step, self.total_steps, self.loader.epoch, rate,
                                              self.d.world_size, wait, mean_loss, last["lr"], scale, eta,
                                              "GPU" if self.d.device.type == "cuda" else "process"))
            self.metrics.write({"kind": "train", "step": self.step, "epoch": self.loader.epoch, **last,
                                "loss_mean": mean_loss,
                                "logit_scale": scale, "samples_per_s": rate,
                                "samples_per_s_per_gpu": rate / self.d.world_size, "data_wait": wait,
                                "faults": dict(self.loader.faults), "time": time.time()})
            window.reset()
        if self.stop_requested:
            return  # fit() saves this step and stops: no evaluation first
        epoch_end = self.step % self.steps_per_epoch == 0
        if self.step < self.total_steps and (c.save_every and self.step % c.save_every == 0
                                             or not c.save_every and epoch_end):
            self.save()
        if self._has_eval() and self.step < self.total_steps and (
                c.val_every and self.step % c.val_every == 0 or not c.val_every and epoch_end):
            self.evaluate()

    # --- checkpoints and evaluation ----------------------------------------------------------
    def state(self) -> dict:
        return {"model_config": self.model_cfg.to_dict(), "tokenizer": self.tokenizer.tokenizer.to_str(),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else None, "step": self.step,
                "schedule": {"lr": self.cfg.lr, "warmup": self.cfg.warmup, "total_steps": self.total_steps},
                **self._per_rank_states(), "train_config": dataclasses.asdict(self.cfg)}

    def _per_rank_states(self) -> dict:
        """Every rank's RNG states and loader position (lists indexed by rank), so each rank resumes
        exactly where it was, without replaying."""
        mine = {"rng": _rng_state(self.d.device), "loader": self.loader.state_dict()}
        states = [mine]
        if self.d.enabled:
            states = [None] * self.d.world_size
            torch.distributed.all_gather_object(states, mine)
        return {"rng": [s["rng"] for s in states], "loader": [s["loader"] for s in states]}

    def save(self) -> str | None:
        """Every rank calls this (they all join the RNG gather); the main rank writes, once a step,
        and gets the checkpoint's path."""
        if self.saved_step == self.step:
            return self.saved_path
        state = self.state()
        path = None
        if self.d.is_main:
            path = checkpoint.save(self.cfg.out, self.step, state, self.cfg.keep_last)
            self.metrics.flush()
            log.info("checkpoint %s", path)
        distributed.barrier(self.d)
        self.saved_step, self.saved_path = self.step, path
        return path

    def _stop(self) -> None:
        """A stop was requested (this or another rank got SIGTERM or Ctrl-C): save this step, end."""
        path = self.save()
        self.metrics.close()
        raise Stopped(self.signals.signum or signal.SIGTERM, self.step, path)

    def _has_eval(self) -> bool:
        return bool(self.cfg.val_data or self.cfg.zeroshot_folder)

    def evaluate(self) -> dict:
        """Retrieval/val loss on --val-data and zero-shot on --zeroshot-folder (main rank; others wait)."""
        results: dict = {}
        if self.d.is_main:
            was_training = self.model.training
            self.model.eval()
            enc = Encoder(self.model, self.tokenizer, self.d.device, self.precision, self.cfg.batch_size)
            if self.cfg.val_data:
                results.update(retrieval(enc, self.cfg.val_data))
            if self.cfg.zeroshot_folder:
                results.update(zeroshot_folder(enc, self.cfg.zeroshot_folder, load_templates(self.cfg.zeroshot_templates)))
            self.model.train(was_training)
            log.info("eval at step %d: %s", self.step,
                     ", ".join(f"{k} {v:.4f}" for k, v in results.items() if isinstance(v, float)))
            self.metrics.write({"kind": "eval", "step": self.step, **results, "time": time.time()})
        distributed.barrier(self.d)
        return results


def _load_pretrained(model: CLIP, weights: dict) -> None:
    """Copy --pretrained weights into a new model; a logit bias they lack (siglip) keeps its init."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or set(missing) - {"logit_bias"}:
        raise UserError(f"--pretrained weights do not fit {model.config.name}: missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]}")


def _first_url(urls: str) -> str:
    from openwit.loader.urls import expand_urls

    return expand_urls(urls)[0]


def _exists(path: str) -> bool:
    import fsspec

    fs, inner = fsspec.core.url_to_fs(path)
    return fs.exists(inner)


def _diff(a: dict, b: dict, prefix: str = "") -> str:
    out = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            sub = _diff(a[k], b[k], f"{prefix}{k}.")
            if sub:
                out.append(sub)
        elif a.get(k) != b.get(k):
            out.append(f"{prefix}{k}: {a.get(k)} vs {b.get(k)}")
    return ", ".join(out)


def train(cfg: TrainConfig) -> dict:
    """Run training to the end; returns the final step, loss and evaluation results."""
    d = distributed.setup(cfg.device)
    try:
        return Run(cfg, d).fit()
    finally:
        distributed.cleanup()
