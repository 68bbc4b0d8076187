"""Additive attention (Bahdanau, Cho & Bengio 2014, "Neural machine translation by jointly
learning to align and translate"):

    e_ij = w^T tanh(W_q s_i + W_k h_j),   a_ij = softmax_j(e_ij),   c_i = sum_j a_ij h_j

and its weight-normalized form (Salimans & Kingma 2016, as TF-Addons' ``normalize=True``):
``w <- g * w / ||w||`` with a bias ``b`` inside the tanh.

``additive_attention`` takes the already projected ``W_q s`` and ``W_k h`` (in a multi-head
layer these are its query and key projections) and never materializes the whole
``[Tq, Tk, units]`` tanh tensor: it maps over query chunks, each rematerialized in the
backward pass, so peak memory is one ``[query_chunk, Tk, units]`` block.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_research.attention import checks, kernels
from attn_research.attention import masks as masks_lib
from attn_research.attention import softmax as softmax_lib

Array = jnp.ndarray


def additive_scores(q: Array, k: Array, score_vector: Array) -> Array:
    """``e_ij = w_h^T tanh(q_i + k_j)`` for every head.

    Args:
      q: ``[batch..., Tq, H, U]``; k: ``[batch..., Tk, Hkv, U]``; score_vector: ``[H, U]``.

    Returns:
      float32 logits ``[batch..., Hkv, G, Tq, Tk]`` with ``G = H // Hkv``.
    """
    kv_heads = k.shape[-2]
    q_QhgU = kernels.grouped_query(q, kv_heads).astype(jnp.float32)
    k_KhU = k.astype(jnp.float32)
    features = jnp.tanh(q_QhgU[..., :, None, :, :, :] + k_KhU[..., None, :, :, None, :])
    w_hgU = score_vector.reshape(kv_heads, -1, score_vector.shape[-1]).astype(jnp.float32)
    return jnp.einsum("...qkhgu,hgu->...hgqk", features, w_hgU)


def additive_attention(
    q: Array,
    k: Array,
    v: Array,
    score_vector: Array,
    *,
    mask: Array | None = None,
    causal: bool = False,
    dropout_rate: float = 0.0,
    rng: Array | None = None,
    query_chunk_size: int = 64,
    return_weights: bool = False,
) -> Array | tuple[Array, Array]:
    """Bahdanau attention of projected queries over projected keys.

    Args:
      q: ``[batch..., Tq, H, U]``, ``W_q s``.
      k: ``[batch..., Tk, Hkv, U]``, ``W_k h`` (plus the normalized form's bias).
      v: ``[batch..., Tk, Hkv, Dv]``, the values averaged (``h`` in the paper).
      score_vector: ``[H, U]``, ``w``.
      mask: bool, True = may attend, broadcastable to ``[batch..., H, Tq, Tk]`` (rank
        ``len(batch) + 3``, or ``[Tq, Tk]``).
      causal: query ``i`` sees keys ``j <= i``.
      dropout_rate, rng: attention dropout.
      query_chunk_size: queries per chunk; bounds peak memory, never changes the result.
      return_weights: also return ``[batch..., H, Tq, Tk]`` float32 weights.

    Returns:
      ``[batch..., Tq, H, Dv]`` in ``v.dtype``; rows with no allowed key are zero.
    """
    mask, _, _ = checks.check_attention_args(q, k, v, mask, None, dropout_rate, rng, 1.0)
    heads, units = q.shape[-2:]
    if score_vector.shape != (heads, units):
        raise ValueError(
            f"score_vector must be [heads, units] = {(heads, units)}, got {score_vector.shape}"
        )
    checks.check_positive_int("query_chunk_size", query_chunk_size)
    tq, tk, kv_heads = q.shape[-3], k.shape[-3], k.shape[-2]
    qc = min(query_chunk_size, tq)
    nq = math.ceil(tq / qc)
    mask = kernels.group_heads(mask, kv_heads)

    @jax.checkpoint
    def one_chunk(xs):
        q_c, q_index, mask_qc = xs
        logits = additive_scores(q_c, k, score_vector)
        allowed = kernels.pick(mask_qc, mask)
        if causal:
            offset = q_index * qc
            allowed = masks_lib.combine(
                allowed, jnp.arange(tk)[None, :] <= offset + jnp.arange(qc)[:, None]
            )
        weights = softmax_lib.masked_softmax(logits, allowed)
        dropped = softmax_lib.dropout(
            weights, dropout_rate, None if rng is None else jax.random.fold_in(rng, q_index)
        )
        out = jnp.einsum(
            "...hgqk,...khd->...qhgd",
            dropped.astype(v.dtype),
            v,
            preferred_element_type=jnp.float32,
        )
        return kernels.ungroup(out).astype(v.dtype), (weights if return_weights else None)

    xs = (
        kernels.split_chunks(q, -3, qc, nq),
        jnp.arange(nq),
        kernels.split_chunks(mask, -2, qc, nq, fill=False),
    )
    out, weights = jax.lax.map(one_chunk, xs)  # [nq, ..., qc, H, Dv], [nq, ..., Hkv, G, qc, Tk]
    out = jnp.moveaxis(out, 0, -4)
    out = out.reshape(*out.shape[:-4], nq * qc, *out.shape[-2:])[..., :tq, :, :]
    if not return_weights:
        return out
    weights = jnp.moveaxis(weights, 0, -3)
    weights = weights.reshape(*weights.shape[:-5], heads, nq * qc, tk)[..., :tq, :]
    return out, weights


class AdditiveAttention(nn.Module):
    """Additive attention with its own score parameters ``w`` (and ``g``, ``b`` if normalized).

    Called as ``AdditiveAttention()(q, k, v, mask=..., ...)`` on projected ``q [..., Tq, H, U]``,
    ``k [..., Tk, Hkv, U]`` and values ``v``: the projections ``W_q``, ``W_k`` belong to the
    caller (``MultiHeadAttention``'s query/key projections, or an RNN decoder's own).
    """

    normalize: bool = False
    query_chunk_size: int = 64

    @nn.compact
    def __call__(
        self,
        q: Array,
        k: Array,
        v: Array,
        *,
        mask: Array | None = None,
        causal: bool = False,
        dropout_rate: float = 0.0,
        rng: Array | None = None,
        return_weights: bool = False,
    ) -> Array | tuple[Array, Array]:
        heads, units = q.shape[-2:]
        w = self.param("score_vector", nn.initializers.normal(units**-0.5), (heads, units))
        if self.normalize:
            g = self.param(
                "score_scale", nn.initializers.constant(math.sqrt(1.0 / units)), (heads,)
            )
            b = self.param("score_bias", nn.initializers.zeros, (units,))
            w = g[:, None] * w * jax.lax.rsqrt(jnp.sum(w * w, axis=-1, keepdims=True))
            k = k + b.astype(k.dtype)
        return additive_attention(
            q,
            k,
            v,
            w,
            mask=mask,
            causal=causal,
            dropout_rate=dropout_rate,
            rng=rng,
            query_chunk_size=self.query_chunk_size,
            return_weights=return_weights,
        )
