"""Softmax over keys with masking, and attention dropout, shared by the kernels.

Statistics are kept in float32 whatever the input dtype, and a query row whose keys are
all masked gets weights of exactly zero (so its output is zero and its gradients are
finite), not the uniform average that ``jax.nn.softmax(where=...)`` and flax give.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jnp.ndarray

# Large finite stand-in for -inf: exp() of it underflows to 0 and gradients stay finite.
NEG_INF = float(jnp.finfo(jnp.float32).min)


def masked_softmax(logits: Array, mask: Array | None) -> Array:
    """softmax over the last axis restricted to ``mask``; fully masked rows give zeros.

    Args:
      logits: ``[..., kv_len]`` scores, any float dtype; computed on in float32.
      mask: bool broadcastable to ``logits`` (True = may attend), or None.

    Returns:
      float32 weights of ``logits.shape``: ``exp(l_j) / sum_{m allowed} exp(l_m)`` on
      allowed keys, 0 elsewhere, and all zeros in rows with no allowed key.
    """
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
