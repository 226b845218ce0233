"""Signals during `deploy up`: Ctrl-C, SIGTERM (a CI cancel) and SIGHUP (a dropped ssh
connection) all stop `up` the same way, and a second one while it cleans up is noted, not
obeyed, so the cleanup always finishes: what the user asked to keep (`--keep`) or nothing."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

_STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """`up` was stopped by a signal; `signal_name` says which."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _handlers(handler: Callable[[int, FrameType | None], Any]) -> Iterator[None]:
    if not _in_main_thread():  # signal handlers can only be set from the main thread
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in _STOPPING}
    for sig in _STOPPING:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise `Interrupted` (a KeyboardInterrupt) in the main thread."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    with _handlers(handler):
        yield


@contextlib.contextmanager
def shielded(note: Callable[[str], None]) -> Iterator[None]:
    """While cleaning up, a further signal only prints a note."""

    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(Exception):  # the terminal may be gone (SIGHUP)
            note(f"{signal.Signals(signum).name} received: still cleaning up, please wait")

    with _handlers(handler):
        yield
