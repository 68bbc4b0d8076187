"""SIGTERM (e.g. TPU preemption) and Ctrl-C (SIGINT) as a request the training loop polls.

The first SIGTERM or SIGINT asks the loop to finish its step, save and stop; the run then
exits 0. A second SIGINT aborts at once (KeyboardInterrupt), for a run that should not wait.
"""

import contextlib
import signal
import threading
from collections.abc import Iterator

from absl import logging

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Whether, and by which signal, the run was asked to stop."""

    def __init__(self):
        self.signal_name: str | None = None  # 'SIGTERM' or 'SIGINT' once requested.

    def is_set(self) -> bool:
        return self.signal_name is not None


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """Yields a StopRequest set by SIGTERM or SIGINT, instead of the process dying.

    The previous handlers are restored on exit. Outside the main thread, where Python cannot
    install signal handlers, the request is never set.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: object) -> None:
        del frame
        name = signal.Signals(signum).name
        if request.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt(f"second {name}: aborting without saving")
        if not request.is_set():
            request.signal_name = name
        logging.warning(
            "Received %s: finishing the step, saving a checkpoint and stopping (a second "
            "SIGINT aborts at once).",
            name,
        )

    previous = {signum: signal.signal(signum, handler) for signum in _SIGNALS}
    try:
        yield request
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
