"""Write tests/fixtures/openclip/: open_clip 3.3 reference outputs for weight-interop tests.

Files written:
  param_counts.json  parameter counts + model configs of ViT-B-32, ViT-B-16, ViT-L-14, RN50, RN101
  tiny_vit.pt        tiny open_clip CLIP (ViT image tower): config, state_dict, inputs, features
  tiny_rn.pt         tiny open_clip CLIP (ModifiedResNet image tower): same fields + "keys"
  README.md          open_clip's CLIP module / state_dict layout, for re-implementing it

The reference is open_clip itself, run in its own venv so openwit's code is not involved. The
tiny models' tensors are perturbed away from their init values (LayerNorm gains/biases, zero
biases, BatchNorm running stats, zero-init bn3 gains, logit_scale) so that a swapped or ignored
tensor changes the outputs. The script also re-computes every output with a plain functional
forward written from the README's description and asserts it matches open_clip, so the README
is checked, not just written. CPU only, no downloads; about a minute. Regenerate with:

    python3 -m venv benchmarks/.venv-openclip
    benchmarks/.venv-openclip/bin/pip install torch==2.14.1 torchvision==0.29.1
    benchmarks/.venv-openclip/bin/pip install "open-clip-torch[training]==3.3.0" \\
        torch==2.14.1 torchvision==0.29.1 pyarrow
    benchmarks/.venv-openclip/bin/python benchmarks/make_openclip_fixture.py [tests/fixtures/openclip]

The .pt files hold only plain tensors / dicts / lists / str / int / float, so they load with
torch.load(path, weights_only=True) in openwit's own venv.
"""
import copy
import json
import os
import re
import sys

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP

EXPECTED_COUNTS = {"ViT-B-32": 151_277_313, "RN50": 102_007_137}
BIG_MODELS = ["ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50", "RN101"]

TEXT_CFG = {"context_length": 16, "vocab_size": 100, "width": 64, "heads": 2, "layers": 2}
TINY_VIT = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": dict(TEXT_CFG),
}
# width 4 (not 16) keeps the file < 1 MB: the attention pool alone is 3*(32*width)^2 weights.
# heads = width*32 // head_width = 128 // 16 = 8.
TINY_RN = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 4, "head_width": 16},
    "text_cfg": dict(TEXT_CFG),
}
LN_EPS = 1e-5  # torch default; open_clip passes none for these configs
BN_EPS = 1e-5


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def param_counts():
    out = {"open_clip_version": open_clip.__version__, "torch_version": str(torch.__version__),
           "how": "sum(p.numel() for p in open_clip.create_model(name, pretrained=None).parameters())",
           "models": {}}
    for name in BIG_MODELS:
        torch.manual_seed(0)
        model = open_clip.create_model(name, pretrained=None, device="cpu")
        vis = sum(p.numel() for p in model.visual.parameters())
        total = n_params(model)
        out["models"][name] = {
            "params": total,
            "visual_params": vis,
            "text_and_logit_params": total - vis,
            "config": open_clip.get_model_config(name),
            "model_class": type(model).__name__,
            "visual_class": type(model.visual).__name__,
        }
        print(f"{name:10s} {total:>13,d} params (visual {vis:,d})", flush=True)
        if name in EXPECTED_COUNTS:
            assert total == EXPECTED_COUNTS[name], (name, total, EXPECTED_COUNTS[name])
        if name in ("ViT-B-32", "RN50"):
            out["models"][name]["state_dict_shapes"] = {
                k: list(v.shape) for k, v in model.state_dict().items()}
        del model
    return out


@torch.no_grad()
def perturb(model, gen):
    """Move every parameter and floating persistent buffer away from its init value."""
    persistent = set(model.state_dict().keys())
    for name, p in model.named_parameters():
        if p.dim() <= 1:
            # gains, biases, class_embedding, logit_scale: clearly off 1 / 0 / init
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
        else:
            p.add_(0.25 * max(p.std().item(), 0.02) * torch.randn(p.shape, generator=gen))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if bns:
        # calibrate running stats on random images first (so activations stay normalised and the
        # features depend on the input), then move them off the calibrated values
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        model.train()
        s = model.visual.image_size
        for _ in range(4):
            model.visual(torch.randn((8, 3, s, s), generator=gen))
        for m in bns:
            m.momentum = 0.1
    for name, b in model.named_buffers():
        if name not in persistent or not b.is_floating_point():
            continue  # attn_mask (non-persistent), num_batches_tracked (int64)
        if name.endswith("running_var"):
            b.mul_(torch.empty(b.shape).uniform_(0.7, 1.4, generator=gen))  # stays > 0
        elif name.endswith("running_mean"):
            b.add_(0.1 * b.abs().mean() * torch.randn(b.shape, generator=gen))
        else:
            raise AssertionError(f"unexpected floating buffer {name}")


def make_tokens(gen, ctx, vocab, lengths):
    """SOT = vocab-2, EOT = vocab-1 (the highest id, as in CLIP's 49406/49407), pad 0."""
    sot, eot = vocab - 2, vocab - 1
    rows = []
    for n in lengths:  # n = number of content tokens
        content = torch.randint(1, sot, (n,), generator=gen)
        row = torch.zeros(ctx, dtype=torch.int64)
        row[0] = sot
        row[1:1 + n] = content
        row[1 + n] = eot
        rows.append(row)
    return torch.stack(rows)


# ---------------------------------------------------------------- independent functional forward
def _ln(x, sd, pre):
    return F.layer_norm(x, x.shape[-1:], sd[pre + ".weight"], sd[pre + ".bias"], LN_EPS)


def _mha(x, sd, pre, heads, mask=None):
    """x [B, L, W]; nn.MultiheadAttention with packed in_proj (rows q | k | v)."""
    B, L, W = x.shape
    qkv = x @ sd[pre + ".in_proj_weight"].T + sd[pre + ".in_proj_bias"]
    q, k, v = qkv.split(W, dim=-1)
    q, k, v = (t.reshape(B, L, heads, W // heads).transpose(1, 2) for t in (q, k, v))
    a = (q @ k.transpose(-1, -2)) / (W // heads) ** 0.5
    if mask is not None:
        a = a + mask
    o = (a.softmax(-1) @ v).transpose(1, 2).reshape(B, L, W)
    return o @ sd[pre + ".out_proj.weight"].T + sd[pre + ".out_proj.bias"]


def _transformer(x, sd, pre, layers, heads, mask=None):
    for i in range(layers):
        b = f"{pre}.resblocks.{i}"
        x = x + _mha(_ln(x, sd, b + ".ln_1"), sd, b + ".attn", heads, mask)
        h = _ln(x, sd, b + ".ln_2")
        h = F.gelu(h @ sd[b + ".mlp.c_fc.weight"].T + sd[b + ".mlp.c_fc.bias"])  # exact erf GELU
        x = x + h @ sd[b + ".mlp.c_proj.weight"].T + sd[b + ".mlp.c_proj.bias"]
    return x


def ref_encode_text(sd, tokens, cfg):
    t = cfg["text_cfg"]
    L = tokens.shape[1]
    x = sd["token_embedding.weight"][tokens] + sd["positional_embedding"]
    mask = torch.full((L, L), float("-inf")).triu(1)  # causal: key j > query i masked
    x = _transformer(x, sd, "transformer", t["layers"], t["heads"], mask)
    x = _ln(x, sd, "ln_final")  # LN on all tokens, then pool
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]  # first position of the highest id
    return x @ sd["text_projection"]


def ref_encode_image_vit(sd, images, cfg):
    v = cfg["vision_cfg"]
    p = v["patch_size"]
    x = F.conv2d(images, sd["visual.conv1.weight"], stride=p)  # no bias
    x = x.flatten(2).transpose(1, 2)  # [B, grid*grid, W], row-major patches
    cls = sd["visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + sd["visual.positional_embedding"]  # class token first
    x = _ln(x, sd, "visual.ln_pre")
    x = _transformer(x, sd, "visual.transformer", v["layers"], v["width"] // v["head_width"])
    x = _ln(x, sd, "visual.ln_post")[:, 0]
    return x @ sd["visual.proj"]


def _bn(x, sd, pre):
    return F.batch_norm(x, sd[pre + ".running_mean"], sd[pre + ".running_var"],
                        sd[pre + ".weight"], sd[pre + ".bias"], False, 0.0, BN_EPS)


def ref_encode_image_rn(sd, images, cfg):
    v = cfg["vision_cfg"]
    heads = v["width"] * 32 // v.get("head_width", 64)
    x = images
    x = F.relu(_bn(F.conv2d(x, sd["visual.conv1.weight"], stride=2, padding=1), sd, "visual.bn1"))
    x = F.relu(_bn(F.conv2d(x, sd["visual.conv2.weight"], padding=1), sd, "visual.bn2"))
    x = F.relu(_bn(F.conv2d(x, sd["visual.conv3.weight"], padding=1), sd, "visual.bn3"))
    x = F.avg_pool2d(x, 2)
    for li, nblocks in enumerate(v["layers"], start=1):
        for bi in range(nblocks):
            pre = f"visual.layer{li}.{bi}"
            stride = 2 if (li > 1 and bi == 0) else 1
            out = F.relu(_bn(F.conv2d(x, sd[pre + ".conv1.weight"]), sd, pre + ".bn1"))
            out = F.relu(_bn(F.conv2d(out, sd[pre + ".conv2.weight"], padding=1), sd, pre + ".bn2"))
            if stride > 1:
                out = F.avg_pool2d(out, stride)
            out = _bn(F.conv2d(out, sd[pre + ".conv3.weight"]), sd, pre + ".bn3")
            if pre + ".downsample.0.weight" in sd:
                idn = F.avg_pool2d(x, stride) if stride > 1 else x
                idn = _bn(F.conv2d(idn, sd[pre + ".downsample.0.weight"]), sd, pre + ".downsample.1")
            else:
                idn = x
            x = F.relu(out + idn)
    # attention pool
    B, C, H, W = x.shape
    x = x.flatten(2).transpose(1, 2)  # [B, HW, C]
    x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + sd["visual.attnpool.positional_embedding"]
    ap = "visual.attnpool."
    q = x[:, :1] @ sd[ap + "q_proj.weight"].T + sd[ap + "q_proj.bias"]  # only the mean token's query
    k = x @ sd[ap + "k_proj.weight"].T + sd[ap + "k_proj.bias"]
    val = x @ sd[ap + "v_proj.weight"].T + sd[ap + "v_proj.bias"]
    D = C // heads
    q, k, val = (t.reshape(B, -1, heads, D).transpose(1, 2) for t in (q, k, val))
    o = ((q @ k.transpose(-1, -2)) / D ** 0.5).softmax(-1) @ val  # no mask: sees all HW+1 tokens
    o = o.transpose(1, 2).reshape(B, C)
    return o @ sd[ap + "c_proj.weight"].T + sd[ap + "c_proj.bias"]


# ---------------------------------------------------------------- tiny models
def make_tiny(cfg, kind, seed):
    torch.manual_seed(seed)
    model = CLIP(**copy.deepcopy(cfg))
    gen = torch.Generator().manual_seed(seed + 1)
    perturb(model, gen)
    model.eval()

    s = cfg["vision_cfg"]["image_size"]
    ctx = cfg["text_cfg"]["context_length"]
    images = torch.randn((2, 3, s, s), generator=gen, dtype=torch.float32)
    tokens = make_tokens(gen, ctx, cfg["text_cfg"]["vocab_size"], lengths=[4, ctx - 2])
    with torch.no_grad():
        img = model.encode_image(images)
        txt = model.encode_text(tokens)
        img_n = model.encode_image(images, normalize=True)
        txt_n = model.encode_text(tokens, normalize=True)
        _, _, scale = model(images, tokens)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}

    # the README's description, as code, must reproduce open_clip
    with torch.no_grad():
        ref_img = (ref_encode_image_vit if kind == "vit" else ref_encode_image_rn)(sd, images, cfg)
        ref_txt = ref_encode_text(sd, tokens, cfg)
    torch.testing.assert_close(ref_img, img, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ref_txt, txt, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(img).all() and torch.isfinite(txt).all()
    # features must depend on the input (not be dominated by biases)
    for what, f in (("image", img), ("text", txt)):
        ratio = ((f[0] - f[1]).norm() / f[0].norm()).item()
        print(f"tiny {kind}: |{what}_0 - {what}_1| / |{what}_0| = {ratio:.3f}")
        assert ratio > 0.1, (kind, what, ratio)

    # every tensor matters: zeroing / swapping must change an output
    check_sensitivity(sd, images, tokens, cfg, kind, img, txt)

    logit_scale = scale.item()
    assert abs(model.logit_scale.exp().item() - logit_scale) < 1e-6
    logits = logit_scale * img_n @ txt_n.T
    return model, {
        "open_clip_config": copy.deepcopy(cfg),
        "open_clip_version": open_clip.__version__,
        "torch_version": str(torch.__version__),
        "model_class": "open_clip.model.CLIP",
        "visual_class": type(model.visual).__name__,
        "quick_gelu": False,
        "activation": "torch.nn.GELU() (exact erf) in transformer MLPs; ReLU in ModifiedResNet",
        "layer_norm_eps": LN_EPS,
        "text_pool_type": model.text_pool_type,
        "text_eot_id": cfg["text_cfg"]["vocab_size"] - 1,
        "text_sot_id": cfg["text_cfg"]["vocab_size"] - 2,
        "state_dict": sd,
        "keys": list(sd.keys()),
        "shapes": {k: list(v.shape) for k, v in sd.items()},
        "images": images,
        "tokens": tokens,
        "image_features": img.clone(),
        "text_features": txt.clone(),
        "image_features_normalized": img_n.clone(),
        "text_features_normalized": txt_n.clone(),
        "logit_scale": logit_scale,  # = exp(state_dict["logit_scale"])
        "logits_per_image": logits.clone(),  # logit_scale * img_n @ txt_n.T
    }


def check_sensitivity(sd, images, tokens, cfg, kind, img, txt):
    enc_img = ref_encode_image_vit if kind == "vit" else ref_encode_image_rn
    gen = torch.Generator().manual_seed(123)
    for key in sd:
        if not sd[key].is_floating_point() or key == "logit_scale":
            continue
        if key.endswith("k_proj.bias"):
            continue  # a key bias adds q.b to every score of a row: softmax cancels it exactly
        bad = dict(sd)
        # random (not uniform: LayerNorm cancels a constant shift) nudge of ~5%
        noise = torch.randn(sd[key].shape, generator=gen)
        if key.endswith("running_var"):
            bad[key] = sd[key] * torch.exp(0.1 * noise)  # keep it positive
        else:
            bad[key] = sd[key] + 0.05 * (sd[key].abs().mean() + 0.1) * noise
        with torch.no_grad():
            if key.startswith("visual."):
                diff = (enc_img(bad, images, cfg) - img).abs().max()
            else:
                diff = (ref_encode_text(bad, tokens, cfg) - txt).abs().max()
        assert diff > 1e-4, f"{kind}: output insensitive to {key} ({diff})"


# ---------------------------------------------------------------- README
def pattern(key):
    key = re.sub(r"resblocks\.\d+\.", "resblocks.{i}.", key)
    key = re.sub(r"layer(\d)\.\d+\.", r"layer\1.{b}.", key)
    key = re.sub(r"layer\d\.", "layer{L}.", key)
    return key


def pattern_table(shapes):
    seen = {}
    for k, shp in shapes.items():
        seen.setdefault(pattern(k), shp)
    return seen


README_TEXT = """\
# open_clip 3.3 reference fixtures

Made by `benchmarks/make_openclip_fixture.py` (its docstring says how to regenerate), with
open_clip {ocv} and torch {tv}, in the side venv `benchmarks/.venv-openclip`.

* `param_counts.json` - `sum(p.numel())` of `open_clip.create_model(name, pretrained=None)` and
  `open_clip.get_model_config(name)` for {bigs}. Also `state_dict_shapes` of ViT-B-32 and RN50.
{counts}
* `tiny_vit.pt`, `tiny_rn.pt` - `torch.load(p, weights_only=True)` gives a dict:
  `open_clip_config` (kwargs of `open_clip.model.CLIP(**cfg)`: `embed_dim`, `vision_cfg`,
  `text_cfg`), `state_dict` (open_clip's key names, fp32, eval mode), `keys`, `shapes`,
  `images` float32 [2,3,S,S], `tokens` int64 [2,16] (SOT=98, content, EOT=99 = the row's highest
  id, then 0 padding; EOT at positions 5 and 15), `image_features` / `text_features`
  (`encode_image` / `encode_text`, unnormalised), `*_features_normalized`, `logit_scale`
  (= exp of the stored parameter), `logits_per_image` (= logit_scale * img_n @ txt_n.T),
  `text_pool_type` ("argmax"), `quick_gelu` (False), `layer_norm_eps`, versions.
  Every parameter and running stat was perturbed off its init (LN gains != 1, zero-init biases
  and bn3 gains != 0, running_var != 1, logit_scale != ln(1/0.07)); the script checks that
  nudging any single tensor changes the outputs, and that a functional re-implementation of
  the description below reproduces open_clip's features (atol 1e-5).
  tiny_vit: embed 32; ViT 32px, patch 8 (4x4 grid), width 64, 2 layers, head_width 32 (2 heads).
  tiny_rn: embed 32; ModifiedResNet 64px, layers [1,1,1,1], width 4 (feature dim 128),
  head_width 16 (8 heads). Width 4 rather than 16 keeps the file under 1 MB.
  Text (both): ctx 16, vocab 100, width 64, 2 layers, 2 heads.

## Model: `open_clip.model.CLIP` (for these configs; no custom_text / timm / HF towers)

General
* Activation in every transformer MLP: `nn.GELU()` (exact erf, not tanh). QuickGELU
  (`x*sigmoid(1.702x)`) only if the model config has `"quick_gelu": true` (the `-quickgelu`
  configs, OpenAI weights) or `force_quick_gelu`. ViT-B-32, ViT-B-16, ViT-L-14, RN50, RN101
  configs do not set it, so they use GELU. ModifiedResNet uses ReLU regardless.
* LayerNorm: torch `nn.LayerNorm` with eps 1e-5, elementwise affine (weight+bias), computed
  in the input dtype (fp32 LN `LayerNormFp32` only when built with cast_dtype fp16/bf16).
  BatchNorm2d: eps 1e-5, momentum 0.1, affine, running stats.
* MLP ratio 4.0 (`c_fc`: width -> 4*width, `c_proj`: 4*width -> width), both with bias.
* Residual block (pre-LN, no layer scale): `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`.
* Attention = `torch.nn.MultiheadAttention(width, heads, batch_first=True)`: packed
  `in_proj_weight` [3W, W] whose rows are q, k, v in that order, `in_proj_bias` [3W],
  `out_proj.weight` [W, W], `out_proj.bias` [W]; per-head dim W/heads, scores scaled by
  1/sqrt(head_dim); head h uses columns h*D:(h+1)*D of q/k/v. Dropout 0.
* Linear weights are torch layout [out, in] (y = x @ W.T + b). `visual.proj` [W_v, E] and
  `text_projection` [W_t, E] are raw matrices applied as `x @ proj` (no bias, no transpose).
* `logit_scale`: scalar (0-dim) parameter, stored as log; init ln(1/0.07); used as exp().
  No `logit_bias` (None for CLIP unless init_logit_bias given). The forward does not clamp;
  open_clip_train clamps the stored value to [0, ln(100)] after each optimizer step.
* Heads: ViT `heads = vision width // head_width` (head_width default 64); ModifiedResNet
  attention pool `heads = width*32 // head_width` (RN50: 64*32//64 = 32). Text `heads` given.
* Non-persistent buffer: `attn_mask` on the CLIP model (`model.attn_mask`: the text causal
  mask, [ctx, ctx] float, -inf strictly above the diagonal, 0 elsewhere); NOT in the
  state_dict. Persistent buffers only in RN: BN `running_mean`, `running_var`,
  `num_batches_tracked` (int64 scalar).
* Param count of `model.parameters()` includes `logit_scale` (1) and the attention-pool /
  class / positional embeddings; buffers are not counted.

Image tower, ViT (`visual` = `VisionTransformer`)
1. `visual.conv1.weight` [W, 3, P, P]: patch embedding conv, stride P, **no bias**.
   Output flattened row-major over the grid -> tokens [B, g*g, W].
2. Prepend `visual.class_embedding` [W] as token 0, then add `visual.positional_embedding`
   [g*g+1, W] (row 0 = class token).
3. `visual.ln_pre` (present: `no_ln_pre` is False) on all tokens. No patch dropout at eval.
4. `visual.transformer.resblocks.{{i}}` blocks, no attention mask.
5. `visual.ln_post` on all tokens, then pool = token 0 (class token; pool_type "tok"),
   then `@ visual.proj` [W, E]. That is `encode_image` (unnormalised).

Image tower, ModifiedResNet (`visual` = `ModifiedResNet`), w = `vision_cfg.width`
1. Stem: `conv1` 3->w/2, 3x3 stride 2 pad 1; `bn1`; ReLU; `conv2` w/2->w/2 3x3 pad 1; `bn2`;
   ReLU; `conv3` w/2->w 3x3 pad 1; `bn3`; ReLU; AvgPool2d(2). All convs bias-free.
2. `layer1..layer4`: Bottleneck blocks (expansion 4), planes w, 2w, 4w, 8w; the first block
   of layer2..4 has stride 2, all others stride 1. Block: `conv1` 1x1 -> `bn1` -> ReLU ->
   `conv2` 3x3 pad 1 (stride 1) -> `bn2` -> ReLU -> AvgPool2d(stride) if stride>1 ->
   `conv3` 1x1 (planes -> 4*planes) -> `bn3`; add identity; ReLU.
   Identity = `downsample(x)` when stride>1 or in_ch != 4*planes (so block 0 of every layer,
   layer1 included), else x. downsample = Sequential with keys "-1" AvgPool2d(stride) (no
   params; identity for stride 1), "0" 1x1 conv bias-free, "1" BatchNorm2d. Hence state_dict
   keys `visual.layer{{L}}.0.downsample.0.weight` and `...downsample.1.{{weight,bias,running_*}}`.
3. `visual.attnpool` (AttentionPool2d, C = 32*w, spatial s = image_size//32): flatten
   [B, C, s, s] -> [B, s*s, C] (row-major), prepend the mean over the s*s tokens as token 0,
   add `attnpool.positional_embedding` [s*s+1, C]; multi-head attention (heads as above, no
   mask, all tokens attend to all) with separate `q_proj`, `k_proj`, `v_proj` Linear(C, C)
   (weights and biases) and output `c_proj` Linear(C, E) (with bias); the output is token 0
   (the mean token's query). That is `encode_image` - no `ln_post`, no `visual.proj` in RN.

Text tower (attributes directly on the CLIP model; no `text.` prefix)
1. `token_embedding.weight` [vocab, Wt] lookup, + `positional_embedding` [ctx, Wt]
   (the whole ctx is used: token input must be exactly ctx long; no class token).
2. `transformer.resblocks.{{i}}` blocks with the causal mask (query i sees keys 0..i).
   No padding mask: pad tokens after EOT are processed but cannot affect earlier tokens.
3. `ln_final` on all tokens, then pool: `text_pool_type` "argmax" = the position of the
   largest token id in each row (`tokens.argmax(-1)`, first occurrence) - the EOT token
   (49407 in CLIP's tokenizer). Not `eos_id`, which only matters for pool_type "eos".
4. `@ text_projection` [Wt, E] (a raw Parameter since `proj_bias` is False).
5. `encode_*(normalize=True)` = `F.normalize(x, dim=-1)`; `forward` returns
   (image_n, text_n, logit_scale.exp()).

## state_dict key patterns (shapes from ViT-B-32 / RN50; `{{i}}` block, `{{L}}` layer, `{{b}}` block)

ViT-B-32 (W=768, g=7, E=512, Wt=512, ctx=77, vocab=49408):

{vit_table}

RN50 image tower (w=64, C=2048, E=1024, layers [3,4,6,3]; the non-`visual.` keys are as for
ViT-B-32 except `text_projection` [512, 1024]). Shapes are those of the first match
(`layer1.0`); per-block shapes follow planes / in_ch; `downsample.*` only in block 0:

{rn_table}

Order of top-level entries in `state_dict()` (module registration order; exact order in the
`keys` field of the .pt files): {order}.
"""


def fmt_table(table):
    lines = ["| key | shape |", "|---|---|"]
    for k, shp in table.items():
        lines.append(f"| `{k}` | {shp} |")
    return "\n".join(lines)


def write_readme(out_dir, counts, vit_keys):
    shapes_vit = counts["models"]["ViT-B-32"]["state_dict_shapes"]
    shapes_rn = counts["models"]["RN50"]["state_dict_shapes"]
    vit_table = pattern_table(shapes_vit)
    rn_table = {k: v for k, v in pattern_table(shapes_rn).items() if k.startswith("visual.")}
    count_lines = "\n".join(
        f"  - {n}: {m['params']:,} (visual {m['visual_params']:,}, text+logit_scale "
        f"{m['text_and_logit_params']:,})" for n, m in counts["models"].items())
    order = " -> ".join(dict.fromkeys(k.split(".")[0] for k in vit_keys))
    text = README_TEXT.format(
        ocv=open_clip.__version__, tv=torch.__version__, bigs=", ".join(BIG_MODELS),
        counts=count_lines, vit_table=fmt_table(vit_table), rn_table=fmt_table(rn_table),
        order=order)
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(text)
    return text


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/openclip"
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    counts = param_counts()
    with open(os.path.join(out_dir, "param_counts.json"), "w") as f:
        json.dump(counts, f, indent=1)
        f.write("\n")

    vit_model, vit = make_tiny(TINY_VIT, "vit", seed=0)
    rn_model, rn = make_tiny(TINY_RN, "rn", seed=10)
    assert vit["text_pool_type"] == rn["text_pool_type"] == "argmax"
    assert isinstance(vit_model.visual.ln_pre, torch.nn.LayerNorm)
    assert vit_model.visual.conv1.bias is None
    assert isinstance(vit_model.transformer.resblocks[0].mlp.gelu, torch.nn.GELU)
    assert vit_model.transformer.resblocks[0].mlp.gelu.approximate == "none"
    assert vit_model.visual.ln_post.eps == LN_EPS and vit_model.ln_final.eps == LN_EPS
    assert "attn_mask" not in vit["state_dict"]
    assert rn_model.visual.attnpool.num_heads == 8
    for name, d in (("tiny_vit.pt", vit), ("tiny_rn.pt", rn)):
        path = os.path.join(out_dir, name)
        torch.save(d, path)
        back = torch.load(path, weights_only=True)
        assert back["state_dict"].keys() == d["state_dict"].keys()
        fresh = CLIP(**back["open_clip_config"]).eval()  # round trip through a fresh open_clip
        fresh.load_state_dict(back["state_dict"], strict=True)
        with torch.no_grad():
            torch.testing.assert_close(fresh.encode_image(back["images"]), back["image_features"])
            torch.testing.assert_close(fresh.encode_text(back["tokens"]), back["text_features"])
        size = os.path.getsize(path)
        print(f"{path}: {size:,} bytes, {len(d['keys'])} keys, "
              f"{sum(v.numel() for v in d['state_dict'].values()):,} numbers")
        assert size < 1_000_000, size

    text = write_readme(out_dir, counts, vit["keys"])
    print(text)


if __name__ == "__main__":
    main()
