"""Source saliency: which source words each target token's probability rests on, read from
gradients instead of attention, so that every translator has it, the fixed-vector RNN included
(saliency as word alignment: Ding, Xu & Koehn 2019, "Saliency-driven Word Alignment
Interpretation for Neural Machine Translation").

The attribution is integrated gradients (Sundararajan, Taly & Yan 2017) of the teacher-forced
token's log-probability, from the baseline of all-zero source embeddings, with ``m`` midpoint
steps: for source piece s with embedding e_s, scaled together with the others by α,

    IG_ts = e_s · (1/m) Σ_k ∂ log p(y_t | y_<t, α_k e) / ∂(α_k e_s),   α_k = (k - 1/2) / m,

and its positive part (the evidence for y_t) made a distribution over the valid source like an
attention row:  a_ts = max(IG_ts, 0) / Σ_s' max(IG_ts', 0).

A translator multiplies each source embedding by a gate g_s (`gate`, a Flax perturbation:
``g_s = 1 + δ_s``, the identity unless ``perturbations`` are passed to ``apply``). At
``g = α`` the gradient ``∂ log p / ∂g_s`` is the summand above, so each step is one backward
pass per target row.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_research.models import maps

Array = jnp.ndarray
NAME = "saliency"  # the map's name
GATE = "source_gate"  # the perturbation the translators add at the root of their scope
STEPS = 8  # m, the integration steps


def gate(module: nn.Module, x_BSE: Array) -> Array:
    """``x`` times the perturbation ``1 + δ`` ``[B, S, 1]`` (``δ = 0`` when not passed)."""
    ones_BS1 = jnp.ones((*x_BSE.shape[:-1], 1), x_BSE.dtype)
    return x_BSE * module.perturb(GATE, ones_BS1)


def saliency_map(
    model: nn.Module,
    params: Any,
    source_BS: Array,
    target_in_BT: Array,
    target_out_BT: Array,
    steps: int = STEPS,
) -> maps.AttentionMap:
    """The saliency of the module doc as a map ``[B, 1, T, S]``: row t for the token
    ``target_out[t]`` that row t writes; padded source positions 0, and a row without positive
    attribution all 0."""
    batch, source_len = source_BS.shape
    target_len = target_in_BT.shape[1]

    def log_probabilities_BT(delta_BS1: Array) -> Array:
        logits_BTV = model.apply(
            {"params": params, "perturbations": {GATE: delta_BS1}}, source_BS, target_in_BT
        )
        log_p_BTV = jax.nn.log_softmax(logits_BTV.astype(jnp.float32))
        return jnp.take_along_axis(log_p_BTV, target_out_BT[..., None], -1)[..., 0]

    def gradients_TBS(alpha: Array) -> Array:
        """``∂ log p(y_t) / ∂g_s`` at ``g = α``, row by row."""
        _, pullback = jax.vjp(log_probabilities_BT, jnp.full((batch, source_len, 1), alpha - 1))
        # One row after another: jax.vmap over the rows, jitted with what follows, gave rows
        # 16.. as copies of rows 0.. on XLA:CPU (jax 0.10.2; 64 spa-eng pairs, 48 rows, one
        # step), which the tests' tiny models do not show.
        rows_TT = jnp.eye(target_len, dtype=jnp.float32)  # the cotangent of row t: one-hot at t
        return jax.lax.map(
            lambda row_T: pullback(jnp.broadcast_to(row_T, (batch, target_len)))[0][..., 0],
            rows_TT,
        )

    alphas = (jnp.arange(steps, dtype=jnp.float32) + 0.5) / steps
    ig_TBS = jax.lax.map(gradients_TBS, alphas).mean(0)
    evidence_BTS = jnp.maximum(jnp.moveaxis(ig_TBS, 0, 1), 0) * (source_BS != 0)[:, None, :]
    total_BT1 = evidence_BTS.sum(-1, keepdims=True)
    weights_BTS = jnp.where(total_BT1 > 0, evidence_BTS / jnp.where(total_BT1 > 0, total_BT1, 1), 0)
    return maps.AttentionMap(
        NAME,
        weights_BTS[:, None],
        maps.Tokens.text("target", target_len),
        maps.Tokens.text("source", source_len),
    )
