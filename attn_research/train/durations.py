"""Run-time resolution of durations given in steps or in epochs.

Configs never precompute steps from a batch size: `--config.batch_size=...` must not leave a
stale schedule. The trainer resolves every `<name>_steps` / `<name>_epochs` pair here, once the
dataset size and batch size are known. One step is one call of the train step (one micro-batch
of `batch_size` examples when gradients are accumulated).
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
      eval_every: steps between evaluations; the run also evaluates at its end.
      checkpoint_every: steps between checkpoints; the run also saves at its end.
      warmup_steps: learning-rate warmup length (default 0).
      halve_after: steps before the `halving` schedule first halves the learning rate (default
        the whole run: never).
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
    """Resolves `config.<name>_steps` or `config.<name>_epochs` to steps.

    Args:
      config: the (sub-)config holding the pair.
      name: the pair's name without suffix.
      prefix: the path of `config` for error messages, e.g. "optimizer.".
      steps_per_epoch: train steps per epoch.
      default: the value in steps when neither field is set; None means required.

    Returns:
      The duration in steps.

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
    """Clears the other field of each duration pair that the command line sets, in place.

    A config file may give `total_epochs`; `--config.total_steps=600` then means 600 steps.
    Of a pair given both on the command line, the one given last wins.

    Args:
      config: the config as the config file and the command line made it.
      given: the paths the command line set ('total_steps', 'optimizer.warmup_epochs', ...),
        in the order given (ml_collections' ``override_values``).
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
    """Resolves all durations of `config` for a training set of `num_train_examples`.

    Epoch counts are rounded up to whole steps. Intervals of 0 (or longer than the run) mean
    "only at the end of the run".

    Args:
      config: a config completed by `config.check_config`.
      num_train_examples: size of the training set (all processes together).

    Returns:
      The resolved Durations.

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
