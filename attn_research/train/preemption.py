"""SIGTERM (e.g. TPU preemption) as a flag the training loop polls between steps."""

import contextlib
import signal
import threading
from collections.abc import Iterator

from absl import logging


@contextlib.contextmanager
def sigterm_flag() -> Iterator[threading.Event]:
    """Yields an Event set when SIGTERM arrives, instead of the process dying.

    The previous handler is restored on exit. Outside the main thread, where Python cannot
    install signal handlers, the event is never set.
    """
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, frame: object) -> None:
        del frame
        logging.warning("Received signal %d: saving a checkpoint and stopping.", signum)
        event.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGTERM, previous)
