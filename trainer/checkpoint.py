"""Checkpoints: `OUT/checkpoints/step-NNNNNNNN.pt`, a `latest` pointer, keep-last-N; local or fsspec URLs.

Every file is written under a temporary name and renamed, so a kill at any moment leaves either
the previous checkpoint or the new one, never a truncated file under a final name. On object
stores (gs://, s3://) an object only appears once its upload completes. A checkpoint holds the
model config, the tokenizer, model / optimizer / scaler / schedule state, the step, RNG states and
the loader position; `load_model` rebuilds model + tokenizer from the file alone.
"""
from __future__ import annotations

import io
import logging
import os
import re

import fsspec
import torch

from openwit.common.atomic import _tmp_name as tmp_name
from openwit.common.atomic import atomic_open
from openwit.common.errors import UserError

log = logging.getLogger(__name__)

FORMAT = "openwit-clip/1"
_STEP_FILE = re.compile(r"^step-(\d{8})\.pt$")


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name if _is_remote(folder) else os.path.join(folder, name)


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` via a temporary sibling and a rename: locally fsync + os.replace
    (common.atomic); on fsspec stores (gs://, s3://, memory://) an upload, then a move."""
    if not _is_remote(path):
        with atomic_open(path) as f:
            f.write(data)
        return
    fs, _ = fsspec.core.url_to_fs(path)
    tmp = tmp_name(path)
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def read_bytes(path: str) -> bytes:
    try:
        with fsspec.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as e:
        raise UserError(f"checkpoint not found: {path}") from e
    except OSError as e:
        raise UserError(f"cannot read checkpoint {path}: {e}") from e


def checkpoint_dir(out: str) -> str:
    return join(out, "checkpoints")


def save(out: str, step: int, state: dict, keep_last: int = 0) -> str:
    """Write `state` as step-NNNNNNNN.pt, point `latest` at it, delete all but the last `keep_last`."""
    folder = checkpoint_dir(out)
    name = f"step-{step:08d}.pt"
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    write_atomic(join(folder, name), buf.getvalue())
    write_atomic(join(folder, "latest"), (name + "\n").encode())
    if keep_last > 0:
        for old in list_steps(folder)[:-keep_last]:
            _remove(join(folder, old))
    return join(folder, name)


def list_steps(folder: str) -> list[str]:
    """Checkpoint file names in `folder`, oldest first."""
    fs, inner = fsspec.core.url_to_fs(folder)
    try:
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(inner, detail=False)]
    except FileNotFoundError:
        return []
    return sorted(n for n in names if _STEP_FILE.match(n))


def _remove(path: str) -> None:
    fs, inner = fsspec.core.url_to_fs(path)
    try:
        fs.rm(inner)
    except FileNotFoundError:
        pass


def resolve(path: str) -> str | None:
    """A checkpoint file from a file path, a run folder (→ its latest) or a checkpoints/ folder.
    None when the folder has no checkpoint yet."""
    fs, inner = fsspec.core.url_to_fs(path)
    if fs.isfile(inner) and not path.rstrip("/").endswith("/latest"):
        return path
    for folder in (checkpoint_dir(path), path.rstrip("/")):
        if folder.endswith("/latest"):
            folder = folder[: -len("/latest")]
        pointer = join(folder, "latest")
        if fs.exists(fsspec.core.url_to_fs(pointer)[1]):
            name = read_bytes(pointer).decode().strip()
            return join(folder, name)
        steps = list_steps(folder) if fs.isdir(fsspec.core.url_to_fs(folder)[1]) else []
        if steps:
            return join(folder, steps[-1])
    if not fs.exists(inner):
        raise UserError(f"checkpoint not found: {path}")
    return None


def load(path: str, map_location="cpu") -> dict:
    """The checkpoint dict at `path` (a file, or a run folder → its latest checkpoint)."""
    file = resolve(path)
    if file is None:
        raise UserError(f"no checkpoint in {path} (expected checkpoints/latest or step-*.pt)")
    data = read_bytes(file)
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types on a damaged or pickled-object file
        raise UserError(f"{file} is not a readable checkpoint of tensors ({e.__class__.__name__}: "
                        f"{str(e).splitlines()[0][:200]})") from e
    if not isinstance(state, dict):
        raise UserError(f"{file} does not hold a checkpoint dict")
    state["__path__"] = file
    return state
