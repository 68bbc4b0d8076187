"""Throughput and ETA for the periodic log line, excluding compilation, eval and saves."""

import contextlib
import time
from collections.abc import Iterator


class Progress:
    """Measures training speed between log lines.

    Time spent inside `paused()` (evaluation, checkpointing) is not counted as training time;
    the clock starts after compilation, when the trainer creates this object.
    """

    def __init__(self, start_step: int, total_steps: int, examples_per_step: int):
        self._total_steps = total_steps
        self._examples_per_step = examples_per_step
        self._last_step = start_step
        self._last_time = time.perf_counter()
        self._paused_time = 0.0
        self.train_time = 0.0  # Seconds of training since the start, excluding pauses.

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Excludes the time spent in the `with` block from training time."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._paused_time += time.perf_counter() - start

    def measure(self, step: int) -> dict[str, float]:
        """Returns speed and ETA since the previous call, which ended at `self._last_step`."""
        now = time.perf_counter()
        elapsed = max(now - self._last_time - self._paused_time, 1e-9)
        steps_per_sec = (step - self._last_step) / elapsed
        self.train_time += elapsed
        self._last_step, self._last_time, self._paused_time = step, now, 0.0
        return {
            "steps_per_sec": steps_per_sec,
            "examples_per_sec": steps_per_sec * self._examples_per_step,
            "eta_sec": (self._total_steps - step) / max(steps_per_sec, 1e-9),
        }
