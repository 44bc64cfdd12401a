"""Shared test fixtures: where the real sample data lives, and skips when it is absent.

Tests live in folders mirroring the code (tests/pipeline/fetch/ for pipeline/fetch/, ...); test file
names stay unique across the tree (pytest's default import mode). The shared helpers beside this file
(loopback_server, shard_helpers, trainer_helpers) import from any folder: tests/ is on sys.path.
"""
import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
SHARED_DATA = Path(os.environ.get("OPENWIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
WORDNET_DIR = Path(os.environ.get("OPENWIT_WORDNET_DIR", "/usr/share/wordnet"))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real sample data (../shared/data); skips the test when it is absent."""
    return _require(SHARED_DATA, "shared sample data")


@pytest.fixture(scope="session")
def wordnet_dir() -> Path:
    """WordNet 3.0 database folder (Debian wordnet-base); skips the test when it is absent."""
    return _require(WORDNET_DIR / "data.noun", "WordNet 3.0 (install Debian wordnet-base)").parent
