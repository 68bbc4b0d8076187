"""Run-time resolution of `<name>_steps` / `<name>_epochs` pairs, once the dataset and batch
sizes are known (so `--config.batch_size=...` never leaves a stale schedule). One step is one
call of the train step.
"""

import dataclasses
import math
from collections.abc import Sequence

import ml_collections

from attn_research.train.config import DURATIONS


@dataclasses.dataclass(frozen=True)
class Durations:
    """Resolved durations, all in train steps.

    Attributes:
      steps_per_epoch: train steps in one pass over the training set.
      total_steps: length of the run.
      log_every: steps between log lines (default 50, capped by total_steps).
      eval_every: steps between evaluations; also at the end of the run.
      checkpoint_every: steps between checkpoints; also at the end of the run.
      warmup_steps: learning-rate warmup length (default 0).
      halve_after: steps before the `halving` schedule first halves (default: never).
      halve_every: steps between its later halvings (default one epoch).
    """

    steps_per_epoch: int
    total_steps: int
    log_every: int
    eval_every: int
    checkpoint_every: int
    warmup_steps: int
    halve_after: int
    halve_every: int


def _steps(
    config: ml_collections.ConfigDict,
    name: str,
    prefix: str,
    steps_per_epoch: int,
    default: int | None,
) -> int | None:
    """`config.<name>_steps` or `config.<name>_epochs` (under `prefix`, e.g. "optimizer.") in steps;
    `default` when neither is set (None: required).

    Raises:
      ValueError: naming the fields if both are set, neither is set without a default, or the
        value is negative (zero for `total`).
    """
    steps, epochs = config.get(f"{name}_steps"), config.get(f"{name}_epochs")
    field = f"config.{prefix}{name}_steps/_epochs"
    if steps is not None and epochs is not None:
        raise ValueError(
            f"{field}: set only one of the two, got {steps} steps and {epochs} epochs."
        )
    if steps is None and epochs is None:
        if default is None:
            raise ValueError(f"{field}: exactly one of the two must be set.")
        return default
    if epochs is not None:
        steps = math.ceil(epochs * steps_per_epoch)
    if steps < 0 or (steps == 0 and default is None):
        raise ValueError(f"{field}: must be positive, got {steps} steps.")
    return steps


def prefer_given(config: ml_collections.ConfigDict, given: Sequence[str]) -> None:
    """Clears, in place, the other field of each duration pair that the command line sets (`given`,
    in the order given): `--config.total_steps=600` replaces a config file's `total_epochs`, and
    of a pair given both on the command line, the later wins.
    """
    for name in DURATIONS:
        pair = (f"{name}_steps", f"{name}_epochs")
        chosen = [path for path in given if path in pair]
        if not chosen:
            continue
        parent, _, key = pair[1 - pair.index(chosen[-1])].rpartition(".")
        node = config[parent] if parent else config
        if key in node:
            node[key] = None


def resolve_durations(config: ml_collections.ConfigDict, num_train_examples: int) -> Durations:
    """Resolves all durations of a checked `config` for `num_train_examples` (all processes).

    Epochs round up to whole steps; an interval of 0 (or longer than the run) means "at the end".

    Raises:
      ValueError: naming the field, e.g. for an epoch shorter than one batch.
    """
    steps_per_epoch = num_train_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"config.batch_size: {config.batch_size} is larger than the training set "
            f"({num_train_examples} examples)."
        )
    total = _steps(config, "total", "", steps_per_epoch, None)

    def interval(name: str, default: int) -> int:
        steps = _steps(config, name, "", steps_per_epoch, default)
        return min(steps, total) if steps > 0 else total

    return Durations(
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        log_every=interval("log_every", 50),
        eval_every=interval("eval_every", total),
        checkpoint_every=interval("checkpoint_every", total),
        warmup_steps=_steps(config.optimizer, "warmup", "optimizer.", steps_per_epoch, 0),
        halve_after=_steps(config.optimizer, "halve_after", "optimizer.", steps_per_epoch, total),
        halve_every=max(
            _steps(config.optimizer, "halve_every", "optimizer.", steps_per_epoch, steps_per_epoch),
            1,
        ),
    )
