"""What a training run leaves in its workdir, read for prediction: the config and the params.

    <workdir>/config.json                          the resolved config (``train.run_info``)
    <workdir>/checkpoints/<step>/state             the train state (``train.checkpoint``)
    <workdir>/checkpoints_best/<step>/params       the best params (``train.best``)
    <workdir>/checkpoints_averaged/<step>/params   the mean of N checkpoints' params

A step is complete once orbax has renamed its temporary directory; a complete step that fails
to read is skipped with a warning. Nothing here writes to the workdir.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from orbax.checkpoint import path as ocp_path

from attn_research.predict import renamed_fields
from attn_research.train import best, checkpoint
from attn_research.train.paths import path_names

CONFIG_NAME = "config.json"
T = TypeVar("T")


class RunFilesError(FileNotFoundError, ValueError):
    """A file of the workdir that prediction needs is missing, unreadable or damaged; the
    message names it and says what to do."""


def read_run_file(path: str, parse: Callable[[str], T], what: str, remedy: str) -> T:
    """``parse(path)``, for every file or checkpoint directory prediction reads; `what` (what it
    holds, who writes it) and `remedy` go into the message.

    Raises:
      RunFilesError: ``<path> is missing|cannot be read|is damaged (<cause>): <what>. <remedy>``.
    """
    if not os.path.exists(path):
        raise RunFilesError(f"{path} is missing: {what}. {remedy}")
    try:
        return parse(path)
    except PermissionError as error:
        problem = f"cannot be read ({error.strerror})"
    except Exception as error:  # pylint: disable=broad-except  # The parser's, whichever it is.
        cause = (str(error).strip().splitlines() or [""])[0][:200]
        problem = f"is damaged ({type(error).__name__}: {cause})"
    raise RunFilesError(f"{path} {problem}: {what}. {remedy}") from None


def read_json_object(path: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON object in the UTF-8 file at `path`; ValueError if it is not one, or lacks a key
    of `required`."""
    with open(path, encoding="utf-8") as f:
        value = json.load(f)
    if not isinstance(value, dict):
        raise ValueError(f"holds a JSON {type(value).__name__}, not an object")
    missing = [key for key in required if key not in value]
    if missing:
        raise ValueError(f"lacks the keys {missing}")
    return value


def _parse_config(path: str) -> dict[str, Any]:
    config = read_json_object(path, ("task", "model", "data"))
    if not isinstance(config["model"], dict) or not isinstance(config["data"], dict):
        raise ValueError("its 'model' and 'data' must be JSON objects")
    return config


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The run's config from ``<workdir>/config.json``, old model field names mapped to the
    current ones.

    Raises:
      RunFilesError: naming the workdir, or the file if it is missing, unreadable or damaged.
    """
    if not os.path.isdir(workdir):
        raise RunFilesError(f"workdir {workdir!r} does not exist.")
    config = read_run_file(
        os.path.join(workdir, CONFIG_NAME),
        _parse_config,
        "the run's resolved config, which training writes when it starts",
        "Without it the checkpoints cannot be rebuilt into a model: restore it from a copy "
        "(it is the config the run was started with, as JSON), or train the run again",
    )
    renamed_fields.renamed(config["model"])
    return ml_collections.ConfigDict(config)


def complete_steps(workdir: str) -> list[int]:
    """The steps of the complete checkpoints in `workdir`, oldest first."""
    return _steps(os.path.join(workdir, "checkpoints"))


CHECKPOINTS = ("latest", "best", "averaged")
AVERAGED_DIRECTORY = "checkpoints_averaged"


def restore_params(
    workdir: str, step: int | None = None, *, which: str = "latest", average: int = 0
) -> tuple[Any, int]:
    """The params of a checkpoint as numpy arrays, and its step.

    Args:
      step: the rolling checkpoint's step (default: the newest that reads).
      which: ``latest``, ``best`` (``config.best_metric``'s) or ``averaged``.
      average: with ``latest``, the mean params of the newest ``average`` complete checkpoints
        up to ``step`` (0 or 1: that one).

    Raises:
      RunFilesError: if there is no such checkpoint, or none reads.
      ValueError: for a negative `step` or `average`, or an unknown `which`.
    """
    if which not in CHECKPOINTS:
        raise ValueError(f"checkpoint: unknown {which!r}; choose one of {CHECKPOINTS}")
    if average < 0 or (step is not None and step < 0):
        raise ValueError(f"step and average must be >= 0, got step {step}, average {average}")
    if which != "latest":
        if step is not None or average > 1:
            raise ValueError(f"checkpoint {which!r} is one step: give no step or average.")
        name = best.DIRECTORY if which == "best" else AVERAGED_DIRECTORY
        directory = os.path.join(workdir, name)
        steps = _steps(directory)
        if not steps:
            maker = "config.best_metric" if which == "best" else "attn_research.average_checkpoints"
            raise RunFilesError(
                f"No params checkpoint in {directory} (checkpoint {which!r} of {workdir}): "
                f"{maker} writes it."
            )
        newest = os.path.join(directory, str(steps[-1]), "params")
        read = lambda path: checkpoint.read_numpy(epath.Path(path))
        return _read_checkpoint(newest, read, f"checkpoint {which!r}", ""), steps[-1]
    if average > 1:
        steps = [s for s in complete_steps(workdir) if step is None or s <= step][-average:]
        if len(steps) < average:
            raise RunFilesError(
                f"Averaging {average} checkpoints needs as many complete ones in "
                f"{workdir}/checkpoints; it has {steps}."
            )
        trees = [_rolling_params(workdir, s) for s in steps]
        return average_params(trees), steps[-1]
    return _restore_rolling(workdir, step)


def _steps(directory: str) -> list[int]:
    """The complete steps of an orbax checkpoint directory, oldest first."""
    return sorted(ocp_path.step.checkpoint_steps(directory)) if os.path.isdir(directory) else []


def _read_checkpoint(path: str, read: Callable[[str], Any], what: str, remedy: str) -> Any:
    """`read_run_file` for a checkpoint item directory."""
    return read_run_file(
        path,
        read,
        f"the saved {what}",
        remedy or "It cannot be repaired here: train again, or restore the directory from a copy",
    )


def _rolling_params(workdir: str, step: int) -> Any:
    """The params of the rolling checkpoint of `step`; RunFilesError naming it if damaged."""
    steps = complete_steps(workdir)
    return _read_checkpoint(
        os.path.join(workdir, "checkpoints", str(step), "state"),
        lambda path: checkpoint.read_numpy(epath.Path(path))["params"],
        f"train state of step {step}",
        f"Choose another step with --step (complete steps: {steps})",
    )


def average_params(trees: list[Any]) -> Any:
    """The leaf-wise mean of params trees of one structure (checkpoint averaging, Vaswani et al.
    2017)."""
    return jax.tree.map(lambda *leaves: np.mean(np.stack(leaves), axis=0), *trees)


def _restore_rolling(workdir: str, step: int | None) -> tuple[Any, int]:
    """The params of the rolling checkpoint at `step` (default: the newest that reads)."""
    steps = complete_steps(workdir)
    where = os.path.join(workdir, "checkpoints")
    if step is not None:
        if step not in steps:
            raise RunFilesError(f"No complete checkpoint of step {step} in {where} (has {steps}).")
        return _rolling_params(workdir, step), step
    if not steps:
        raise RunFilesError(f"No complete checkpoint in {where}: the run has saved none yet.")
    for candidate in reversed(steps):
        try:
            return _rolling_params(workdir, candidate), candidate
        except RunFilesError as error:  # Unreadable: try older.
            logging.warning(
                "Checkpoint of step %d in %s does not read (%s); trying an older one.",
                candidate,
                where,
                error,
            )
    raise RunFilesError(f"None of the checkpoints in {where} reads (steps {steps}).")


def place_params(params: Any, abstract: Any, what: str) -> Any:
    """`params` (numpy) on the default device, checked against `abstract` (``jax.eval_shape``).

    Raises:
      ValueError: naming `what` and the parameters whose shapes differ.
    """
    # Named as the trainer's errors name them ('encoder/layer/kernel': train/paths.py).
    saved = dict(zip(jax.tree.leaves(path_names(params)), map(np.shape, jax.tree.leaves(params))))
    wanted = {
        name: leaf.shape
        for name, leaf in zip(jax.tree.leaves(path_names(abstract)), jax.tree.leaves(abstract))
    }
    changed = [
        f"{name}: saved {saved.get(name, 'nothing')}, model {wanted.get(name, 'nothing')}"
        for name in sorted(saved.keys() | wanted.keys())
        if saved.get(name) != wanted.get(name)
    ]
    if changed:
        raise ValueError(
            f"{what} does not fit the model of config.json:\n  " + "\n  ".join(changed[:8])
        )
    return jax.device_put(params)
