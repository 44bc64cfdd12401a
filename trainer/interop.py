"""open_clip / OpenAI CLIP weights: the state-dict key mapping (one place), their model configs, and
loading a model + tokenizer from either an openwit checkpoint or an open_clip-format file.

open_clip names the text tower's parts at the top level (`token_embedding`, `transformer.resblocks.N`,
`ln_final`, `text_projection`) and uses `nn.MultiheadAttention`'s fused names (`attn.in_proj_weight`);
openwit keeps them under `text.` and uses plain Linear layers. Everything else matches.
"""
from __future__ import annotations

import dataclasses
import io

import torch

from openwit.common.errors import UserError
from openwit.loader.tokenizer import CaptionTokenizer, default_tokenizer_path, load_tokenizer
from openwit.trainer import checkpoint
from openwit.trainer.config import MODELS, ModelConfig, TextConfig, VisionConfig, model_config
from openwit.trainer.model import CLIP

# (open_clip, openwit): whole keys, then key prefixes, then parts anywhere in a key.
_EXACT = [("visual.class_embedding", "visual.class_token"), ("visual.positional_embedding", "visual.pos_embed"),
          ("visual.attnpool.positional_embedding", "visual.attnpool.pos_embed"),
          ("positional_embedding", "text.pos_embed"), ("text_projection", "text.proj")]
_VIT_EXACT = [("visual.conv1.weight", "visual.patch_embed.weight")]
_PREFIX = [("visual.transformer.resblocks.", "visual.transformer.blocks."),
           ("transformer.resblocks.", "text.transformer.blocks."),
           ("token_embedding.", "text.token_embedding."), ("ln_final.", "text.ln_final.")]
_INFIX = [(".attn.in_proj_weight", ".attn.in_proj.weight"), (".attn.in_proj_bias", ".attn.in_proj.bias"),
          (".mlp.c_fc.", ".mlp.fc."), (".mlp.c_proj.", ".mlp.proj.")]
_IGNORED = ("attn_mask",)
_TEXT_SUBMODULE = ("text.token_embedding.", "text.positional_embedding", "text.transformer.", "text.ln_final.",
                   "text.text_projection")


def _translate(key: str, vit: bool, to_openwit: bool) -> str:
    pick = (lambda pair: pair) if to_openwit else (lambda pair: (pair[1], pair[0]))
    for src, dst in map(pick, _EXACT + (_VIT_EXACT if vit else [])):
        if key == src:
            return dst
    for src, dst in map(pick, _PREFIX):
        if key.startswith(src):
            key = dst + key[len(src):]
            break
    for src, dst in map(pick, _INFIX):
        key = key.replace(src, dst)
    return key


def unwrap(obj) -> dict[str, torch.Tensor]:
    """The state dict inside an open_clip / OpenAI / DDP checkpoint (`state_dict`, `module.` prefixes)."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError("not a CLIP state dict (expected tensors named like open_clip's, e.g. visual.proj)")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    # CustomTextCLIP keeps the text tower under `text.`: same layout, one level down
    return {(k[len("text."):] if k.startswith(_TEXT_SUBMODULE) else k): v for k, v in sd.items()}


def from_open_clip(state_dict: dict[str, torch.Tensor], vit: bool) -> dict[str, torch.Tensor]:
    sd = unwrap(state_dict)
    return {_translate(k, vit, True): v for k, v in sd.items() if not k.endswith(_IGNORED)}


def to_open_clip(state_dict: dict[str, torch.Tensor], vit: bool) -> dict[str, torch.Tensor]:
    return {_translate(k, vit, False): v for k, v in state_dict.items()}


def config_from_open_clip(cfg: dict, name: str = "open_clip") -> ModelConfig:
    """An open_clip model config dict (`embed_dim`, `vision_cfg`, `text_cfg`, `quick_gelu`)."""
    v, t = dict(cfg.get("vision_cfg", {})), dict(cfg.get("text_cfg", {}))
    supported_v = {"image_size", "layers", "width", "patch_size", "head_width", "mlp_ratio"}
    supported_t = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}
    extra = sorted(f"vision_cfg.{k}" for k in set(v) - supported_v) + sorted(f"text_cfg.{k}" for k in set(t) - supported_t)
    if extra:
        raise UserError(f"open_clip config options openwit's model does not implement: {', '.join(extra)}")
    layers = v.get("layers", 12)
    vision = VisionConfig(image_size=v.get("image_size", 224), layers=tuple(layers) if isinstance(layers, (list, tuple)) else layers,
                          width=v.get("width", 768), patch_size=v.get("patch_size", 16),
                          head_width=v.get("head_width", 64), mlp_ratio=v.get("mlp_ratio", 4.0))
    if isinstance(vision.layers, tuple):
        vision = dataclasses.replace(vision, patch_size=None)
    text = TextConfig(**{k: t[k] for k in supported_t if k in t})
    return ModelConfig(embed_dim=cfg["embed_dim"], vision=vision, text=text,
                       quick_gelu=bool(cfg.get("quick_gelu", False)), name=name)


def infer_config(sd: dict[str, torch.Tensor], quick_gelu: bool = False) -> ModelConfig:
    """The architecture of an open_clip/OpenAI-layout state dict, from its shapes (heads = width / 64,
    as OpenAI's loader assumes). Named when it equals a known model."""
    try:
        text = TextConfig(context_length=sd["positional_embedding"].shape[0], vocab_size=sd["token_embedding.weight"].shape[0],
                          width=sd["ln_final.weight"].shape[0], heads=sd["ln_final.weight"].shape[0] // 64,
                          layers=_count(sd, "transformer.resblocks."))
        if "visual.proj" in sd:  # ViT
            width, _, patch, _ = sd["visual.conv1.weight"].shape
            grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
            vision = VisionConfig(grid * patch, _count(sd, "visual.transformer.resblocks."), width, patch)
            embed = sd["visual.proj"].shape[1]
        else:  # modified ResNet
            layers = tuple(_count(sd, f"visual.layer{i}.") for i in range(1, 5))
            grid = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
            vision = VisionConfig(grid * 32, layers, sd["visual.layer1.0.conv1.weight"].shape[0], None)
            embed = sd["visual.attnpool.c_proj.weight"].shape[0]
    except KeyError as e:
        raise UserError(f"not an open_clip/OpenAI CLIP state dict: no {e.args[0]!r}") from e
    cfg = ModelConfig(embed_dim=embed, vision=vision, text=text, quick_gelu=quick_gelu)
    for name, known in MODELS.items():
        if dataclasses.replace(known, quick_gelu=quick_gelu).architecture() == cfg.architecture():
            return dataclasses.replace(cfg, name=name + ("-quickgelu" if quick_gelu else ""))
    return dataclasses.replace(cfg, name="open_clip-custom")


def _count(sd: dict, prefix: str) -> int:
    return len({k[len(prefix):].split(".", 1)[0] for k in sd if k.startswith(prefix)})


def load_open_clip_weights(model: CLIP, state_dict: dict[str, torch.Tensor]) -> None:
    """Load an open_clip-layout state dict into `model`; a mismatch is one clear error."""
    sd = from_open_clip(state_dict, vit=not model.config.vision.is_resnet)
    ours = model.state_dict()
    missing = [k for k in ours if k not in sd and k != "logit_bias"]
    unexpected = [k for k in sd if k not in ours]
    shapes = [f"{k} {list(v.shape)} vs {list(ours[k].shape)}" for k, v in sd.items() if k in ours and v.shape != ours[k].shape]
    if missing or unexpected or shapes:
        raise UserError(f"weights do not fit {model.config.name}: "
                        + "; ".join(f"{what} {items[:3]}" for what, items in
                                    (("missing", missing), ("unexpected", unexpected), ("shapes", shapes)) if items))
    model.load_state_dict(sd, strict=False)


def load_model(path: str, model_name: str | None = None, tokenizer: str | None = None,
               quick_gelu: bool = False, device: torch.device | str = "cpu") -> tuple[CLIP, CaptionTokenizer, dict]:
    """(model in eval mode, tokenizer, info) from an openwit checkpoint (file or run folder) or an
    open_clip/OpenAI-layout state dict (`.pt`/`.bin`; architecture from `model_name` or the shapes;
    tokenizer: `tokenizer`, else CLIP's BPE found as the loader finds it)."""
    state = checkpoint.load(path)
    if state.get("format") == checkpoint.FORMAT:
        cfg = ModelConfig.from_dict(state["model_config"])
        if model_name and model_config(model_name).with_vocab(cfg.text.vocab_size).architecture() != cfg.architecture():
            raise UserError(f"{state['__path__']} holds a {cfg.name} model, not {model_name}: pass --model {cfg.name}")
        tok = CaptionTokenizer(_tokenizer_from_json(state["tokenizer"]), cfg.text.context_length)
        model = CLIP(cfg)
        model.load_state_dict(state["model"])
        info = {"checkpoint": state["__path__"], "step": state.get("step"), "model": cfg.name}
    else:
        sd = unwrap(state)
        cfg = model_config(model_name) if model_name else infer_config(sd, quick_gelu)
        if quick_gelu:
            cfg = dataclasses.replace(cfg, quick_gelu=True)
        if model_name:
            cfg = cfg.with_vocab(sd["token_embedding.weight"].shape[0]) if "token_embedding.weight" in sd else cfg
        tok_path = tokenizer or default_tokenizer_path(None)
        if tok_path is None:
            raise UserError("an open_clip checkpoint needs CLIP's tokenizer: pass --tokenizer "
                            "bpe_simple_vocab_16e6.txt.gz or set OPENWIT_CLIP_BPE")
        tok = load_tokenizer(tok_path, None, cfg.text.context_length)
        model = CLIP(cfg)
        load_open_clip_weights(model, sd)
        info = {"checkpoint": state["__path__"], "model": cfg.name, "format": "open_clip"}
    return model.to(device).eval(), tok, info


def _tokenizer_from_json(text: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(text)


def save_open_clip(model: CLIP, path: str) -> None:
    """Write the model's weights in open_clip's layout (`torch.load` + `load_state_dict` there)."""
    buf = io.BytesIO()
    sd = to_open_clip({k: v.detach().cpu() for k, v in model.state_dict().items()}, not model.config.vision.is_resnet)
    torch.save({"state_dict": sd}, buf)
    checkpoint.write_atomic(path, buf.getvalue())
