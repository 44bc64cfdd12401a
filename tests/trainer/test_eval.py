"""openwit-eval: zero-shot on an image folder, retrieval on shards, CLIP scores to Parquet, the same
numbers from an open_clip-format export of the weights, and one-line errors."""
import json
import os
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from openwit.trainer import interop
from openwit.trainer.cli import main as train_main
from openwit.trainer.eval_cli import main as eval_main
from openwit.trainer.evaluate import recall_at
from openwit.trainer.templates import CLIP80, load_templates
from shard_helpers import CIFAR_TGZ
from trainer_helpers import make_shards

SIZES = [30, 30, 20]


@pytest.fixture(scope="module")
def run(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    shards = make_shards(root / "shards", shared_data, SIZES)
    for shard in range(len(SIZES)):  # openwit's Parquet sidecars carry a uid per key
        path = root / "shards" / f"{shard:05d}.parquet"
        table = pq.read_table(path)
        pq.write_table(table.append_column("uid", [[f"uid-{k}" for k in table.column("key").to_pylist()]]), path)
    out = root / "run"
    assert train_main(["--train-data", shards, "--model", "tiny-vit", "--out", str(out), "--batch-size", "16",
                       "--max-steps", "4", "--workers", "0", "--warmup", "2"]) == 0
    folder = root / "zs"
    with tarfile.open(shared_data / CIFAR_TGZ) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            cls = m.name.split("/")[-2] if m.name.endswith(".jpg") else None
            if cls in ("cat", "ship", "truck") and len(list((folder / cls).glob("*.jpg")) if (folder / cls).exists() else []) < 5:
                (folder / cls).mkdir(parents=True, exist_ok=True)
                (folder / cls / os.path.basename(m.name)).write_bytes(tar.extractfile(m).read())
    return {"root": root, "shards": shards, "out": out, "folder": folder}


def _eval_json(capsys, *argv) -> dict:
    assert eval_main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_zeroshot_retrieval_and_scores(run, capsys):
    scores = run["root"] / "scores.parquet"
    res = _eval_json(capsys, "--checkpoint", str(run["out"]), "--zeroshot-folder", str(run["folder"]),
                     "--templates", "clip1", "--retrieval-data", run["shards"], "--score-data", run["shards"],
                     "--score-out", str(scores))
    assert res["zeroshot_images"] == 15 and res["zeroshot_classes"] == 3 and res["zeroshot_templates"] == 1
    assert 0 <= res["zeroshot_top1"] <= res["zeroshot_top5"] == 1.0  # 3 classes: top-5 holds them all
    for d in ("image_to_text", "text_to_image"):
        r = [res[f"{d}_R@{k}"] for k in (1, 5, 10)]
        assert 0 <= r[0] <= r[1] <= r[2] <= 1
    assert res["retrieval_samples"] == 80 and res["scored"] == 80 and res["step"] == 4
    table = pq.read_table(scores).to_pylist()
    assert len(table) == 80 and len({r["key"] for r in table}) == 80
    assert all(r["uid"] == f"uid-{r['key']}" and -1 <= r["clip_score"] <= 1 for r in table)
    # the table output names the numbers
    assert eval_main(["--checkpoint", str(run["out"]), "--zeroshot-folder", str(run["folder"]), "--templates", "clip1"]) == 0
    out = capsys.readouterr().out
    assert "zero-shot top-1" in out and "chance 33.3%" in out


def test_zeroshot_on_labelled_shards_equals_the_folder(run, capsys, tmp_path):
    """The same images as labelled shards (.cls index, and .txt class name) score as the folder."""
    import io
    names = sorted(p.name for p in run["folder"].iterdir())
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    for style in ("cls", "txt"):
        with tarfile.open(tmp_path / f"{style}.tar", "w") as tar:
            for label, cls in enumerate(names):
                for i, img in enumerate(sorted((run["folder"] / cls).iterdir())):
                    label_bytes = str(label).encode() if style == "cls" else cls.encode()
                    for ext, data in (("jpg", img.read_bytes()), (style, label_bytes)):
                        info = tarfile.TarInfo(f"{cls}{i:03d}.{ext}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
    folder = _eval_json(capsys, "--checkpoint", str(run["out"]), "--zeroshot-folder", str(run["folder"]),
                        "--templates", "clip1")
    for style in ("cls", "txt"):
        shards = _eval_json(capsys, "--checkpoint", str(run["out"]), "--zeroshot-shards", str(tmp_path / f"{style}.tar"),
                            "--classnames", str(tmp_path / "names.txt"), "--templates", "clip1")
        assert shards["zeroshot_images"] == 15
        assert shards["zeroshot_top1"] == folder["zeroshot_top1"] and shards["zeroshot_top5"] == folder["zeroshot_top5"]
    assert eval_main(["--checkpoint", str(run["out"]), "--zeroshot-shards", str(tmp_path / "cls.tar")]) == 2
    assert "needs --classnames" in capsys.readouterr().err


def test_open_clip_export_evaluates_the_same(run, capsys, tmp_path):
    from openwit.trainer.interop import load_model
    model, tok, _ = load_model(str(run["out"]))
    exported = tmp_path / "open_clip.pt"
    interop.save_open_clip(model, str(exported))
    sd = torch.load(exported, weights_only=True)["state_dict"]
    assert "visual.conv1.weight" in sd and "transformer.resblocks.0.attn.in_proj_weight" in sd
    tokenizer = str(Path(run["shards"]).parent / "tokenizer.json")
    args = ["--zeroshot-folder", str(run["folder"]), "--templates", "clip1", "--retrieval-data", run["shards"]]
    ours = _eval_json(capsys, "--checkpoint", str(run["out"]), *args)
    theirs = _eval_json(capsys, "--checkpoint", str(exported), "--tokenizer", tokenizer, *args)
    assert theirs["format"] == "open_clip"
    for k in ("zeroshot_top1", "image_to_text_R@1", "text_to_image_R@5", "val_loss"):
        assert abs(ours[k] - theirs[k]) < 1e-6, k


def test_recall_at_counts_ties_against_the_true_pair():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.5, 0.4, 0.6], [0.2, 0.2, 0.2]])
    r = recall_at(sim, ks=(1, 2, 3))
    assert r == pytest.approx({1: 2 / 3, 2: 2 / 3, 3: 1.0})  # row 1's true column ranks 3rd; row 2 ties count for it


def test_templates():
    assert len(CLIP80) == 80 and len(set(CLIP80)) == 80 and all(t.count("{}") == 1 for t in CLIP80)
    assert load_templates("clip1") == ["a photo of a {}."]


def test_one_line_errors(run, tmp_path, capsys):
    bad_templates = tmp_path / "t.txt"
    bad_templates.write_text("no placeholder here\n")
    cases = [
        (["--checkpoint", str(run["out"])], "nothing to evaluate"),
        (["--checkpoint", str(tmp_path / "missing"), "--zeroshot-folder", str(run["folder"])], "checkpoint not found"),
        (["--checkpoint", str(run["out"]), "--zeroshot-folder", str(tmp_path)], "needs at least 2 class sub-folders"),
        (["--checkpoint", str(run["out"]), "--zeroshot-folder", str(run["folder"]), "--templates", str(bad_templates)],
         "exactly one {}"),
        (["--checkpoint", str(run["out"]), "--score-data", run["shards"]], "go together"),
        (["--checkpoint", str(run["out"]), "--model", "RN50", "--zeroshot-folder", str(run["folder"])], "not RN50"),
    ]
    for argv, message in cases:
        assert eval_main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    not_ckpt = tmp_path / "x.pt"
    not_ckpt.write_bytes(b"not a checkpoint")
    assert eval_main(["--checkpoint", str(not_ckpt), "--zeroshot-folder", str(run["folder"])]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
