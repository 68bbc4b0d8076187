"""Evaluation during training: the task's eval loss and metrics as true means over the eval
set, then its evaluators (BLEU, AER, attention maps...). ``run`` is the trainer's built run
(config, task, model, shardings)."""

import operator
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from attn_research.names import did_you_mean
from attn_research.train import steps


def global_batch(run: Any, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """Assembles the per-process numpy batches into one batch sharded over the mesh."""
    return {
        name: jax.make_array_from_process_local_data(run.batch_sharding, np.asarray(value))
        for name, value in local_batch.items()
    }


class Evaluator:
    """Runs the eval loop and the task's evaluators on the current parameters."""

    def __init__(self, run: Any, workdir: str, eval_rng: jax.Array):
        self._run, self._workdir = run, workdir
        self._eval_step = jax.jit(
            steps.make_eval_step(run.task, run.model, eval_rng, run.config),
            in_shardings=(run.state_shardings.params, run.batch_sharding),
        )
        self._evaluators = run.task.evaluators(run.config)

    def _batches(self):
        """This process's eval batches (``Task.eval_data``), a fresh iterable."""
        run = self._run
        return run.task.eval_data(
            run.config,
            batch_size=(run.config.eval_batch_size or run.config.batch_size) // jax.process_count(),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )

    def check_metric(self, field: str, name: str, params: Any, step: int) -> None:
        """Raises ValueError naming ``config.<field>`` unless an evaluation logs `name`: the loss's
        metrics come from shapes (``jax.eval_shape``), the evaluators' from one run at `step`."""
        batch = next(iter(self._batches()), None)
        names = set()
        if batch is not None:
            shapes = jax.eval_shape(self._eval_step, params, global_batch(self._run, batch))
            names = {f"eval/{k}" for k in shapes["sums"]}
        if name in names:
            return
        for evaluator in self._evaluators:
            names |= {f"eval/{k}" for k in evaluator(params, self._run.model, step, self._workdir)}
        if name not in names:
            hint = did_you_mean(name, names)
            raise ValueError(
                f"config.{field}: {name!r} is not an eval metric of this run;{hint} it logs "
                f"{sorted(names)}."
            )

    def __call__(self, params: Any, step: int) -> dict[str, float]:
        """{'eval/<name>': value}: the loss's metrics as true means over the eval set (batches
        weighted by their denominator), and the evaluators'."""
        run = self._run
        totals, count = None, 0
        for local in self._batches():
            metrics = self._eval_step(params, global_batch(run, local))
            totals = metrics if totals is None else jax.tree.map(operator.add, totals, metrics)
            count += 1
        results = {}
        if count:
            totals = jax.device_get(totals)
            denominator = max(float(totals[steps.DENOMINATOR]), 1e-12)
            results = {f"eval/{k}": float(v) / denominator for k, v in totals["sums"].items()}
        for evaluator in self._evaluators:
            results.update(
                {
                    f"eval/{k}": float(v)
                    for k, v in evaluator(params, run.model, step, self._workdir).items()
                }
            )
        return results
