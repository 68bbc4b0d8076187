"""The best checkpoint by an eval metric, kept apart from the rolling ones, and early stopping.

With ``config.best_metric`` set (e.g. ``eval/bleu``), `BestCheckpoint` keeps one step under
``<workdir>/checkpoints_best/<step>/params``: the best by ``config.best_mode`` (orbax's
``best_fn``); ``attn_research.load(workdir, checkpoint="best")`` reads it. Early stopping
(``config.early_stopping_evals = N > 0``) ends the run after N evaluations without a new best,
counted from the best step (so a resumed run counts the same).
"""

from __future__ import annotations

from typing import Any, Mapping

import orbax.checkpoint as ocp
from etils import epath

DIRECTORY = "checkpoints_best"


class BestCheckpoint:
    """The params of the best evaluation so far, by ``metric``."""

    def __init__(self, workdir: str, metric: str, mode: str, patience: int = 0):
        """``patience``: evaluations without a new best that end the run (0: never)."""
        self.metric, self._patience = metric, patience
        self._manager = ocp.CheckpointManager(
            epath.Path(workdir) / DIRECTORY,
            item_names=("params",),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1,
                best_fn=lambda metrics: metrics[metric],
                best_mode=mode,
                create=True,
            ),
        )

    def offer(self, step: int, params: Any, metrics: Mapping[str, float]) -> None:
        """Saves ``params`` of ``step`` (asynchronously); orbax keeps it if it is the best.

        Raises:
          ValueError: if ``metrics`` lacks the metric (naming the ones it has).
        """
        if self.metric not in metrics:
            raise ValueError(
                f"config.best_metric: {self.metric!r} is not an eval metric of this run; it "
                f"logs {sorted(metrics)}."
            )
        self._manager.save(
            step,
            args=ocp.args.Composite(params=ocp.args.StandardSave(params)),
            metrics={self.metric: float(metrics[self.metric])},
            force=True,
        )

    def best_step(self) -> int | None:
        """The step of the best checkpoint so far, or None."""
        self._manager.wait_until_finished()
        return self._manager.best_step()

    def evals_since_best(self, step: int, eval_every: int) -> int:
        """Evaluations after the best one, up to ``step`` (every ``eval_every`` steps)."""
        best = self.best_step()
        return 0 if best is None else (step - best) // eval_every

    def stop(self, step: int, eval_every: int) -> bool:
        """Whether early stopping ends the run at ``step``."""
        return bool(self._patience) and self.evals_since_best(step, eval_every) >= self._patience

    def close(self) -> None:
        self._manager.close()


def save_params(directory: str, step: int, params: Any) -> None:
    """Writes ``params`` as ``<directory>/<step>/params`` (``predict.run_files`` reads it)."""
    with ocp.CheckpointManager(
        epath.Path(directory),
        item_names=("params",),
        options=ocp.CheckpointManagerOptions(create=True),
    ) as manager:
        manager.save(
            step, args=ocp.args.Composite(params=ocp.args.StandardSave(params)), force=True
        )
