"""Guided alignment: a loss that teaches one cross-attention a statistical aligner's links
(Chen et al. 2016; Garg et al. 2019, the first heads of one decoder layer, averaged):

    L_align = - sum_{b, t} sum_s p[b, t, s] log a[b, t, s] / |{(b, t): sum_s p[b, t, s] > 0}|,

with ``a [B, T, S]`` the chosen attention map (``config.loss.alignment_layer``, counted over the
model's maps: its decoder layers, then its aligner if it has one, ``models.aligner``; heads
``0 .. alignment_heads - 1``) and ``p [B, T, S]`` the batch's ``alignment`` targets (per target
piece, uniform over the source pieces linked to its word). Row t + k of the attention learns
``target_out[t]``'s links, k = ``config.loss.alignment_shift``: k = 0 is the attention computed
while predicting the word, as the AER reads it; k = 1 the one where the word is the decoder's
input, whose query has read it (the rows of Shift-Att and Shift-AET, Chen et al. 2020). Weights
are clamped at `MIN_WEIGHT` before the log (a link outside a local window: finite loss, no
gradient).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

MIN_WEIGHT = 1e-9


def supervised_attention(weights_MBHTS: Sequence[jax.Array], layer: int, heads: int) -> jax.Array:
    """``[B, T, S]`` float32: map `layer`'s first `heads` heads, averaged."""
    return weights_MBHTS[layer][:, :heads].astype(jnp.float32).mean(axis=1)


def shifted(targets_BTS: jax.Array, shift: int) -> jax.Array:
    """The targets moved ``shift`` rows later: row t + shift holds row t's links (the last
    ``shift`` rows' links fall off the end)."""
    padded = jnp.pad(targets_BTS, ((0, 0), (shift, 0), (0, 0)))
    return padded[:, : targets_BTS.shape[1]]


def alignment_loss(attention_BTS: jax.Array, targets_BTS: jax.Array) -> jax.Array:
    """The scalar cross-entropy ``L_align`` of the module doc (0 when nothing is linked)."""
    log_a = jnp.log(jnp.maximum(attention_BTS.astype(jnp.float32), MIN_WEIGHT))
    supervised = jnp.sum(targets_BTS.sum(-1) > 0)
    return -jnp.sum(targets_BTS * log_a) / jnp.maximum(supervised, 1)
