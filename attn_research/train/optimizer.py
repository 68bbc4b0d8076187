"""The optax optimizer and learning-rate schedule of `config.optimizer`. Schedules count optimizer
updates: with `grad_accum_steps = k` (optax.MultiSteps), `total_steps // k` of them."""

import re
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from attn_research.train import paths


def make_schedule(
    opt: ml_collections.ConfigDict,
    total_updates: int,
    warmup_updates: int,
    halving: tuple[int, int] = (0, 1),
) -> optax.Schedule:
    """Linear warmup from 0 to `opt.learning_rate` over `warmup_updates`, then `opt.schedule`:

    - constant: the peak;
    - cosine: cosine decay to `end_learning_rate_fraction` of the peak at `total_updates`;
    - inverse_sqrt: peak / sqrt(1 + t / max(warmup_updates, 1)), t updates after warmup (Vaswani
      et al. 2017);
    - halving: peak * 0.5^n, n = 0 before `after` and 1 + (t - after) // every from then on, with
      `halving = (after, every)` (Luong et al. 2015).
    """
    peak = opt.learning_rate
    decay_updates = max(total_updates - warmup_updates, 1)
    if opt.schedule == "constant":
        decay = optax.constant_schedule(peak)
    elif opt.schedule == "cosine":
        decay = optax.cosine_decay_schedule(
            peak, decay_updates, alpha=opt.end_learning_rate_fraction
        )
    elif opt.schedule == "halving":
        after, every = halving

        def decay(count: jax.Array) -> jax.Array:
            halvings = jnp.where(count < after, 0, 1 + (count - after) // every)
            return peak * 0.5**halvings

    else:  # inverse_sqrt; names are checked by config.check_config.

        def decay(count: jax.Array) -> jax.Array:
            return peak * jax.lax.rsqrt(1.0 + count / max(warmup_updates, 1))

    if warmup_updates == 0:
        return decay
    warmup = optax.linear_schedule(0.0, peak, warmup_updates)
    return optax.join_schedules([warmup, decay], [warmup_updates])


def decay_mask(params: Any, no_decay: str) -> Any:
    """True for the parameters whose path does not match the `no_decay` regex."""
    pattern = re.compile(no_decay) if no_decay else None
    return jax.tree.map(
        lambda name: not (pattern and pattern.search(name)), paths.path_names(params)
    )


def make_optimizer(
    opt: ml_collections.ConfigDict,
    total_steps: int,
    warmup_steps: int,
    halving: tuple[int, int] = (0, 1),
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The gradient transformation of `opt` (clipping, weight decay, the optimizer, the schedule,
    gradient accumulation) for a run of `total_steps`, and its schedule as a function of the train
    step; `warmup_steps` and `halving = (after, every)` are in train steps.
    """
    k = opt.grad_accum_steps
    halving_updates = (halving[0] // k, max(halving[1] // k, 1))
    schedule = make_schedule(opt, total_steps // k, warmup_steps // k, halving_updates)
    mask = lambda params: decay_mask(params, opt.no_decay)
    parts = []
    if opt.grad_clip_norm:
        parts.append(optax.clip_by_global_norm(opt.grad_clip_norm))
    if opt.name == "adamw":
        parts.append(
            optax.adamw(schedule, opt.b1, opt.b2, opt.eps, weight_decay=opt.weight_decay, mask=mask)
        )
    else:
        if opt.weight_decay:
            parts.append(optax.add_decayed_weights(opt.weight_decay, mask))
        if opt.name == "adam":
            parts.append(optax.adam(schedule, opt.b1, opt.b2, opt.eps))
        else:
            parts.append(optax.sgd(schedule, opt.momentum or None, opt.nesterov))
    tx = optax.chain(*parts)
    if k > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=k).gradient_transformation()
    return tx, lambda step: schedule(jnp.asarray(step) // k)
