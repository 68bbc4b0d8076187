"""Checkpoints of the train state, the data iterator's position and the config (orbax).

Each checkpoint `<workdir>/checkpoints/<step>/` holds three items: `state` (the sharded train
state), `data` (the grain iterator's state, one JSON file per process) and `config`. Saves are
asynchronous and atomic: orbax writes to a temporary directory and renames it when complete, so
a process killed mid-save leaves no half-written step behind.

Resume order (`Checkpointer.restore`): the newest step first; a step that fails to restore
(corrupted files) is logged, moved aside to `<workdir>/checkpoints_corrupt/<step>/` (nothing
is deleted, and the step number can be saved again), and the next older step is tried.
"""

import os
from typing import Any

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

_ITEMS = ("state", "data", "config")


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

    def latest_step(self) -> int | None:
        """The newest saved step, or None."""
        return self._manager.latest_step()

    def reached_preemption(self, step: int) -> bool:
        """Whether the multi-host preemption service asks all processes to save at `step`."""
        return self._manager.reached_preemption(step)

    def save(
        self,
        step: int,
        state: Any,
        data_iterator: grain.DatasetIterator,
        config: ml_collections.ConfigDict,
    ) -> None:
        """Starts an asynchronous save of `step`; returns once the state is copied off device."""
        self._manager.save(
            step,
            force=True,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(data_iterator),
                config=ocp.args.JsonSave(config.to_dict()),
            ),
        )

    def restore(
        self, abstract_state: Any, data_iterator: grain.DatasetIterator
    ) -> tuple[Any, int, dict[str, Any]] | None:
        """Restores the newest good checkpoint into the state and `data_iterator`.

        Args:
          abstract_state: ShapeDtypeStructs (with shardings) of the train state.
          data_iterator: the fresh train iterator; its position is set in place.

        Returns:
          (state, step, config as saved) of the newest checkpoint that restores, or None if there
          is none.

        Raises:
          RuntimeError: if checkpoints exist but none of them restores.
        """
        steps = sorted(self._manager.all_steps(), reverse=True)
        for step in steps:
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
                logging.warning(
                    "Checkpoint at step %d does not restore (%s: %s); moving it to %s and "
                    "falling back to an older one.",
                    step,
                    type(error).__name__,
                    error,
                    self._corrupt_directory,
                )
                self._set_aside(step)
                continue
            return restored.state, step, restored.config
        if steps:
            raise RuntimeError(
                f"No checkpoint in {self._directory} restores (tried steps {steps}); "
                f"they were moved to {self._corrupt_directory}."
            )
        return None

    def _set_aside(self, step: int) -> None:
        """Moves the directory of `step` out of the manager's view, keeping its files."""
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
        """Blocks until pending asynchronous saves are complete."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self._manager.close()


def load_state(workdir: str, step: int | None = None) -> dict[str, Any]:
    """Reads the saved train state of `step` (default: the newest) as numpy arrays.

    For analysis and tests: returns {'step': ..., 'params': ..., 'opt_state': ...} as nested dicts,
    without needing the model, the mesh or the number of processes that trained them.
    """
    directory = _workdir(workdir) / "checkpoints"
    if step is None:
        with ocp.CheckpointManager(directory, item_names=_ITEMS) as manager:
            step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"No checkpoint in {directory}.")
    path = directory / str(step) / "state"
    with ocp.PyTreeCheckpointer() as checkpointer:
        tree = checkpointer.metadata(path).item_metadata.tree
        as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        return checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
