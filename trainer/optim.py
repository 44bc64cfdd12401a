"""AdamW with CLIP's settings and a warmup + cosine learning-rate schedule."""
from __future__ import annotations

import math

import torch
from torch import nn

BETAS = (0.9, 0.98)
EPS = 1e-6


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on ≥2-D weights (matrices, convolutions, embeddings) only; gains, biases, the
    class token and the logit scale/bias are not decayed (open_clip's rule)."""
    decay, no_decay = [], []
    for _, p in sorted(model.named_parameters()):
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    on_gpu = all(p.is_cuda for p in model.parameters())  # fused kernel on GPU, multi-tensor ops on CPU
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=BETAS, eps=EPS,
                             **({"fused": True} if on_gpu else {"foreach": True}))


def lr_at(step: int, base_lr: float, warmup: int, total: int) -> float:
    """Linear warmup from base_lr/warmup to base_lr over `warmup` steps, then cosine to 0 at `total`."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span)) * base_lr
