"""Image worker process: `python -m openwit.pipeline.images.worker` runs `process_image` for its parent.

Started by `images.pool.ImagePool`, one per core, so decoding and resizing use every core while
the parent's one event loop downloads. The worker imports only Pillow, NumPy and this package
(~0.1 s of CPU), never Beam. Protocol on stdin/stdout: frames of an 8-byte little-endian length
and a payload. The first frame is the pickled ImageSettings; each next frame is one image's raw
bytes, answered by one frame holding the pickled ImageResult. End of stdin (the parent closed it,
or was killed) ends the worker; Ctrl-C is left to the parent. With `--warm` (a worker started before
its pool, pipeline/prestart.py) it also loads the area kernel before it reads anything; a worker
forked from a parent that loaded it already runs `main([])`.
"""
from __future__ import annotations

import os
import pickle
import signal
import sys


def serve(inp, out) -> None:
    """Answer image frames until the input ends (the worker's loop; also callable in-process)."""
    from openwit.pipeline.images.frames import read_frame, write_frame
    from openwit.pipeline.images.resizer import ImageSettings, process_image, raise_pillow_limit

    first = read_frame(inp)
    if first is None:
        return
    settings = pickle.loads(first)
    if not isinstance(settings, ImageSettings):
        raise TypeError(f"first frame must be ImageSettings, got {type(settings).__name__}")
    raise_pillow_limit(settings)
    while (raw := read_frame(inp)) is not None:
        write_frame(out, pickle.dumps(process_image(raw, settings), protocol=pickle.HIGHEST_PROTOCOL))


def warm() -> None:
    """Load what the first image would: the image modules and the area kernel's machine code."""
    import numpy as np

    from openwit.pipeline.images import area, frames, resizer  # noqa: F401  (loaded for serve)

    try:
        area.shrink(np.zeros((2, 2, 3), np.uint8), (1, 1))
    except Exception:  # no numba, say: the settings check tells the user, the worker still serves
        pass


def main(argv: list[str] | None = None) -> int:
    # the parent decides when to stop (it closes stdin; kill -9 after a timeout): Ctrl-C or a SIGTERM to
    # the whole process group (Slurm, systemd) must not end a worker mid-image while the parent winds
    # down — that image would be recorded as failed in a shard that may still commit
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    try:
        if "--warm" in (sys.argv[1:] if argv is None else argv):
            warm()
        serve(inp, out)
    except (BrokenPipeError, EOFError):  # the parent went away mid-frame
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
