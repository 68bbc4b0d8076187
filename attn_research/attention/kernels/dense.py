"""The dense and chunked kernels, and the dot-product arithmetic the kernels share.

They evaluate ``softmax(pair(q, k) + bias, where=mask) v`` for ``q [batch..., Tq, H, D]``,
``k [batch..., Tk, Hkv, D]``, ``v [batch..., Tk, Hkv, Dv]`` (query head ``h`` reads key/value
head ``h // (H // Hkv)``), masks and biases at the logits' rank ``[batch..., H|1, Tq|1, Tk|1]``.
Logits and softmax are float32; rows with no allowed key give zeros.

    dense:    the whole ``[Tq, Tk]`` logits, or ``query_chunk_size`` rematerialized rows at a time
    chunked:  an online softmax over key chunks inside a scan over query chunks (Rabe & Staats
              2021, "Self-attention does not need O(n^2) memory")
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Callable

import jax
import jax.numpy as jnp

from attn_research.attention import checks, kernels
from attn_research.attention import masks as masks_lib
from attn_research.attention.kernels import softmax as softmax_lib

if TYPE_CHECKING:
    from attn_research.attention.kernels import Problem

Array = jnp.ndarray


def group_heads(x: Array | None, kv_heads: int) -> Array | None:
    """``[..., H|1, Tq, Tk]`` -> ``[..., Hkv|1, G|1, Tq, Tk]`` to match grouped logits."""
    if x is None:
        return None
    heads = x.shape[-3]
    if heads == 1:
        return x[..., None, :, :]
    return x.reshape(*x.shape[:-3], kv_heads, heads // kv_heads, *x.shape[-2:])


def grouped_query(q: Array, kv_heads: int) -> Array:
    """``[..., Tq, H, D]`` -> ``[..., Tq, Hkv, G, D]``."""
    return q.reshape(*q.shape[:-2], kv_heads, q.shape[-2] // kv_heads, q.shape[-1])


def ungroup(out_QhgD: Array) -> Array:
    """``[..., Tq, Hkv, G, Dv]`` -> ``[..., Tq, H, Dv]``."""
    return out_QhgD.reshape(*out_QhgD.shape[:-3], -1, out_QhgD.shape[-1])


def dot_logits(q: Array, k: Array, scale: float, precision: jax.lax.PrecisionLike = None) -> Array:
    """float32 logits ``[..., H, Tq, Tk]`` of ``q k^T * scale``: one 4-D einsum without grouping.
    Float32 queries are scaled before the product, half-precision ones after it in float32."""
    full_precision = jnp.finfo(q.dtype).bits >= 32
    if full_precision:
        q = q * jnp.asarray(scale, q.dtype)
    kv_heads = k.shape[-2]
    if q.shape[-2] == kv_heads:
        logits = jnp.einsum(
            "...qhd,...khd->...hqk", q, k, preferred_element_type=jnp.float32, precision=precision
        )
    else:
        logits = jnp.einsum(
            "...qhgd,...khd->...hgqk",
            grouped_query(q, kv_heads),
            k,
            preferred_element_type=jnp.float32,
            precision=precision,
        )
        logits = logits.reshape(*logits.shape[:-4], -1, *logits.shape[-2:])
    return logits if full_precision else logits * jnp.float32(scale)


def weighted_values(weights: Array, v: Array, precision: jax.lax.PrecisionLike = None) -> Array:
    """``sum_k weights[..., h, q, k] v[..., k, h // G, :]`` -> ``[..., Tq, H, Dv]`` in ``v.dtype``."""
    kv_heads = v.shape[-2]
    weights = weights.astype(v.dtype)
    if weights.shape[-3] == kv_heads:
        out = jnp.einsum(
            "...hqk,...khd->...qhd",
            weights,
            v,
            preferred_element_type=jnp.float32,
            precision=precision,
        )
    else:
        weights = weights.reshape(*weights.shape[:-3], kv_heads, -1, *weights.shape[-2:])
        out = ungroup(
            jnp.einsum(
                "...hgqk,...khd->...qhgd",
                weights,
                v,
                preferred_element_type=jnp.float32,
                precision=precision,
            )
        )
    return out.astype(v.dtype)


@dataclasses.dataclass(frozen=True)
class ScaledDot:
    """The pair function of dot-product scores, ``scale * q . k``; kernels that compute dot
    products only ask a pair function for its ``dot_scale`` (absent for other scores)."""

    scale: float

    @property
    def dot_scale(self) -> float:
        return self.scale

    def __call__(self, q: Array, k: Array, precision: jax.lax.PrecisionLike = None) -> Array:
        return dot_logits(q, k, self.scale, precision)


def attention_weights(
    q: Array,
    k: Array,
    pair: Callable[..., Array],
    *,
    mask: Array | None,
    bias: Array | None,
    precision: jax.lax.PrecisionLike = None,
    weight: Array | None = None,
) -> Array:
    """float32 ``softmax(pair(q, k) + bias, where=mask) * weight``, ``[batch..., H, Tq, Tk]``."""
    logits_HQK = pair(q, k, precision=precision)
    if bias is not None:
        logits_HQK = logits_HQK + bias.astype(jnp.float32)
    weights_HQK = softmax_lib.masked_softmax(logits_HQK, mask)
    return weights_HQK if weight is None else weights_HQK * weight


def einsum_attention(
    q: Array,
    k: Array,
    v: Array,
    pair: Callable[..., Array],
    *,
    mask: Array | None,
    bias: Array | None,
    dropout_rate: float = 0.0,
    rng: Array | None = None,
    precision: jax.lax.PrecisionLike = None,
    weight: Array | None = None,
) -> Array:
    """Dense attention with XLA einsums, ``attention_weights`` (then dropout) times ``v``:
    ``[batch..., Tq, H, Dv]`` in ``v.dtype``."""
    weights_HQK = attention_weights(
        q, k, pair, mask=mask, bias=bias, precision=precision, weight=weight
    )
    dropped_HQK = softmax_lib.dropout(weights_HQK, dropout_rate, rng)
    return weighted_values(dropped_HQK, v, precision)


def split_chunks(x: Array | None, axis: int, size: int, count: int, fill=0) -> Array | None:
    """Pads ``axis`` to ``size * count`` and moves its chunks to a new leading axis; None when
    ``x`` is None or broadcasts along ``axis`` (``pick`` then uses it whole)."""
    if x is None or (x.shape[axis] == 1 and size * count > 1):
        return None
    axis = axis % x.ndim
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size * count - x.shape[axis])
    x = jnp.pad(x, pad, constant_values=fill)
    x = x.reshape(*x.shape[:axis], count, size, *x.shape[axis + 1 :])
    return jnp.moveaxis(x, axis, 0)


def pick(chunk: Array | None, whole: Array | None) -> Array | None:
    """The current chunk of a split array, else the whole (broadcasting or absent) one."""
    return whole if chunk is None else chunk


def chunked_attention(
    q: Array,
    k: Array,
    v: Array,
    pair: Callable[..., Array],
    *,
    mask: Array | None,
    bias: Array | None,
    allowed: Callable[[Array, Array], Array | None],
    dropout_rate: float = 0.0,
    rng: Array | None = None,
    key_chunk_size: int = 512,
    query_chunk_size: int = 1024,
    precision: jax.lax.PrecisionLike = None,
) -> Array:
    """Online softmax over key chunks (Rabe & Staats 2021): per query chunk, a scan keeps the
    row maximum ``m``, ``l = sum_j exp(s_j - m)`` and ``acc = sum_j exp(s_j - m) v_j``, rescaled by
    ``exp(m_old - m_new)``; out = ``acc / l``. ``allowed`` is computed per chunk from positions.
    Returns ``[batch..., Tq, H, Dv]`` in ``v.dtype``; dropout masks are drawn per chunk.
    """
    tq, tk = q.shape[-3], k.shape[-3]
    kv_heads = k.shape[-2]
    qc, kc = min(query_chunk_size, tq), min(key_chunk_size, tk)
    nq, nk = math.ceil(tq / qc), math.ceil(tk / kc)
    mask = group_heads(mask, kv_heads)
    bias = group_heads(bias, kv_heads)
    k_chunks, v_chunks = split_chunks(k, -3, kc, nk), split_chunks(v, -3, kc, nk)
    out_shape = (*q.shape[:-3], kv_heads, q.shape[-2] // kv_heads, qc)

    def one_query_chunk(xs):
        q_blk, q_index, mask_qc, bias_qc = xs
        mask_q, bias_q = pick(mask_qc, mask), pick(bias_qc, bias)
        q_pos = q_index * qc + jnp.arange(qc)

        @jax.checkpoint
        def step(carry, xs):
            m, l, acc = carry
            k_c, v_c, mask_kc, bias_kc, k_index = xs
            s = group_heads(pair(q_blk, k_c, precision=precision), kv_heads)
            bias_c = pick(bias_kc, bias_q)
            if bias_c is not None:
                s = s + bias_c.astype(jnp.float32)
            k_pos = k_index * kc + jnp.arange(kc)
            ok = masks_lib.combine(
                k_pos < tk, allowed(q_pos[:, None], k_pos), pick(mask_kc, mask_q)
            )
            s = jnp.where(ok, s, softmax_lib.NEG_INF)
            m_new = jax.lax.stop_gradient(jnp.maximum(m, jnp.max(s, axis=-1)))
            p = jnp.where(ok, jnp.exp(s - m_new[..., None]), 0.0)
            correction = jnp.exp(m - m_new)
            l = l * correction + jnp.sum(p, axis=-1)
            if dropout_rate > 0.0:
                chunk_rng = jax.random.fold_in(jax.random.fold_in(rng, q_index), k_index)
                p = softmax_lib.dropout(p, dropout_rate, chunk_rng)
            acc = acc * correction[..., None] + jnp.einsum(
                "...hgqk,...khd->...hgqd",
                p.astype(v.dtype),
                v_c,
                preferred_element_type=jnp.float32,
                precision=precision,
            )
            return (m_new, l, acc), None

        init = (
            jnp.full(out_shape, softmax_lib.NEG_INF, jnp.float32),
            jnp.zeros(out_shape, jnp.float32),
            jnp.zeros((*out_shape, v.shape[-1]), jnp.float32),
        )
        key_xs = (
            k_chunks,
            v_chunks,
            split_chunks(mask_q, -1, kc, nk, fill=False),
            split_chunks(bias_q, -1, kc, nk),
            jnp.arange(nk),
        )
        (_, l, acc), _ = jax.lax.scan(step, init, key_xs)
        out_hgQD = acc / jnp.where(l == 0.0, 1.0, l)[..., None]
        return jnp.moveaxis(out_hgQD, -2, -4)  # [..., qc, Hkv, G, Dv]

    query_xs = (
        split_chunks(q, -3, qc, nq),
        jnp.arange(nq),
        split_chunks(mask, -2, qc, nq, fill=False),
        split_chunks(bias, -2, qc, nq),
    )
    per_chunk = jax.lax.map(one_query_chunk, query_xs)  # [nq, ..., qc, Hkv, G, Dv]
    out = jnp.moveaxis(per_chunk, 0, -5)
    out = out.reshape(*out.shape[:-5], nq * qc, *out.shape[-3:])[..., :tq, :, :, :]
    return ungroup(out).astype(v.dtype)


def dense(
    q: Array, k: Array, v: Array, problem: Problem, *, query_chunk_size: int | None = None
) -> Array:
    """All logits at once, or ``query_chunk_size`` query rows at a time (a ``lax.map``)."""
    tq, tk = q.shape[-3], k.shape[-3]
    k_pos = jnp.arange(tk)

    def rows(q_c, q_pos, mask, bias, centre, rng):
        return einsum_attention(
            q_c,
            k,
            v,
            problem.pair,
            mask=masks_lib.combine(mask, problem.allowed(q_pos, k_pos, centre)),
            bias=bias,
            dropout_rate=problem.dropout_rate,
            rng=rng,
            precision=problem.precision,
            weight=problem.rule.weight(k_pos, centre),
        )

    q_pos = problem.query_grid(tq)
    whole = (q_pos, problem.mask, problem.bias, problem.centre)
    if query_chunk_size is None or query_chunk_size >= tq:
        return rows(q, *whole, problem.rng)
    qc = checks.check_positive_int("query_chunk_size", query_chunk_size)
    nq = math.ceil(tq / qc)

    @jax.checkpoint
    def one_chunk(xs):
        q_c, index, *parts = xs
        parts = [pick(part, full) for part, full in zip(parts, whole)]
        rng = None if problem.rng is None else jax.random.fold_in(problem.rng, index)
        return rows(q_c, *parts, rng)

    split = [split_chunks(x, -2, qc, nq) for x in whole]
    xs = (split_chunks(q, -3, qc, nq), jnp.arange(nq), *split)
    out = jax.lax.map(one_chunk, xs)  # [nq, ..., qc, H, Dv]
    out = jnp.moveaxis(out, 0, -4)
    return out.reshape(*out.shape[:-4], nq * qc, *out.shape[-2:])[..., :tq, :, :]


def dense_weights(q: Array, k: Array, problem: Problem) -> Array:
    """The float32 weights ``[batch..., H, Tq, Tk]`` that the dense kernel forms (no dropout)."""
    k_pos = jnp.arange(k.shape[-3])
    return attention_weights(
        q,
        k,
        problem.pair,
        mask=masks_lib.combine(
            problem.mask, problem.allowed(problem.query_grid(q.shape[-3]), k_pos, problem.centre)
        ),
        bias=problem.bias,
        precision=problem.precision,
        weight=problem.rule.weight(k_pos, problem.centre),
    )


def chunked(
    q: Array,
    k: Array,
    v: Array,
    problem: Problem,
    *,
    key_chunk_size: int = 512,
    query_chunk_size: int = 1024,
) -> Array:
    """Online softmax over ``key_chunk_size`` keys in ``query_chunk_size`` query chunks."""
    kernels.refuse("chunked", problem, query_positions=True)
    for name, size in (("key_chunk_size", key_chunk_size), ("query_chunk_size", query_chunk_size)):
        checks.check_positive_int(name, size)
    return chunked_attention(
        q,
        k,
        v,
        problem.pair,
        mask=problem.mask,
        bias=problem.bias,
        allowed=lambda q_pos, k_pos: problem.allowed(q_pos, k_pos, None),
        dropout_rate=problem.dropout_rate,
        rng=problem.rng,
        key_chunk_size=key_chunk_size,
        query_chunk_size=query_chunk_size,
        precision=problem.precision,
    )
