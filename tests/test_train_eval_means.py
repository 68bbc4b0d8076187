"""Eval metrics are true means over the eval set: batches weigh by their denominator (flax wmt),
not equally, so that batches with more padding do not bias them."""

import jax
import jax.numpy as jnp
import numpy as np

from attn_research.train import steps


class PaddedTokens:
    """A task whose loss is the mean of per-token values over the real (non-zero) tokens."""

    def loss(self, params, batch, rng, model, train, config):
        weights = (batch["tokens"] != 0).astype(jnp.float32)
        mean = (batch["value"] * weights).sum() / weights.sum()
        return mean, {"denominator": weights.sum()}


def test_eval_step_sums_weigh_batches_by_their_real_tokens():
    rng = np.random.default_rng(0)
    batches = []
    for real in (3, 17):  # very different padding
        tokens = np.zeros((4, 8), np.int32)
        tokens.reshape(-1)[:real] = 1
        batches.append({"tokens": tokens, "value": rng.normal(size=(4, 8)).astype(np.float32)})
    eval_step = jax.jit(steps.make_eval_step(PaddedTokens(), None, jax.random.key(0), None))
    totals = [eval_step({}, b) for b in batches]
    loss = sum(t["sums"]["loss"] for t in totals) / sum(t[steps.DENOMINATOR] for t in totals)
    values = np.concatenate([b["value"][b["tokens"] != 0] for b in batches])
    np.testing.assert_allclose(loss, values.mean(), rtol=1e-6)
    per_batch = np.mean([b["value"][b["tokens"] != 0].mean() for b in batches])
    assert abs(per_batch - values.mean()) > 1e-3  # the biased mean of means differs here
