"""openwit's version, and the `--version` flag every openwit command has (one helper for all CLIs)."""
from __future__ import annotations

import argparse
import platform


def openwit_version() -> str:
    """The installed distribution's version (setup.py), or "unknown" when run from an uninstalled tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openwit")
    except PackageNotFoundError:
        return "unknown"


def version_text(prog: str) -> str:
    """`openwit-build 0.1.0 (Python 3.11.2)`: what `--version` prints."""
    return f"{prog} {openwit_version()} (Python {platform.python_version()})"


def add_version_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `--version` (print `version_text(parser.prog)` and exit 0) to `parser`; returns it."""
    parser.add_argument("--version", action="version", version=version_text(parser.prog),
                        help="print openwit's version and exit")
    return parser
