"""SIGINT and SIGTERM as a request to stop at the next safe point, not an exception.

Long loops (training steps, simulated days) check the request between units of
work, save what they have and stop; an exception raised in the middle of a
running XLA computation instead can crash the interpreter at shutdown.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class StopRequest(threading.Event):
    """Set by the first SIGINT or SIGTERM; `signum` says which."""

    signum: int | None = None


@contextlib.contextmanager
def stop_requested() -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM set the yielded flag; the previous handlers
    come back after it. Outside the main thread the handlers stay as they are."""
    flag = StopRequest()

    def request_stop(signum, _frame):
        flag.signum = signum
        flag.set()

    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, request_stop)
    except ValueError:  # not the main thread
        pass
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
