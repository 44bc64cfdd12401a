"""Model configs as dataclasses: the named CLIP architectures, two tiny ones, and JSON files.

Sizes follow open_clip 3.3's configs (so parameter counts and weights match theirs). The text
tower's vocabulary comes from the tokenizer that feeds it (`with_vocab`); CLIP's BPE (49,408 ids)
is the default when no data is given.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from openwit.common.errors import UserError

CLIP_VOCAB_SIZE = 49408


@dataclass(frozen=True)
class VisionConfig:
    image_size: int = 224
    layers: int | tuple[int, ...] = 12  # int: ViT depth; 4-tuple: ResNet blocks per stage
    width: int = 768  # ViT: token width; ResNet: base channel count (stage 1 = width, ×2 per stage)
    patch_size: int | None = 32  # None: CLIP's modified ResNet
    head_width: int = 64
    mlp_ratio: float = 4.0

    @property
    def is_resnet(self) -> bool:
        return self.patch_size is None

    @property
    def heads(self) -> int:
        return (self.width * 32 if self.is_resnet else self.width) // self.head_width


@dataclass(frozen=True)
class TextConfig:
    context_length: int = 77
    vocab_size: int = CLIP_VOCAB_SIZE
    width: int = 512
    heads: int = 8
    layers: int = 12
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class ModelConfig:
    embed_dim: int = 512
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    quick_gelu: bool = False  # OpenAI's released weights use QuickGELU; open_clip's configs use GELU
    init_logit_scale: float = math.log(1 / 0.07)
    init_logit_bias: float | None = None  # set for SigLIP's loss (-10 in the paper)
    name: str = "custom"

    def with_vocab(self, vocab_size: int) -> "ModelConfig":
        return dataclasses.replace(self, text=dataclasses.replace(self.text, vocab_size=vocab_size))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        layers = d["vision"]["layers"]
        d["vision"]["layers"] = list(layers) if isinstance(layers, tuple) else layers
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        try:
            vision = dict(d.get("vision", {}))
            if isinstance(vision.get("layers"), list):
                vision["layers"] = tuple(vision["layers"])
            rest = {k: v for k, v in d.items() if k not in ("vision", "text")}
            return cls(vision=VisionConfig(**vision), text=TextConfig(**d.get("text", {})), **rest)
        except TypeError as e:
            raise UserError(f"bad model config: {e} (fields: embed_dim, vision{{image_size, layers, width, "
                            f"patch_size, head_width, mlp_ratio}}, text{{context_length, vocab_size, width, "
                            f"heads, layers, mlp_ratio}}, quick_gelu, init_logit_scale, init_logit_bias)") from e

    def architecture(self) -> dict:
        """What must match for weights to load (everything but the name and the init values)."""
        d = self.to_dict()
        for k in ("name", "init_logit_scale", "init_logit_bias"):
            d.pop(k)
        return d


def _vit(embed, image, layers, width, patch, text_width, text_heads, text_layers=12, ctx=77):
    return ModelConfig(embed_dim=embed, vision=VisionConfig(image, layers, width, patch),
                       text=TextConfig(ctx, CLIP_VOCAB_SIZE, text_width, text_heads, text_layers))


def _rn(embed, layers, width, text_width=512, text_heads=8, image=224):
    return ModelConfig(embed_dim=embed, vision=VisionConfig(image, tuple(layers), width, None),
                       text=TextConfig(77, CLIP_VOCAB_SIZE, text_width, text_heads, 12))


MODELS: dict[str, ModelConfig] = {
    "ViT-B-32": _vit(512, 224, 12, 768, 32, 512, 8),
    "ViT-B-16": _vit(512, 224, 12, 768, 16, 512, 8),
    "ViT-L-14": _vit(768, 224, 24, 1024, 14, 768, 12),
    "RN50": _rn(1024, (3, 4, 6, 3), 64),
    "RN101": _rn(512, (3, 4, 23, 3), 64),
    # CPU-sized: a few million parameters (plus the vocabulary's embeddings), 32 / 64 px images.
    "tiny-vit": ModelConfig(embed_dim=128, vision=VisionConfig(32, 4, 192, 4),
                            text=TextConfig(32, CLIP_VOCAB_SIZE, 128, 2, 4)),
    "tiny-rn": ModelConfig(embed_dim=128, vision=VisionConfig(64, (1, 1, 1, 1), 16, None),
                           text=TextConfig(32, CLIP_VOCAB_SIZE, 128, 2, 4)),
}
MODELS = {name: dataclasses.replace(cfg, name=name) for name, cfg in MODELS.items()}


def model_config(name: str | None = None, path: str | None = None) -> ModelConfig:
    """A named config (`ViT-B-32`, … ; a `-quickgelu` suffix switches the activation) or a JSON file."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read --model-config {path}: {e}") from e
        return ModelConfig.from_dict({"name": d.get("name", name or "custom"), **d})
    if not name:
        raise UserError("no model: pass --model NAME (one of " + ", ".join(MODELS) + ") or --model-config FILE")
    base, quick = (name[: -len("-quickgelu")], True) if name.endswith("-quickgelu") else (name, False)
    if base not in MODELS:
        raise UserError(f"unknown model {name!r}: choose one of {', '.join(MODELS)} "
                        "(add -quickgelu for OpenAI's activation) or pass --model-config FILE.json")
    cfg = MODELS[base]
    return dataclasses.replace(cfg, quick_gelu=True, name=name) if quick else cfg


def forward_flops(cfg: ModelConfig) -> tuple[float, float]:
    """(image, text) forward FLOPs per sample, counting a multiply-add as 2 FLOPs (matmuls and
    convolutions; norms and activations are ignored). open_clip's profiler reports multiply-adds
    (fvcore) under the name GFLOPs, i.e. half of these numbers."""
    v, t = cfg.vision, cfg.text
    text = _transformer_flops(t.context_length, t.width, t.layers, t.mlp_ratio) + 2 * t.width * cfg.embed_dim
    if v.is_resnet:
        image = _resnet_flops(v, cfg.embed_dim)
    else:
        grid = v.image_size // v.patch_size
        tokens = grid * grid + 1
        image = 2 * grid * grid * 3 * v.patch_size ** 2 * v.width
        image += _transformer_flops(tokens, v.width, v.layers, v.mlp_ratio) + 2 * v.width * cfg.embed_dim
    return float(image), float(text)


def _transformer_flops(tokens: int, width: int, layers: int, mlp_ratio: float) -> float:
    per_layer = 2 * tokens * (4 * width * width + 2 * mlp_ratio * width * width)  # qkv+out, mlp
    per_layer += 2 * 2 * tokens * tokens * width  # scores and weighted sum
    return layers * per_layer


def _resnet_flops(v: VisionConfig, embed_dim: int) -> float:
    size, flops = v.image_size // 2, 0.0
    w = v.width
    for cin, cout in ((3, w // 2), (w // 2, w // 2), (w // 2, w)):  # stem at half resolution
        flops += 2 * size * size * 9 * cin * cout
    size //= 2
    inplanes = w
    for stage, blocks in enumerate(v.layers):
        planes = w * 2 ** stage
        for b in range(blocks):
            stride = 2 if stage > 0 and b == 0 else 1
            out = size // stride
            flops += 2 * size * size * inplanes * planes + 2 * size * size * 9 * planes * planes
            flops += 2 * out * out * planes * planes * 4
            if stride > 1 or inplanes != planes * 4:
                flops += 2 * out * out * inplanes * planes * 4
            inplanes, size = planes * 4, out
    c, n = inplanes, size * size + 1
    flops += 2 * (2 * n * c * c + c * c) + 2 * 2 * n * c + 2 * c * embed_dim  # k,v over all; q for 1
    return flops
