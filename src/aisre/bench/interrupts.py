"""Ctrl-C and SIGTERM during a benchmark: the run stops, but never in the middle of cleaning
up (a node left NotReady or a Stage left behind would break the next run and anyone else's
tests). While a ``shielded()`` block runs, a signal is remembered and raised after it."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class _State:
    depth = 0
    pending = False


_state = _State()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state.depth:
        _state.pending = True
        print("aisre bench: interrupted; cleaning up first", file=sys.stderr)
        return
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def handle_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (outside shields)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def shielded() -> Iterator[None]:
    """Cleanup that a signal must not cut short; the signal takes effect afterwards."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _state.depth and _state.pending:
            _state.pending = False
            raise KeyboardInterrupt("interrupted during cleanup")
