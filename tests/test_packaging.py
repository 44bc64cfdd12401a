"""Packaging: every folder of openwit that holds .py files is in the built sdist — the archive Dataflow
workers install with `--setup_file` (a sub-folder without `__init__.py` works in the editable install
but would be missing there). The Dataflow dry run itself is tests/pipeline/test_dataflow_dryrun.py."""
import ast
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setup_value(name: str):
    """A literal assigned at the top of setup.py (importing it would run setup())."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    return next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets))


PARTS, CONSOLE_SCRIPTS = _setup_value("PARTS"), _setup_value("CONSOLE_SCRIPTS")


def _py_folders() -> dict[str, list[str]]:
    """{folder: its .py files} for every folder of every part (hidden and __pycache__ skipped)."""
    found = {}
    for part in PARTS:
        for root, dirs, files in os.walk(ROOT / part):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
            py = sorted(f for f in files if f.endswith(".py"))
            if py:
                found[os.path.relpath(root, ROOT)] = py
    return found


@pytest.fixture(scope="module")
def sdist_members(tmp_path_factory) -> set[str]:
    src = tmp_path_factory.mktemp("src")
    for name in ("setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for part in PARTS:
        shutil.copytree(ROOT / part, src / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = src / "dist"
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--formats=gztar", "--dist-dir", str(dist)],
                   cwd=src, check=True, capture_output=True, timeout=300)
    (archive,) = dist.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        return {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}


def test_every_python_folder_is_a_package_in_the_sdist(sdist_members):
    folders = _py_folders()
    assert {"pipeline/extract", "pipeline/shards", "demo"} <= set(folders)  # the tree this checks
    for folder, files in folders.items():
        assert "__init__.py" in files, f"{folder} holds .py files but no __init__.py: setup.py does not package it"
        missing = [f for f in files if f"{folder}/{f}" not in sdist_members]
        assert not missing, f"not in the sdist: {folder}/{missing}"


def _def_in_module(target: str) -> bool:
    """`openwit.x.y:func` is a file of this checkout that defines `func`."""
    module, func = target.split(":")
    path = ROOT / Path(*module.split(".")[1:])
    source = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"
    return source.is_file() and f"def {func}(" in source.read_text()


def test_console_scripts_point_at_modules_that_exist():
    """Each script starts through openwit.common.launch, which names the command's module: both
    exist, and the command lives in the part whose presence installs the script."""
    from openwit.common import launch

    for name, (part, target) in CONSOLE_SCRIPTS.items():
        assert target.startswith("openwit.common.launch:"), name
        func = target.split(":")[1]
        assert getattr(launch, func).__name__ == func, name
        command = launch.COMMANDS[func]
        assert command.startswith(f"openwit.{part}.") and _def_in_module(command), (name, command)
