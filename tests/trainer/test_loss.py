"""Losses and steps: distributed gradients equal one process's (2 gloo processes), accumulation
equals the big batch, non-finite steps are skipped."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from openwit.trainer import distributed
from openwit.trainer.config import MODELS
from openwit.trainer.loss import LOSSES, clip_loss, local_clip_loss, siglip_loss
from openwit.trainer.model import CLIP
from openwit.trainer.optim import make_optimizer, param_groups
from openwit.trainer.step import Stepper
from trainer_helpers import free_port

VOCAB, N = 300, 8  # per-rank batch


def _model(loss: str = "clip") -> CLIP:
    torch.manual_seed(0)
    cfg = MODELS["tiny-vit"].with_vocab(VOCAB)
    if loss == "siglip":
        import dataclasses
        cfg = dataclasses.replace(cfg, init_logit_bias=-10.0)
    return CLIP(cfg)


def _batch(n: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 32, 32, generator=g)
    tokens = torch.randint(1, VOCAB - 2, (n, 32), generator=g)
    tokens[:, 0], tokens[torch.arange(n), torch.randint(3, 30, (n,), generator=g)] = VOCAB - 2, VOCAB - 1
    return images, tokens


def _grads(model) -> dict:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _rank_main(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        images, tokens = _batch(2 * N)
        mine = slice(rank * N, rank * N + N)
        result = {}
        for name in ("clip", "siglip", "clip_no_grad_gather"):
            model = _model(name)
            ddp = DistributedDataParallel(model)
            img, txt, scale = ddp(images[mine], tokens[mine])
            fn = _clip_loss_no_grad_gather if name == "clip_no_grad_gather" else LOSSES[name]
            loss = fn(img, txt, scale, model.logit_bias)
            loss.backward()
            result[name] = (_grads(model), loss.detach())
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_distributed_gradients_equal_single_process(tmp_path):
    mp.spawn(_rank_main, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    images, tokens = _batch(2 * N)
    for name in ("clip", "siglip"):
        model = _model(name)
        img, txt, scale = model(images, tokens)
        loss = LOSSES[name](img, txt, scale, model.logit_bias)
        loss.backward()
        ref = _grads(model)
        # the ranks' mean loss is the whole batch's loss; DDP leaves the same gradient on both
        assert abs(float((ranks[0][name][1] + ranks[1][name][1]) / 2) - float(loss.detach())) < 1e-6
        for key, g in ref.items():
            for r in range(2):
                torch.testing.assert_close(ranks[r][name][0][key], g, atol=1e-6, rtol=1e-5, msg=f"{name} {key}")
    # the check has teeth: gathering features without gradients gives other gradients
    images, tokens = _batch(2 * N)
    cut = ranks[0]["clip_no_grad_gather"][0]
    assert max(float((cut[k] - g).abs().max()) for k, g in _reference("clip", images, tokens).items()) > 1e-3


def _reference(name, images, tokens) -> dict:
    model = _model(name)
    img, txt, scale = model(images, tokens)
    LOSSES[name](img, txt, scale, model.logit_bias).backward()
    return _grads(model)


def _clip_loss_no_grad_gather(img, txt, scale, bias=None):
    """The wrong way (open_clip issue #894): all_gather without gradients, local loss."""
    rank, world = dist.get_rank(), dist.get_world_size()
    all_img, all_txt = [torch.empty_like(img) for _ in range(world)], [torch.empty_like(txt) for _ in range(world)]
    dist.all_gather(all_img, img.detach())
    dist.all_gather(all_txt, txt.detach())
    all_img[rank], all_txt[rank] = img, txt
    return local_clip_loss(img, txt, torch.cat(all_img), torch.cat(all_txt), scale, rank * img.shape[0])


def _stepper(model, sgd: bool = False):
    opt = torch.optim.SGD(model.parameters(), lr=0.5) if sgd else make_optimizer(model, 1e-3, 0.2)
    return Stepper(model, model, clip_loss, opt, distributed.Dist(), "fp32")


def test_accumulation_equals_big_batch():
    """--accum-freq 4 at batch 4 = batch 16: same loss, same gradients, same update. (SGD makes the
    update proportional to the gradient; Adam's first step is ~lr·sign(g), which turns float noise
    on near-zero gradients into full-size differences.)"""
    images, tokens = _batch(16, seed=3)
    big, acc = _model(), _model()
    r_big = _stepper(big, sgd=True).step([(images, tokens)])
    r_acc = _stepper(acc, sgd=True).step([(images[i: i + 4], tokens[i: i + 4]) for i in range(0, 16, 4)])
    assert r_big.ok and r_acc.ok
    assert abs(r_big.loss - r_acc.loss) < 1e-6
    assert abs(r_big.grad_norm - r_acc.grad_norm) < 1e-5
    for (name, a), b in zip(big.named_parameters(), acc.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


def test_non_finite_loss_skips_the_update():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, tokens = _batch(8)
    images[3] = float("nan")
    result = _stepper(model).step([(images, tokens)])
    assert not result.ok
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    result = _stepper(model).step([_batch(8)])
    assert result.ok and not torch.equal(model.text.proj, before["text.proj"])


def test_weight_decay_only_on_matrices():
    model = _model()
    decay, no_decay = param_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.2
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert {"logit_scale", "visual.class_token", "text.ln_final.weight", "visual.ln_pre.bias"} <= skipped
    assert "text.token_embedding.weight" not in skipped and "visual.proj" not in skipped


def test_siglip_loss_matches_its_definition():
    img = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    t, b = torch.tensor(10.0), torch.tensor(-10.0)
    z = 2 * torch.eye(5) - 1
    expected = -torch.nn.functional.logsigmoid(z * (t * img @ txt.T + b)).sum() / 5
    assert torch.allclose(siglip_loss(img, txt, t, b), expected)


def test_clip_loss_logits_clamp():
    from openwit.trainer.model import MAX_LOGIT_SCALE
    model = _model()
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    _stepper(model).step([_batch(4)])
    assert float(model.logit_scale.detach()) <= MAX_LOGIT_SCALE + 1e-6


@pytest.mark.parametrize("precision", ["bf16"])
def test_bf16_autocast_step_on_cpu(precision):
    model = _model()
    st = Stepper(model, model, clip_loss, make_optimizer(model, 1e-3, 0.2), distributed.Dist(), precision)
    assert st.step([_batch(4)]).ok
