"""Watching the train loss: a NaN or Inf stops the run, an explosion warns. A checkpoint of step
s is *sane* when step s+1's loss from its parameters is finite and not exploding; the NaN error
names the newest sane checkpoint on disk.
"""

from collections.abc import Callable, Mapping

import numpy as np
from absl import logging

LOSS_FACTOR = 100.0  # A loss this many times the first step's (of this process) explodes.
GRAD_NORM_FACTOR = 1000.0  # Likewise for the gradient norm.

_HINT = (
    "lower the learning rate (--config.optimizer.learning_rate, now {lr:g}) or clip gradients "
    "(--config.optimizer.grad_clip_norm)"
)


class Health:
    """Checks the fetched metrics of each step, in order, and tracks the sane checkpoints."""

    def __init__(self, learning_rate: float, saved_steps: Callable[[], list[int]], where: str):
        """`saved_steps()` lists the checkpoints on disk, oldest first, in directory `where`."""
        self._hint = _HINT.format(lr=learning_rate)
        self._saved_steps, self._where = saved_steps, where
        self._first: dict[str, float] = {}  # The first step's loss and grad_norm.
        self._warned: set[str] = set()
        self._sane: set[int] = set()
        self._unchecked: int | None = None  # A saved or resumed step not yet vouched for.

    def saved(self, step: int) -> None:
        """Notes that the state after `step` is on disk; the loss of step+1 will vouch for it."""
        self._unchecked = step

    def _exploded(self, step: int, metrics: Mapping[str, float]) -> bool:
        """Whether the loss or the gradient norm exploded; warns once for each."""
        exploded = False
        for name, factor in (("loss", LOSS_FACTOR), ("grad_norm", GRAD_NORM_FACTOR)):
            value = metrics.get(f"train/{name}")
            if value is None:
                continue
            first = self._first.setdefault(name, value)
            if first > 0 and value > factor * first:
                exploded = True
                if name not in self._warned:
                    self._warned.add(name)
                    logging.warning(
                        "Step %d: the %s %.3g is over %g times the first step's (%.3g): "
                        "training is diverging; %s.",
                        step,
                        name,
                        value,
                        factor,
                        first,
                        self._hint,
                    )
        return exploded

    def check(self, step: int, metrics: Mapping[str, float]) -> None:
        """Checks the metrics of `step` ({'train/loss': ..., 'train/grad_norm': ...}).

        Raises:
          FloatingPointError: if the loss is NaN or Inf, naming the newest sane checkpoint.
        """
        loss = metrics["train/loss"]
        if not np.isfinite(loss):
            raise FloatingPointError(f"Loss is {loss} at step {step}; stopping. {self._advice()}")
        if not self._exploded(step, metrics) and self._unchecked == step - 1:
            self._sane.add(self._unchecked)
        if self._unchecked is not None and self._unchecked < step:
            self._unchecked = None

    def _advice(self) -> str:
        """What the user can do after a NaN: which checkpoint to resume from, and how."""
        on_disk = self._saved_steps()
        sane = [step for step in on_disk if step in self._sane]
        if not sane:
            return (
                f"No checkpoint in {self._where} ({on_disk or 'none'}) is known to be sane; "
                f"start again in a new workdir and {self._hint}."
            )
        newer = [step for step in on_disk if step > sane[-1]]
        move = (
            f" Move the newer ones {newer}, which may hold diverging parameters, out of "
            f"{self._where} to resume from it."
            if newer
            else ""
        )
        return (
            f"The last sane checkpoint (the loss of the step after it was finite and not "
            f"exploding) is step {sane[-1]}.{move} To resume, {self._hint}."
        )
