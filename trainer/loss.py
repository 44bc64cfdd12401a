"""Contrastive losses over image×text logits: CLIP's symmetric cross-entropy and SigLIP's sigmoid loss.

Distributed: every rank gathers all ranks' features *with gradients* (`gather_with_grad`) and
computes only its own rows (local images against all texts, local texts against all images). The
gather's backward sums each slice's gradient over ranks, so after DDP averages the parameter
gradients they equal those of one process holding the whole batch (tests/trainer/test_loss.py
checks this on 2 gloo processes). Gathering without gradients and computing the local loss gives
wrong gradients (open_clip issue #894).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# torch 2.13 renamed the tensor collectives (the old names warn)
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0; backward: the sum over ranks of the gradient of this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, world = _world()
        ctx.rank, ctx.n = rank, x.shape[0]
        out = torch.empty((world * x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
        _all_gather(out, x.contiguous())
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        if dist.get_backend() == "nccl":
            out = torch.empty((ctx.n, *grad.shape[1:]), dtype=grad.dtype, device=grad.device)
            _reduce_scatter(out, grad)
            return out
        dist.all_reduce(grad)  # gloo has no reduce_scatter: reduce everything, keep our slice
        return grad[ctx.rank * ctx.n: (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' `x` concatenated in rank order (the input itself in one process)."""
    return x if _world()[1] == 1 else _GatherWithGrad.apply(x)


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
              logit_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric cross-entropy of this rank's rows; features are L2-normalised, logit_scale exp'd.

    With W ranks of n samples each, the mean of the ranks' losses is the loss of the whole batch.
    """
    rank, _ = _world()
    all_images, all_texts = gather_with_grad(image_features), gather_with_grad(text_features)
    return local_clip_loss(image_features, text_features, all_images, all_texts, logit_scale,
                           rank * image_features.shape[0])


def local_clip_loss(image_features, text_features, all_images, all_texts, logit_scale, offset: int) -> torch.Tensor:
    """The rows of the global N×N logits that belong to this rank's samples (global indices
    `offset` … `offset + n − 1`): its images against all texts, its texts against all images."""
    n = image_features.shape[0]
    labels = torch.arange(offset, offset + n, device=image_features.device)
    logits_per_image = logit_scale * image_features @ all_texts.T
    logits_per_text = logit_scale * text_features @ all_images.T
    return (F.cross_entropy(logits_per_image.float(), labels) + F.cross_entropy(logits_per_text.float(), labels)) / 2


def siglip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor | None = None) -> torch.Tensor:
    """SigLIP: −log σ(z·(t·x·y + b)) with z = +1 on matching pairs and −1 elsewhere, summed over this
    rank's images against all texts and divided by the rank's batch size (as in the paper)."""
    rank, _ = _world()
    all_texts = gather_with_grad(text_features)
    n = image_features.shape[0]
    logits = logit_scale * image_features @ all_texts.T
    if logit_bias is not None:
        logits = logits + logit_bias
    signs = -torch.ones_like(logits)
    signs[torch.arange(n), torch.arange(rank * n, rank * n + n)] = 1.0
    return -F.logsigmoid(signs * logits.float()).sum() / n


LOSSES = {"clip": clip_loss, "siglip": siglip_loss}
