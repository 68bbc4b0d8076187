"""What a training run leaves in its workdir, read for prediction: the config and the params.

    <workdir>/config.json                the resolved config (``train.run_info``)
    <workdir>/checkpoints/<step>/state   the train state (``train.checkpoint``)
    <workdir>/checkpoints_best/<step>/params       the best params by an eval metric (``train.best``)
    <workdir>/checkpoints_averaged/<step>/params   the mean of the last N checkpoints' params
                                                   (``attn_research.average_checkpoints``)

A checkpoint is complete once orbax has renamed its temporary directory
(``<step>.orbax-checkpoint-tmp-*``) to ``<step>``, so a run that is writing one is read at its
newest complete step. A complete step that still fails to read is skipped with a warning.
Nothing here writes to the workdir, runs training code or reads a data set.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from orbax.checkpoint import path as ocp_path

from attn_research.train import best, checkpoint

CONFIG_NAME = "config.json"
# config.model fields renamed since runs began writing config.json: old name -> new name.
_RENAMED_MODEL_FIELDS = {
    "family": "name",
    "emb_dim": "embed_dim",
    "width": "embed_dim",
    "depth": "num_layers",
    "posemb": "position_embedding",
    "positions": "position_embedding",
}
_RENAMED_VALUES = {("position_embedding", "learn"): "learned"}


class RunFilesError(FileNotFoundError):
    """A workdir lacks a file that prediction needs; the message names it."""


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The run's config from ``<workdir>/config.json``, with model fields renamed since it was
    written given their new names.

    Raises:
      RunFilesError: naming the workdir or the file if either is missing.
    """
    if not os.path.isdir(workdir):
        raise RunFilesError(f"workdir {workdir!r} does not exist.")
    path = os.path.join(workdir, CONFIG_NAME)
    if not os.path.isfile(path):
        raise RunFilesError(
            f"{path} is missing: the workdir holds no run (training writes {CONFIG_NAME} "
            f"when it starts)."
        )
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    model = config.get("model", {})
    for old, new in _RENAMED_MODEL_FIELDS.items():
        if old in model and new not in model:
            value = model.pop(old)
            model[new] = _RENAMED_VALUES.get((new, value), value)
    return ml_collections.ConfigDict(config)


def complete_steps(workdir: str) -> list[int]:
    """The steps of the complete checkpoints in `workdir`, oldest first."""
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    return sorted(ocp_path.step.checkpoint_steps(directory))


CHECKPOINTS = ("latest", "best", "averaged")
AVERAGED_DIRECTORY = "checkpoints_averaged"


def restore_params(
    workdir: str, step: int | None = None, *, which: str = "latest", average: int = 0
) -> tuple[Any, int]:
    """The params of a checkpoint as numpy arrays, and its step.

    Args:
      step: the rolling checkpoint's step (default: the newest that reads).
      which: ``latest`` (the rolling checkpoints), ``best`` (``config.best_metric``'s) or
        ``averaged`` (written by ``attn_research.average_checkpoints``).
      average: with ``latest``, the mean of the params of the newest ``average`` complete
        checkpoints up to ``step`` (0 or 1: that one checkpoint).

    Raises:
      RunFilesError: if there is no such checkpoint, or none reads.
    """
    if which not in CHECKPOINTS:
        raise ValueError(f"checkpoint: unknown {which!r}; choose one of {CHECKPOINTS}")
    if which != "latest":
        if step is not None or average > 1:
            raise ValueError(f"checkpoint {which!r} is one step: give no step or average.")
        name = best.DIRECTORY if which == "best" else AVERAGED_DIRECTORY
        try:
            return best.read_params(os.path.join(workdir, name))
        except FileNotFoundError as error:
            raise RunFilesError(f"{error} (checkpoint {which!r} of {workdir})") from None
    if average > 1:
        steps = [s for s in complete_steps(workdir) if step is None or s <= step][-average:]
        if len(steps) < average:
            raise RunFilesError(
                f"Averaging {average} checkpoints needs as many complete ones in "
                f"{workdir}/checkpoints; it has {steps}."
            )
        return average_params([checkpoint.load_state(workdir, s)["params"] for s in steps]), steps[
            -1
        ]
    return _restore_rolling(workdir, step)


def average_params(trees: list[Any]) -> Any:
    """The leaf-wise mean of params trees of one structure (checkpoint averaging; Vaswani et
    al. 2017 average the last 5 or 20 checkpoints)."""
    return jax.tree.map(lambda *leaves: np.mean(np.stack(leaves), axis=0), *trees)


def _restore_rolling(workdir: str, step: int | None) -> tuple[Any, int]:
    """The params of the rolling checkpoint at `step` (default: the newest that reads)."""
    steps = complete_steps(workdir)
    where = os.path.join(workdir, "checkpoints")
    if step is not None:
        if step not in steps:
            raise RunFilesError(f"No complete checkpoint of step {step} in {where} (has {steps}).")
        return checkpoint.load_state(workdir, step)["params"], step
    if not steps:
        raise RunFilesError(f"No complete checkpoint in {where}: the run has saved none yet.")
    for candidate in reversed(steps):
        try:
            return checkpoint.load_state(workdir, candidate)["params"], candidate
        except Exception as error:  # pylint: disable=broad-except  # Unreadable: try older.
            logging.warning(
                "Checkpoint of step %d in %s does not read (%s: %s); trying an older one.",
                candidate,
                where,
                type(error).__name__,
                error,
            )
    raise RunFilesError(f"None of the checkpoints in {where} reads (steps {steps}).")


def place_params(params: Any, abstract: Any, what: str) -> Any:
    """`params` on the default device, after checking they have the shapes of `abstract`.

    Args:
      params: numpy arrays as restored.
      abstract: the model's params as ``jax.eval_shape`` gives them.
      what: names the checkpoint in the error.

    Raises:
      ValueError: naming the parameters whose shapes differ (a config.json that is not the
        checkpoint's).
    """
    saved = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree.leaves_with_path(params)}
    wanted = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree.leaves_with_path(abstract)}
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
