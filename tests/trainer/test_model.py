"""The model: parameter counts equal open_clip's, open_clip weights give open_clip's features
(fixture made by benchmarks/make_openclip_fixture.py in a side venv), configs and --describe."""
import json
from pathlib import Path

import pytest
import torch

from openwit.trainer import interop
from openwit.trainer.cli import main as train_main
from openwit.trainer.config import MODELS, ModelConfig, model_config
from openwit.trainer.model import CLIP, count_parameters

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openclip"


@pytest.mark.parametrize("name", ["ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50", "RN101"])
def test_parameter_counts_equal_open_clip(name):
    ref = json.loads((FIXTURES / "param_counts.json").read_text())["models"][name]
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = CLIP(MODELS[name])
    assert count_parameters(model) == ref["params"]
    assert sum(p.numel() for p in model.visual.parameters()) == ref["visual_params"]
    # open_clip's own config for the name is the same architecture
    assert interop.config_from_open_clip(ref["config"]).architecture() == MODELS[name].architecture()
    if "state_dict_shapes" in ref:  # every open_clip tensor maps onto one of ours, same shape
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        mapped = interop.from_open_clip({k: torch.empty(0) for k in ref["state_dict_shapes"]}, vit=name != "RN50")
        assert {k: ours[k] for k in mapped} == dict(zip(mapped, ref["state_dict_shapes"].values()))


def test_published_counts():
    with torch.device("meta"):
        assert count_parameters(CLIP(MODELS["ViT-B-32"])) == 151_277_313
        assert count_parameters(CLIP(MODELS["RN50"])) == 102_007_137


@pytest.mark.parametrize("name", ["tiny_vit", "tiny_rn"])
def test_open_clip_weights_give_open_clip_features(name):
    ref = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    cfg = interop.config_from_open_clip(ref["open_clip_config"])
    model = CLIP(cfg).eval()
    interop.load_open_clip_weights(model, ref["state_dict"])
    with torch.no_grad():
        img, txt = model.encode_image(ref["images"]), model.encode_text(ref["tokens"])
        img_n, txt_n, scale = model(ref["images"], ref["tokens"])
    torch.testing.assert_close(img, ref["image_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(txt, ref["text_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(img_n, ref["image_features_normalized"], atol=1e-5, rtol=0)
    assert abs(float(scale) - ref["logit_scale"]) < 1e-5
    # and back: our weights in open_clip's layout are the fixture's state dict, key for key
    back = interop.to_open_clip(model.state_dict(), vit=name == "tiny_vit")
    assert set(back) == set(ref["state_dict"])
    for k, v in ref["state_dict"].items():
        assert torch.equal(back[k], v), k


def test_open_clip_weights_with_prefixes_and_wrong_architecture():
    ref = torch.load(FIXTURES / "tiny_vit.pt", weights_only=True)
    wrapped = {"epoch": 3, "state_dict": {"module." + k: v for k, v in ref["state_dict"].items()}}
    cfg = interop.config_from_open_clip(ref["open_clip_config"])
    model = CLIP(cfg).eval()
    interop.load_open_clip_weights(model, wrapped)
    inferred = interop.infer_config(interop.unwrap(wrapped))
    assert inferred.vision.patch_size == 8 and inferred.vision.layers == 2 and inferred.text.context_length == 16
    from openwit.common.errors import UserError
    with pytest.raises(UserError, match="do not fit"):
        interop.load_open_clip_weights(CLIP(MODELS["tiny-vit"].with_vocab(100)), ref["state_dict"])


def test_grad_checkpointing_same_gradients():
    torch.manual_seed(0)
    cfg = MODELS["tiny-vit"].with_vocab(300)
    a, b = CLIP(cfg), CLIP(cfg)
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    images, tokens = torch.randn(4, 3, 32, 32), torch.randint(0, 299, (4, 32))
    tokens[:, 7] = 299
    for m in (a, b):
        i, t, s = m(images, tokens)
        (i @ t.T * s).logsumexp(dim=1).sum().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-6, rtol=1e-5, msg=n)


def test_model_config_file_and_unknown_names(tmp_path):
    cfg = MODELS["tiny-rn"].to_dict()
    cfg["vision"]["width"] = 8
    path = tmp_path / "m.json"
    path.write_text(json.dumps(cfg))
    loaded = model_config(None, str(path))
    assert loaded.vision.width == 8 and loaded.vision.layers == (1, 1, 1, 1)
    assert ModelConfig.from_dict(loaded.to_dict()) == loaded
    assert model_config("ViT-B-32-quickgelu").quick_gelu
    from openwit.common.errors import UserError
    with pytest.raises(UserError, match="unknown model 'ViT-H-99'"):
        model_config("ViT-H-99")
    path.write_text(json.dumps({"embed_dim": 8, "vision": {"depth": 3}}))
    with pytest.raises(UserError, match="bad model config"):
        model_config(None, str(path))


def test_describe_prints_open_clip_counts(capsys):
    assert train_main(["--model", "ViT-B-32", "--describe"]) == 0
    out = capsys.readouterr().out
    assert "151,277,313 parameters" in out and '"vocab_size": 49408' in out
    assert train_main(["--model", "RN50", "--describe"]) == 0
    assert "102,007,137 parameters" in capsys.readouterr().out
    assert train_main(["--model", "nope", "--describe"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_help_texts(capsys):
    from openwit.trainer.eval_cli import main as eval_main
    for main in (train_main, eval_main):
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "--checkpoint" in out or "--train-data" in out
        assert "(default: None)" not in out
