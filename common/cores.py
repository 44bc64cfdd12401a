"""How many cores this process may use."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (honours `taskset` and container CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
