"""User-facing errors: expected bad input becomes one clear line, never a traceback."""
from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import logging
import signal
import sys
import threading
from typing import Callable, Iterable, Iterator


# CLIs exit faster (~0.5-0.8 s) when the interpreter's final collection skips Beam's import-time objects.
atexit.register(gc.freeze)


class UserError(Exception):
    """An expected problem with the user's input or setup; the message says what to do."""


def cli_main(func: Callable[..., int | None] | None = None, *, interrupted: str = "interrupted"):
    """Wrap a console-script `main`: UserError → `error: ...` on stderr and exit status 2.

    Beam wraps exceptions raised inside DoFns; a UserError found anywhere in the message chain is
    reported the same way (first line only). Ctrl-C exits 130 without a traceback, printing
    `interrupted` (what to do next, for commands that can resume) — also when Beam wrapped it.
    Use as `@cli_main` or `@cli_main(interrupted="...")`.
    """
    if func is None:
        return functools.partial(cli_main, interrupted=interrupted)

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> int:
        term = _SigtermAsInterrupt()
        with signal_handlers((signal.SIGTERM,), term.interrupt):
            try:
                return int(func(*args, **kwargs) or 0)
            except UserError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:
                return term.report(interrupted)
            except Exception as e:  # Beam re-raises DoFn errors wrapped; find our UserError inside
                if is_interrupt(e):
                    return term.report(interrupted)
                msg = find_user_error(e)
                if msg is None:
                    raise
                print(f"error: {msg}", file=sys.stderr)
                return 2

    return wrapper


@contextlib.contextmanager
def signal_handlers(signums: Iterable[int], handler) -> Iterator[None]:
    """`handler` for `signums` while the block runs, the previous handlers after. Signals reach the
    main thread only: elsewhere nothing changes."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


class _SigtermAsInterrupt:
    """While a command runs, SIGTERM (a scheduler's stop, `kill`) unwinds it as Ctrl-C does — lock
    released, staging removed, temporary files gone — instead of ending the process on the spot;
    it exits 143 with the command's `interrupted` line. (The trainer handles both itself while it
    trains: it saves the step first.)"""

    def __init__(self):
        self.signum = None

    def interrupt(self, signum, frame):
        self.signum = signum
        raise KeyboardInterrupt

    def report(self, interrupted: str) -> int:
        """Print the interrupted line (naming SIGTERM when it was that); the exit status."""
        if self.signum == signal.SIGTERM:
            print(interrupted.replace("interrupted", "stopped by SIGTERM", 1), file=sys.stderr)
            return 128 + signal.SIGTERM
        print(interrupted, file=sys.stderr)
        return 130


def is_interrupt(exc: BaseException) -> bool:
    """Whether `exc` is Ctrl-C, or an error Beam raised for it (`RuntimeError: KeyboardInterrupt
    [while running 'Step']`, the interrupt in its cause chain)."""
    return any(isinstance(e, KeyboardInterrupt) or str(e).startswith("KeyboardInterrupt") for e in _chain(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then its cause or context, and theirs (each once: chains can loop)."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def find_user_error(exc: BaseException) -> str | None:
    """Return the message of a UserError inside `exc` (cause chain or Beam's wrapped text)."""
    found = next((e for e in _chain(exc) if isinstance(e, UserError)), None)
    if found is not None:
        return str(found)
    marker = "UserError: "
    text = str(exc)
    if marker in text:
        return text.split(marker, 1)[1].splitlines()[0].strip().strip("'\"[]")
    from openwit.common.lean import left_out_message  # a cloud client a local build left out

    return next(filter(None, map(left_out_message, _chain(exc))), None)


def setup_logging(verbose: bool = False) -> None:
    """One log format for all CLIs; Beam's chatty INFO lines only with --verbose."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose:
        for name in ("apache_beam", "root"):
            logging.getLogger(name).setLevel(logging.WARNING)
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, _HideUserErrorTracebacks) for f in handler.filters):
                handler.addFilter(_HideUserErrorTracebacks())


class _HideUserErrorTracebacks(logging.Filter):
    """Drop Beam's ERROR record + traceback for a UserError raised in a DoFn, or for Ctrl-C: the CLI
    prints one line for those anyway (cli_main). Other errors keep their traceback (bugs need it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or (find_user_error(exc) is None and not is_interrupt(exc))
