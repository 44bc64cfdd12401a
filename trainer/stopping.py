"""Stop on SIGTERM or Ctrl-C at the next step, with a checkpoint there: preemption loses nothing.

A cluster that preempts a job (Kubernetes, Slurm, spot instances; torchrun forwards the signal to
its workers) sends SIGTERM and waits a while before SIGKILL. Without a handler the process dies at
once and everything since the last `--save-every` checkpoint is lost. `StopSignals` records the
signal instead; the step that is running finishes, every rank learns of the request in that step's
all-reduce (so all ranks stop at the same step, even when only one got the signal), and the trainer
saves a checkpoint of that step and exits with 128 + the signal number (143 for SIGTERM, 130 for
Ctrl-C). A second Ctrl-C stops at once, as before.
"""
from __future__ import annotations

import signal

from openwit.common.errors import signal_handlers

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
    """Training stopped early on a signal, after saving a checkpoint of `step`."""

    def __init__(self, signum: int, step: int, path: str | None):
        self.signum, self.step, self.path = signum, step, path
        where = f": checkpoint {path}" if path else ""
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step:,}{where}; "
                         "the same command with --resume latest continues from it")


class StopSignals:
    """While active (a context manager), SIGTERM and SIGINT set `signum` instead of ending the process."""

    def __init__(self):
        self.signum: int | None = None
        self._handlers = signal_handlers(STOP_SIGNALS, self._handle)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: stop now, without waiting for the step
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> "StopSignals":
        self._handlers.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._handlers.__exit__(*exc)
