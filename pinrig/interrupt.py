"""Stopping a run on Ctrl-C / SIGTERM: one flag every stage can look at.

When the flag is up: no new guest boots, no case is written (a case cut short by the stop is
not a result: `--resume` runs it again), and whatever is waiting unwinds with `Stopped`, which
is a KeyboardInterrupt so that no `except Exception`/`except InfraError` turns it into a verdict.
"""
from __future__ import annotations

import threading

_STOP = threading.Event()


class Stopped(KeyboardInterrupt):
    """The run is being interrupted: unwind, write nothing more."""


def request_stop() -> None:
    _STOP.set()


def stopping() -> bool:
    return _STOP.is_set()


def check(what: str = "run") -> None:
    """Raise Stopped when a stop was requested (call before starting anything new)."""
    if _STOP.is_set():
        raise Stopped(f"{what} interrupted")


def reset() -> None:
    """For a process that runs again after an interrupt (tests, nightly's next run)."""
    _STOP.clear()
