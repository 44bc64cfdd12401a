"""What a local run has: the cores this process may use, and which Beam runners run here.

Light on purpose (no Beam import): a build reads it before it imports Beam (pipeline/prestart.py,
common/lean.py).
"""
from __future__ import annotations

import os

# Beam runners that run the pipeline in this process ("" = Beam's default, the direct runner)
LOCAL_RUNNERS = ("", "FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner",
                 "PrismRunner")


def is_local_runner(runner: str | None) -> bool:
    """Whether `--runner` (a class name, possibly dotted, or None) runs the pipeline in this process."""
    return (runner or "").split(".")[-1] in LOCAL_RUNNERS


def flag_value(argv: list[str], name: str) -> str | None:
    """The value of `--name V` or `--name=V` in a command line (the last one given), else None: a
    glance before the command's parser runs."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value


def usable_cores() -> int:
    """Cores this process may run on (honours `taskset` and container CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
