"""How openwit's commands start: their module imported with the cyclic GC paused, then frozen.

A command imports Beam (with the Google and AWS client libraries) or torch: hundreds of thousands of
objects that live as long as the process. While they load, every full pass of Python's cyclic
garbage collector walks all of them again (a pass starts each time the heap has grown by a quarter),
which is 0.15-0.35 s of each command's start-up and nothing collected (benchmarks/RESULTS.md, "Start-up").
The console scripts and `python -m openwit.<part>` therefore import their `main` through `run`: the
collector is paused for the import, what the import created is frozen (later passes skip it) and
the collector resumes before `main` runs. Importing openwit as a library leaves the collector alone.
"""
from __future__ import annotations

import gc
import importlib
import sys
from typing import Callable


def load(target: str) -> Callable:
    """`module:function` imported with the cyclic GC paused; what the import created is frozen."""
    module, _, name = target.partition(":")
    enabled = gc.isenabled()
    gc.disable()
    try:
        return getattr(importlib.import_module(module), name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def run(target: str, early: str | None = None) -> int:
    """Start a command: `load(target)()` (the function reads sys.argv); `early` (`module:function`)
    runs first, before the command's heavy imports (the builds start their image workers there).
    Ctrl-C while it loads (a second or two) exits 130 with `interrupted`, like Ctrl-C later (the
    commands' `cli_main`), not with a traceback through Beam's or torch's imports."""
    try:
        if early:
            module, _, name = early.partition(":")
            getattr(importlib.import_module(module), name)()
        main = load(target)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        from openwit.common.lean import left_out_message

        if (message := left_out_message(e)) is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    return main()


# The console scripts: setup.py's CONSOLE_SCRIPTS point at the functions below, each named here.
COMMANDS = {
    "queries": "openwit.queries.cli:main",
    "build": "openwit.pipeline.cli:main",
    "stats": "openwit.pipeline.stats.cli:main",
    "loader": "openwit.loader.cli:main",
    "train": "openwit.trainer.cli:main",
    "evaluate": "openwit.trainer.eval_cli:main",
}


# what a command does before its imports: a local build starts its image workers and leaves out the
# cloud clients it will not use (pipeline/early.py)
BUILD_EARLY = "openwit.pipeline.early:start"
EARLY = {"build": BUILD_EARLY}


def _command(name: str) -> Callable[[], int]:
    def start() -> int:
        return run(COMMANDS[name], EARLY.get(name))

    start.__name__ = start.__qualname__ = name
    start.__doc__ = f"The console script of {COMMANDS[name]}."
    return start


queries, build, stats, loader, train, evaluate = (_command(name) for name in COMMANDS)
