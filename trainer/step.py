"""One optimisation step over `accum_freq` micro-batches, contrastive-correct, with a finite check.

With accumulation the loss is the loss of the whole accumulated batch: first every micro-batch's
features are computed without gradients; then each micro-batch is run again with gradients and
its fresh features replace its cached ones in the full batch before the loss. Summed over the
micro-batches this is exactly the gradient of the big batch's loss. The shared logit scale (and
bias) take their gradient in the last micro-step only (in every micro-step they would get K times
their gradient). DDP's gradient all-reduce runs only on the last micro-step (`no_sync`).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from openwit.trainer import distributed
from openwit.trainer.model import MAX_LOGIT_SCALE


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    ok: bool  # False: loss or gradient not finite, no update made
    stop: bool = False  # some rank was asked to stop (SIGTERM, Ctrl-C): every rank stops after this step


class Stepper:
    """Holds what every step needs: the (possibly DDP-wrapped) model, loss, optimizer, precision."""

    def __init__(self, model: nn.Module, net: nn.Module, loss_fn, optimizer: torch.optim.Optimizer,
                 d: distributed.Dist, precision: str, grad_clip_norm: float | None = None,
                 scaler: torch.amp.GradScaler | None = None):
        self.model, self.net, self.loss_fn, self.optimizer = model, net, loss_fn, optimizer
        self.d, self.grad_clip_norm, self.scaler = d, grad_clip_norm, scaler
        self.precision = precision
        self.params = [p for p in model.parameters() if p.requires_grad]

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def _loss(self, images, texts, scale) -> torch.Tensor:
        bias = self.model.logit_bias
        return self.loss_fn(images, texts, scale, bias)

    def forward_backward(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        if len(batches) == 1:
            with autocast_context(self.precision, self.d.device):
                f_img, f_txt, scale = self.net(*batches[0])
                loss = self._loss(f_img, f_txt, scale)
            self._backward(loss)
            return loss.detach()
        with torch.no_grad(), autocast_context(self.precision, self.d.device):
            cached = [self.net(images, tokens)[:2] for images, tokens in batches]
        last = len(batches) - 1
        for j, (images, tokens) in enumerate(batches):
            sync = self.d.enabled and j < last and hasattr(self.net, "no_sync")
            with self.net.no_sync() if sync else contextlib.nullcontext():
                with autocast_context(self.precision, self.d.device):
                    f_img, f_txt, scale = self.net(images, tokens)
                    all_img = torch.cat([c[0] for c in cached[:j]] + [f_img] + [c[0] for c in cached[j + 1:]])
                    all_txt = torch.cat([c[1] for c in cached[:j]] + [f_txt] + [c[1] for c in cached[j + 1:]])
                    loss = self._loss(all_img, all_txt, scale if j == last else scale.detach())
                self._backward(loss)
        return loss.detach()

    def step(self, batches: list[tuple[torch.Tensor, torch.Tensor]], stop: bool = False) -> StepResult:
        """Forward/backward over the micro-batches, then one update unless something is not finite.
        `stop` (this rank was asked to stop) travels in the same all-reduce as the finite check."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward_backward(batches)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        max_norm = self.grad_clip_norm if self.grad_clip_norm else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        finite_loss, finite_grad = torch.stack([torch.isfinite(loss), torch.isfinite(grad_norm)]).tolist()
        ok, go_on = distributed.all_true_many([finite_loss and (finite_grad or self.scaler is not None), not stop],
                                              self.d)
        if ok and self.scaler:
            self.scaler.step(self.optimizer)  # skips the update itself on inf/nan gradients
            self.scaler.update()
        elif ok:
            self.optimizer.step()
        else:
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler:
                self.scaler.update(self.scaler.get_scale() / 2)
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        return StepResult(float(loss), float(grad_norm), ok, stop=not go_on)


def autocast_context(precision: str, device: torch.device):
    """bf16 / fp16 autocast on the device, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
