"""The train state and the pure train/eval step functions (jitted by the trainer)."""

from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from attn_research.tasks import Task
from attn_research.tasks.base import Batch

Metrics = dict[str, jax.Array]
# The metric a task's loss may return to say how many examples (or tokens) its batch means are
# over; evaluation weights each batch by it (flax wmt's ``denominator``).
DENOMINATOR = "denominator"


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training; a pytree of arrays, checkpointed as a whole."""

    step: jax.Array  # int32 scalar: train steps done.
    params: Any
    opt_state: Any


def make_init(
    task: Task, model: nn.Module, tx: optax.GradientTransformation, config: Any
) -> Callable[[jax.Array], TrainState]:
    """`init(rng) -> TrainState` at step 0; with `config.init_uniform = r > 0` every parameter is
    redrawn from U[-r, r] (Luong et al. 2015)."""

    def init(rng: jax.Array) -> TrainState:
        params = task.init_params(model, rng, config)
        if config.init_uniform:
            leaves, tree = jax.tree.flatten(params)
            keys = jax.random.split(jax.random.fold_in(rng, 1), len(leaves))
            r = config.init_uniform
            leaves = [
                jax.random.uniform(key, x.shape, x.dtype, -r, r) for key, x in zip(keys, leaves)
            ]
            params = jax.tree.unflatten(tree, leaves)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    return init


def make_train_step(
    task: Task,
    model: nn.Module,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    rng: jax.Array,
    config: ml_collections.ConfigDict,
) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """`train_step(state, batch) -> (state, metrics)`, with randomness `fold_in(rng, state.step)`;
    metrics are the task's plus `loss`, `grad_norm` and `learning_rate`."""

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        step_rng = jax.random.fold_in(rng, state.step)
        loss_fn = lambda params: task.loss(params, batch, step_rng, model, True, config)
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        metrics = {k: v for k, v in metrics.items() if k != DENOMINATOR}
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            **metrics,
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "learning_rate": schedule(state.step),
        }
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return train_step


def make_eval_step(
    task: Task, model: nn.Module, rng: jax.Array, config: ml_collections.ConfigDict
) -> Callable[[Any, Batch], Metrics]:
    """`eval_step(params, batch) -> {"sums": ..., "denominator": n}`: each metric and `loss` times
    the batch's denominator (the task's `DENOMINATOR` metric, else 1), so summed sums over summed
    denominators are true means.
    """

    def eval_step(params: Any, batch: Batch) -> Metrics:
        loss, metrics = task.loss(params, batch, rng, model, False, config)
        metrics = {**metrics, "loss": loss}
        denominator = jnp.asarray(metrics.pop(DENOMINATOR, 1.0), jnp.float32)
        return {"sums": {k: v * denominator for k, v in metrics.items()}, DENOMINATOR: denominator}

    return eval_step
