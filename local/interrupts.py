"""Stopping the local stack on a signal, from whichever thread the kernel delivers it to.

The kernel may deliver a signal to any thread (the start workers, gRPC's), and Python then
runs the handler in the main thread only when that thread next runs bytecode; an exception
raised while it is inside a library callback can be swallowed there. So the handler also sets
a flag, every blocking wait in the main thread has a short timeout, and every loop calls
``checkpoint()``. While stopping, further signals are ignored, so a second Ctrl-C cannot leave
orphans behind.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_interrupted = threading.Event()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def _ignore(signum: int, frame: FrameType | None) -> None:
    print("stopping, please wait ...", file=sys.stderr, flush=True)


def stop_on_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupt)


def ignore_signals() -> None:
    """While stopping: a second Ctrl-C or SIGTERM must not interrupt the stopping itself."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _ignore)


def checkpoint() -> None:
    """Stop here if a stop signal came and its exception was lost."""
    if _interrupted.is_set():
        raise KeyboardInterrupt
