"""Checkpoints of the train state, the data iterator's position and the config (orbax).

`<workdir>/checkpoints/<step>/` holds `state` (sharded), `data` (the grain iterator's state,
one JSON file per process) and `config`. Saves are asynchronous and atomic (orbax renames a
complete temporary directory).

Resume order (`Checkpointer.restore`): newest step first; a step that fails to read or restore
is logged, moved to `<workdir>/checkpoints_corrupt/<step>/`, and the next older one is tried.
A readable step of other shapes than the model's raises `CheckpointMismatchError` and moves
nothing. A failed save raises `CheckpointSaveError` from the next `check`, `save`, `wait` or
`close`.
"""

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from attn_research.train.paths import path_names

_ITEMS = ("state", "data", "config")
_MAX_LISTED = 8  # Differences named in a CheckpointMismatchError.


class CheckpointMismatchError(ValueError):
    """An intact checkpoint whose train state does not fit the current config's model."""


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed (e.g. the disk is full); older checkpoints are intact."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {
        path: value
        for key, child in tree.items()
        for path, value in flatten(child, f"{prefix}.{key}" if prefix else key).items()
    }


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple]:
    """{'model.hidden': (16, 32), ...}: the fields where two configs (as dicts) differ."""
    saved = flatten(saved)
    current = flatten(json.loads(json.dumps(current)))  # Tuples as JSON reads them back.
    return {
        key: (saved.get(key), current.get(key))
        for key in sorted(saved.keys() | current.keys())
        if saved.get(key) != current.get(key)
    }


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{'params/Dense_0/kernel': (8, 16), ...} of a tree of arrays or array metadata."""
    names = jax.tree.leaves(path_names(tree))
    return dict(zip(names, (tuple(leaf.shape) for leaf in jax.tree.leaves(tree))))


def _shape_changes(saved: Any, current: Any) -> list[str]:
    """'path: saved (8, 16), now (8, 32)' for each leaf whose shape or presence differs,
    parameters first."""
    saved, current = _shapes(saved), _shapes(current)
    names = sorted(saved.keys() | current.keys(), key=lambda name: (name[:7] != "params/", name))
    return [
        f"{name}: saved {saved.get(name, 'nothing')}, now {current.get(name, 'nothing')}"
        for name in names
        if saved.get(name) != current.get(name)
    ]


def _read_state_metadata(path: epath.Path) -> Any:
    """The tree of ArrayMetadata (shape, dtype) of the train state saved at `path`."""
    with ocp.PyTreeCheckpointer() as checkpointer:
        return checkpointer.metadata(path).item_metadata.tree


def _workdir(workdir: str) -> epath.Path:
    """The workdir as orbax needs it: local paths made absolute, URLs (gs://...) as given."""
    return epath.Path(workdir if "://" in workdir else os.path.abspath(workdir))


class Checkpointer:
    """Saves and restores (state, data iterator, config) under a workdir."""

    def __init__(self, workdir: str, keep: int):
        """Opens (creating if needed) `<workdir>/checkpoints`, keeping the newest `keep` steps."""
        self._directory = _workdir(workdir) / "checkpoints"
        self._corrupt_directory = _workdir(workdir) / "checkpoints_corrupt"
        self._manager = ocp.CheckpointManager(
            self._directory,
            item_names=_ITEMS,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )
        self._saving: int | None = None  # The step of the newest save started.
        self._unfinished = False  # Whether that save may still be running (or have failed).

    def latest_step(self) -> int | None:
        """The newest saved step, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """The saved steps, oldest first."""
        return sorted(self._manager.all_steps())

    def reached_preemption(self, step: int) -> bool:
        """Whether the multi-host preemption service asks all processes to save at `step`."""
        return self._manager.reached_preemption(step)

    @contextlib.contextmanager
    def _reporting_save_errors(self) -> Iterator[None]:
        """Turns any failure in the block into the one CheckpointSaveError for `self._saving`."""
        try:
            yield
        except Exception as error:  # pylint: disable=broad-except  # Any failure stops the run.
            kept = [step for step in self.all_steps() if step != self._saving]
            resume = f"rerun to resume from step {kept[-1]}" if kept else "rerun to start again"
            raise CheckpointSaveError(
                f"Saving the checkpoint of step {self._saving} in {self._directory} failed "
                f"({type(error).__name__}: {error}). Training stopped; the checkpoints of steps "
                f"{kept} are intact. Free space (or fix the error) and {resume}."
            ) from None  # The one message: it holds the cause's type and text.

    def save(
        self,
        step: int,
        state: Any,
        data_iterator: grain.DatasetIterator,
        config: ml_collections.ConfigDict,
    ) -> None:
        """Starts an asynchronous save of `step`; returns once the state is copied off device.

        Raises:
          CheckpointSaveError: if this save, or the previous one, failed.
        """
        self.wait()  # As orbax would, but a failure of the previous save is reported as its own.
        self._saving, self._unfinished = step, True
        with self._reporting_save_errors():
            self._manager.save(
                step,
                force=True,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state),
                    data=grain.checkpoint.CheckpointSave(data_iterator),
                    config=ocp.args.JsonSave(config.to_dict()),
                ),
            )

    def check(self) -> None:
        """Raises CheckpointSaveError if the background save has failed; never blocks (a finished
        save is waited for once, which is how orbax reports its failure)."""
        if self._unfinished and not self._manager.is_saving_in_progress():
            self.wait()
            self._unfinished = False

    def _mismatch(self, step: int, saved_state: Any, abstract_state: Any, config: dict) -> str:
        """The error message for an intact checkpoint of other shapes, or '' if it fits."""
        shapes = _shape_changes(saved_state, abstract_state)
        if not shapes:
            return ""
        saved_config = self._manager.restore(
            step, args=ocp.args.Composite(config=ocp.args.JsonRestore())
        ).config
        changes = [
            f"config.{key}: saved {saved!r}, now {now!r}"
            for key, (saved, now) in config_changes(saved_config, config).items()
        ]
        listed = "\n  ".join(changes + shapes[:_MAX_LISTED])
        more = f"\n  ... and {len(shapes) - _MAX_LISTED} more" if len(shapes) > _MAX_LISTED else ""
        return (
            f"The checkpoint at step {step} in {self._directory} is intact but holds a train "
            f"state of other shapes than this config's model:\n  {listed}{more}\n"
            f"Nothing was changed on disk. Rerun with the config the checkpoints were saved "
            f"with (see {self._directory / str(step) / 'config'}), or use another workdir."
        )

    def restore(
        self, abstract_state: Any, data_iterator: grain.DatasetIterator, config: dict[str, Any]
    ) -> tuple[Any, int, dict[str, Any]] | None:
        """Restores the newest good checkpoint into the state and `data_iterator` (in place).

        Args:
          abstract_state: ShapeDtypeStructs (with shardings) of the train state.
          data_iterator: the fresh train iterator.
          config: the current config as a dict, to name what changed in a mismatch.

        Returns:
          (state, step, saved config) of the newest checkpoint that restores, or None.

        Raises:
          CheckpointMismatchError: if the newest readable checkpoint holds other shapes.
          RuntimeError: if checkpoints exist but none of them restores.
        """
        steps = sorted(self._manager.all_steps(), reverse=True)
        for step in steps:
            try:
                saved_state = _read_state_metadata(self._directory / str(step) / "state")
            except Exception as error:  # pylint: disable=broad-except  # Unreadable: corrupt.
                self._set_aside(step, error)
                continue
            mismatch = self._mismatch(step, saved_state, abstract_state, config)
            if mismatch:
                raise CheckpointMismatchError(mismatch)
            try:
                restored = self._manager.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_state),
                        data=grain.checkpoint.CheckpointRestore(data_iterator),
                        config=ocp.args.JsonRestore(),
                    ),
                )
            except Exception as error:  # pylint: disable=broad-except  # Any failure means corrupt.
                self._set_aside(step, error)
                continue
            return restored.state, step, restored.config
        if steps:
            raise RuntimeError(
                f"No checkpoint in {self._directory} restores (tried steps {steps}); "
                f"they were moved to {self._corrupt_directory}."
            )
        return None

    def _set_aside(self, step: int, error: Exception) -> None:
        """Moves the directory of `step`, which failed with `error`, out of the manager's view,
        keeping its files."""
        logging.warning(
            "Checkpoint at step %d does not restore (%s: %s); moving it to %s and "
            "falling back to an older one.",
            step,
            type(error).__name__,
            error,
            self._corrupt_directory,
        )
        if jax.process_index() == 0:
            self._corrupt_directory.mkdir(parents=True, exist_ok=True)
            target = self._corrupt_directory / str(step)
            suffix = 0
            while target.exists():
                suffix += 1
                target = self._corrupt_directory / f"{step}.{suffix}"
            (self._directory / str(step)).rename(target)
        multihost_utils.sync_global_devices(f"checkpoint_set_aside_{step}")
        self._manager.reload()

    def wait(self) -> None:
        """Blocks until pending saves are complete; raises CheckpointSaveError if one failed."""
        with self._reporting_save_errors():
            self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager; CheckpointSaveError if one failed."""
        with self._reporting_save_errors():
            self._manager.close()


def load_state(workdir: str, step: int | None = None) -> dict[str, Any]:
    """The saved train state of `step` (default: the newest) as nested dicts of numpy arrays
    ({'step', 'params', 'opt_state'}), read without the model, the mesh or the process count."""
    directory = _workdir(workdir) / "checkpoints"
    if step is None:
        with ocp.CheckpointManager(directory, item_names=_ITEMS) as manager:
            step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"No checkpoint in {directory}.")
    return read_numpy(directory / str(step) / "state")


def read_numpy(path: epath.Path) -> Any:
    """The tree saved at ``path`` (an orbax StandardSave item) as numpy arrays, read on the
    host whatever devices wrote it. A relative path is resolved first: orbax finds no metadata
    under one."""
    path = epath.Path(path).resolve()
    as_numpy = jax.tree.map(
        lambda _: ocp.RestoreArgs(restore_type=np.ndarray), _read_state_metadata(path)
    )
    with ocp.PyTreeCheckpointer() as checkpointer:
        return checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
