"""What a local build does first thing, before it imports Beam (`common.launch` runs it): start its
image workers (prestart.py) and leave out the cloud clients it will not use (common/lean.py)."""
from __future__ import annotations

import sys

from openwit.common import lean
from openwit.pipeline import prestart


def start(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    prestart.prestart_for(argv)  # first: the zygote loads the workers' modules while Beam is imported here
    lean.skip_cloud_clients(argv)
