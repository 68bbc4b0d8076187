"""Masked softmax over keys and attention dropout. Statistics are float32; a row with no allowed
key gets zero weights (zero output, finite gradients), not ``jax.nn.softmax(where=...)``'s
uniform average."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jnp.ndarray

# Large finite stand-in for -inf: exp() of it underflows to 0 and gradients stay finite.
NEG_INF = float(jnp.finfo(jnp.float32).min)


def masked_softmax(logits: Array, mask: Array | None) -> Array:
    """float32 ``exp(l_j) / sum_{m allowed} exp(l_m)`` on allowed keys of ``logits [..., Tk]``
    (``mask`` broadcastable, True = may attend), 0 elsewhere and in rows with none."""
    logits = logits.astype(jnp.float32)
    if mask is None:
        return jax.nn.softmax(logits, axis=-1)
    # Masked logits become NEG_INF, whose exp() underflows to 0 beside any allowed key; a row
    # with none comes out uniform and is zeroed by the (cheap, mask-sized) any().
    weights = jax.nn.softmax(jnp.where(mask, logits, NEG_INF), axis=-1)
    return weights * jnp.any(mask, axis=-1, keepdims=True)


def dropout(weights: Array, rate: float, rng: Array | None) -> Array:
    """Inverted dropout on attention weights: each kept with probability ``1 - rate``, scaled
    by ``1 / (1 - rate)``."""
    if rate == 0.0:
        return weights
    keep = jax.random.bernoulli(rng, 1.0 - rate, weights.shape)
    return jnp.where(keep, weights / (1.0 - rate), 0.0).astype(weights.dtype)
