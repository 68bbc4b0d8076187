"""Optimizer construction: schedules, weight-decay masks, clipping, gradient accumulation."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from attn_research.train import config as config_lib
from attn_research.train import optimizer, steps


def _opt(**changes):
    opt = config_lib.default_config().optimizer
    opt.update(changes)
    return opt


def test_warmup_cosine_matches_formula():
    opt = _opt(learning_rate=0.1, schedule="cosine", end_learning_rate_fraction=0.1)
    schedule = optimizer.make_schedule(opt, total_updates=110, warmup_updates=10)
    for t in (0, 5, 10, 60, 110):
        if t < 10:
            expected = 0.1 * t / 10
        else:
            cosine = 0.5 * (1 + math.cos(math.pi * (t - 10) / 100))
            expected = 0.1 * (0.1 + 0.9 * cosine)
        assert float(schedule(t)) == pytest.approx(expected, rel=1e-5, abs=1e-8), t


def test_inverse_sqrt_and_constant():
    opt = _opt(learning_rate=0.1, schedule="inverse_sqrt")
    schedule = optimizer.make_schedule(opt, total_updates=1000, warmup_updates=100)
    assert float(schedule(100)) == pytest.approx(0.1)
    assert float(schedule(400)) == pytest.approx(0.1 * math.sqrt(100 / 400), rel=1e-5)
    constant = optimizer.make_schedule(_opt(learning_rate=0.1, schedule="constant"), 1000, 0)
    assert float(constant(0)) == float(constant(999)) == pytest.approx(0.1)


def test_decay_mask_spares_biases_norms_embeddings():
    params = {
        "Dense_0": {"kernel": 1.0, "bias": 1.0},
        "LayerNorm_0": {"scale": 1.0},
        "Embed_0": {"embedding": 1.0},
    }
    mask = optimizer.decay_mask(params, _opt().no_decay)
    assert mask == {
        "Dense_0": {"kernel": True, "bias": False},
        "LayerNorm_0": {"scale": False},
        "Embed_0": {"embedding": False},
    }


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_weight_decay_only_on_masked_params(name):
    # With zero gradients, adam/adamw/sgd updates come from the weight decay alone.
    opt = _opt(name=name, schedule="constant", learning_rate=0.5, weight_decay=0.1, momentum=0.0)
    tx, _ = optimizer.make_optimizer(opt, total_steps=10, warmup_steps=0)
    params = {"kernel": jnp.ones(3), "bias": jnp.ones(3)}
    updates, _ = tx.update({"kernel": jnp.zeros(3), "bias": jnp.zeros(3)}, tx.init(params), params)
    np.testing.assert_array_equal(updates["bias"], 0.0)
    assert float(updates["kernel"][0]) < 0.0


def test_gradient_clipping():
    opt = _opt(name="sgd", schedule="constant", learning_rate=1.0, momentum=0.0, grad_clip_norm=1.0)
    tx, _ = optimizer.make_optimizer(opt, total_steps=10, warmup_steps=0)
    params = {"w": jnp.zeros(2)}
    updates, _ = tx.update({"w": jnp.array([3.0, 4.0])}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.6, -0.8], rtol=1e-6)


def test_gradient_accumulation_averages_k_steps():
    opt = _opt(name="sgd", schedule="constant", learning_rate=1.0, momentum=0.0, grad_accum_steps=2)
    tx, schedule = optimizer.make_optimizer(opt, total_steps=10, warmup_steps=0)
    params = {"w": jnp.zeros(2)}
    state = tx.init(params)
    first, state = tx.update({"w": jnp.array([1.0, 2.0])}, state, params)
    second, state = tx.update({"w": jnp.array([3.0, 6.0])}, state, params)
    np.testing.assert_array_equal(first["w"], 0.0)  # No update until k micro-steps.
    np.testing.assert_allclose(second["w"], [-2.0, -4.0])  # Minus the mean gradient.
    assert float(schedule(3)) == pytest.approx(1.0)


def test_schedule_counts_updates_with_accumulation():
    opt = _opt(learning_rate=1.0, schedule="cosine", grad_accum_steps=4)
    _, schedule = optimizer.make_optimizer(opt, total_steps=80, warmup_steps=8)
    # 8 train steps of warmup are 2 updates: step 4 is update 1, half way up.
    assert float(schedule(4)) == pytest.approx(0.5)
    assert float(schedule(80)) == pytest.approx(0.0, abs=1e-6)


def test_halving_keeps_the_peak_then_halves_after_and_every():
    """Luong et al. 2015: the rate halved after `after` updates, then after every `every`."""
    opt = _opt(learning_rate=1.0, schedule="halving")
    schedule = optimizer.make_schedule(opt, total_updates=100, warmup_updates=0, halving=(8, 3))
    expected = {0: 1.0, 7: 1.0, 8: 0.5, 10: 0.5, 11: 0.25, 14: 0.125, 99: 0.5 ** (1 + 91 // 3)}
    for t, rate in expected.items():
        assert float(schedule(t)) == pytest.approx(rate, rel=1e-6), t
    # With gradient accumulation the halving counts updates, like the other schedules.
    _, by_step = optimizer.make_optimizer(opt, 100, 0, halving=(8, 4))
    assert float(by_step(7)) == 1.0 and float(by_step(8)) == 0.5 and float(by_step(12)) == 0.25
    opt.grad_accum_steps = 2
    _, by_step = optimizer.make_optimizer(opt, 100, 0, halving=(8, 4))
    assert [float(by_step(t)) for t in (7, 8, 11, 12)] == [1.0, 0.5, 0.5, 0.25]


def test_init_uniform_redraws_every_parameter_in_the_range():
    class Task:
        def init_params(self, model, rng, config):
            del model, config
            return {"w": jax.random.normal(rng, (64, 32)) * 10.0, "b": jnp.zeros((4096,))}

    config = ml_collections.ConfigDict({"init_uniform": 0.1})
    init = steps.make_init(Task(), None, optax.sgd(1.0), config)
    state, again = init(jax.random.key(3)), init(jax.random.key(3))
    for name, x in state.params.items():
        x = np.asarray(x)
        assert np.abs(x).max() <= 0.1 and np.abs(x).max() > 0.099, name
        assert abs(x.mean()) < 0.01 and np.std(x) == pytest.approx(0.1 / math.sqrt(3), rel=0.05)
        np.testing.assert_array_equal(x, again.params[name])
    assert not np.array_equal(state.params["w"][:32].ravel(), state.params["b"][:1024])
    config.init_uniform = 0.0  # the task's own parameters
    own = steps.make_init(Task(), None, optax.sgd(1.0), config)(jax.random.key(3))
    assert not np.any(own.params["b"]) and np.abs(own.params["w"]).max() > 1.0
