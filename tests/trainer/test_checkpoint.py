"""Checkpoint files: atomic writes, the latest pointer, keep-last-N, resolving paths; local and an
fsspec object store (memory://, the same code path as gs:// and s3://)."""
import fsspec
import pytest
import torch

from openwit.common.errors import UserError
from openwit.trainer import checkpoint


@pytest.mark.parametrize("root", ["local", "memory"])
def test_save_latest_keep_last_and_resolve(root, tmp_path):
    out = str(tmp_path / "run") if root == "local" else f"memory://ckpt-test-{tmp_path.name}/run"
    for step in (5, 10, 15, 20):
        checkpoint.save(out, step, {"step": step, "w": torch.full((3,), float(step))}, keep_last=2)
    folder = checkpoint.checkpoint_dir(out)
    assert checkpoint.list_steps(folder) == ["step-00000015.pt", "step-00000020.pt"]
    fs, inner = fsspec.core.url_to_fs(folder)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(inner, detail=False)) == \
        ["latest", "step-00000015.pt", "step-00000020.pt"]  # no temporary names left behind
    for spec in (out, folder, checkpoint.join(folder, "latest")):
        assert checkpoint.load(spec)["step"] == 20, spec
    state = checkpoint.load(checkpoint.join(folder, "step-00000015.pt"))
    assert torch.equal(state["w"], torch.full((3,), 15.0)) and state["format"] == checkpoint.FORMAT


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    checkpoint.write_atomic(str(path), b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(OSError):
        checkpoint.write_atomic(str(path), b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        checkpoint.load(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no checkpoint in"):
        checkpoint.load(str(tmp_path / "empty"))
    bad = tmp_path / "step-00000001.pt"
    bad.write_bytes(b"\x80\x04garbage")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        checkpoint.load(str(bad))
