"""The flash_band kernel: dot-product attention over a 1-D band with a hand-written backward.

    out_i = sum_j softmax_j(scale * q_i . k_j, where=allowed_ij) v_j,
    allowed_ij = (i - left <= j <= i + right) AND the caller's padding mask,

one block of ``b`` queries at a time over its slab of ``b + left + right`` keys. The forward
keeps the output and ``L_i = log sum_j exp(s_ij)``; the backward (FlashAttention-2, Dao 2023)
is a ``lax.scan`` of

    P = exp(S - L),   dV = P^T dO,   dP = dO V^T,   dS = P * (dP - rowsum(dO * O)),
    dQ = scale * dS K,   dK = scale * dS^T Q.

Operands are laid out so that every matmul contracts the left operand's major axis (for XLA's
CPU dot: docs/attention.md). ``q [batch..., Tq, H, D]``, ``k [..., Tk, Hkv, D]``,
``v [..., Tk, Hkv, Dv]``; padding masks as the band kernel takes them; rows with no allowed
key give zeros.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from attn_research.attention.kernels import band as band_lib
from attn_research.attention.kernels import softmax as softmax_lib

if TYPE_CHECKING:
    from attn_research.attention.kernels import Problem

Array = jnp.ndarray


def _slab(x: Array, start: Array, size: int, axis: int) -> Array:
    return jax.lax.dynamic_slice_in_dim(x, start, size, axis=axis)


def _allowed(
    block: Array, b: int, left: int, right: int, tk: int, keys_ok: Array, rows_ok: Array
) -> Array:
    """``[B, H|1, b, S]``: the window, the keys on the sequence, and the caller's padding."""
    slab = b + left + right
    k_pos = block * b - left + jnp.arange(slab)  # original key positions of the slab
    rel = k_pos[None, :] - (block * b + jnp.arange(b))[:, None]
    window = (rel >= -left) & (rel <= right) & (k_pos >= 0)[None, :] & (k_pos < tk)[None, :]
    keys = _slab(keys_ok, block * b, slab, 2)[..., None, :]  # [B, H|1, 1, S]
    rows = _slab(rows_ok, block * b, b, 2)[..., :, None]  # [B, H|1, b, 1]
    return window & keys & rows


def _logits(kt: Array, qt: Array, scale: float, precision) -> Array:
    """``scale * [B, H, D, S] x [B, H, D, b] -> [B, H, b, S]``, float32 (scaled after the
    product, so that half-precision queries are not rounded once more)."""
    products = jnp.einsum(
        "xhdk,xhdq->xhqk", kt, qt, preferred_element_type=jnp.float32, precision=precision
    )
    return products * jnp.float32(scale)


def _matmul(a: Array, b_: Array, precision) -> Array:
    """``[B, H, K, M] x [B, H, N, K] -> [B, H, M, N]`` float32."""
    return jnp.einsum(
        "xhkm,xhnk->xhmn", a, b_, preferred_element_type=jnp.float32, precision=precision
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8, 9, 10))
def _band(qt, kt, k, v, masks, b, left, right, tk, scale, precision):
    return _forward(qt, kt, k, v, masks, b, left, right, tk, scale, precision)[0]


def _forward(qt, kt, k, v, masks, b, left, right, tk, scale, precision):
    """Outputs ``[n, B, H, Dv, b]`` and log-sum-exps ``[n, B, H, b]``, one block per step."""
    slab = b + left + right
    keys_ok, rows_ok = masks

    def block(i):
        logits = _logits(_slab(kt, i * b, slab, 3), _slab(qt, i * b, b, 3), scale, precision)
        ok = _allowed(i, b, left, right, tk, keys_ok, rows_ok)
        logits = jnp.where(ok, logits, softmax_lib.NEG_INF)
        top = jnp.max(logits, axis=-1, keepdims=True)
        p = jnp.where(ok, jnp.exp(logits - top), 0.0)
        total = jnp.sum(p, axis=-1, keepdims=True)
        some = total > 0.0
        out_t = _matmul(_slab(v, i * b, slab, 2), p.astype(v.dtype), precision)  # [B, H, Dv, b]
        out_t = out_t / jnp.swapaxes(jnp.where(some, total, 1.0), -1, -2)
        lse = jnp.where(some, top + jnp.log(jnp.where(some, total, 1.0)), 0.0)[..., 0]
        return out_t.astype(v.dtype), lse

    return jax.lax.map(block, jnp.arange(qt.shape[-1] // b))


def _band_fwd(qt, kt, k, v, masks, b, left, right, tk, scale, precision):
    out_t, lse = _forward(qt, kt, k, v, masks, b, left, right, tk, scale, precision)
    return out_t, (qt, kt, k, v, masks, out_t, lse)


def _band_bwd(b, left, right, tk, scale, precision, residuals, d_out_t):
    qt, kt, k, v, masks, out_t, lse = residuals
    slab = b + left + right
    keys_ok, rows_ok = masks
    delta = jnp.sum(d_out_t.astype(jnp.float32) * out_t.astype(jnp.float32), axis=-2)

    def step(pending, xs):
        """``pending``: the ``left + right`` slab rows after this block that earlier blocks
        already gave gradients to. Block ``i``'s first ``b`` rows get none after it."""
        i, d_out_i, lse_i, delta_i = xs
        qt_i, kt_s = _slab(qt, i * b, b, 3), _slab(kt, i * b, slab, 3)
        k_s, v_s = _slab(k, i * b, slab, 2), _slab(v, i * b, slab, 2)
        ok = _allowed(i, b, left, right, tk, keys_ok, rows_ok)
        p = jnp.where(ok, jnp.exp(_logits(kt_s, qt_i, scale, precision) - lse_i[..., None]), 0.0)
        dv_s = _matmul(p.astype(d_out_i.dtype), d_out_i, precision)  # [B, H, S, Dv]
        dp = _matmul(d_out_i, v_s, precision)  # [B, H, b, S]
        ds = (scale * p * (dp - delta_i[..., None])).astype(qt.dtype)
        dq_t = _matmul(k_s, ds, precision)  # [B, H, D, b]
        dk_s = _matmul(ds, qt_i, precision)  # [B, H, S, D]
        dk_s, dv_s = (g.at[..., : slab - b, :].add(p_) for g, p_ in zip((dk_s, dv_s), pending))
        done = (dk_s[..., :b, :], dv_s[..., :b, :])
        return (dk_s[..., b:, :], dv_s[..., b:, :]), (dq_t, *done)

    n = qt.shape[-1] // b
    pending = (
        jnp.zeros((*k.shape[:2], slab - b, k.shape[-1]), jnp.float32),
        jnp.zeros((*v.shape[:2], slab - b, v.shape[-1]), jnp.float32),
    )
    (dk_rest, dv_rest), (dq_t, dk, dv) = jax.lax.scan(
        step, pending, (jnp.arange(n), d_out_t, lse, delta)
    )

    def whole(blocks: Array, rest: Array) -> Array:  # [n, B, H, b, D] + rest -> [B, H, n_k, D]
        blocks = jnp.moveaxis(blocks, 0, 2)
        return jnp.concatenate([blocks.reshape(*blocks.shape[:2], n * b, -1), rest], axis=2)

    dk, dv = whole(dk, dk_rest), whole(dv, dv_rest)
    dq_t = jnp.moveaxis(dq_t, 0, -2).reshape(qt.shape)
    # kt and k are one input in two layouts: its cotangent flows through k alone.
    return dq_t.astype(qt.dtype), None, dk.astype(k.dtype), dv.astype(v.dtype), (None, None)


_band.defvjp(_band_fwd, _band_bwd)


def _padding(
    mask: Array | None, batch: tuple[int, ...], tq: int, tk: int, n_q: int, n_k: int, front: int
) -> tuple[Array, Array]:
    """Key and query validity ``[B, H|1, n_k]`` and ``[B, H|1, n_q]`` in the padded layouts."""
    flat = math.prod(batch)
    keys = jnp.ones((1, 1, tk), bool)
    rows = jnp.ones((1, 1, tq), bool)
    if mask is not None and mask.shape[-1] > 1:
        keys = jnp.broadcast_to(mask[..., 0, :], (*batch, mask.shape[-3], tk))
        keys = keys.reshape(flat, mask.shape[-3], tk)
    elif mask is not None and mask.shape[-2] > 1:
        rows = jnp.broadcast_to(mask[..., 0], (*batch, mask.shape[-3], tq))
        rows = rows.reshape(flat, mask.shape[-3], tq)
    elif mask is not None:  # [..., H|1, 1, 1]: every pair of a head at once
        rows = jnp.broadcast_to(mask[..., 0], (*batch, mask.shape[-3], 1))
        rows = jnp.broadcast_to(rows.reshape(flat, mask.shape[-3], 1), (flat, mask.shape[-3], tq))
    keys = jnp.pad(keys, ((0, 0), (0, 0), (front, n_k - front - tk)))
    rows = jnp.pad(rows, ((0, 0), (0, 0), (0, n_q - tq)))
    return keys, rows


def flash_band_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    window: tuple[int, int],
    block: int,
    scale: float,
    mask: Array | None,
    precision: jax.lax.PrecisionLike,
) -> Array:
    """Windowed dot-product attention ``[batch..., Tq, H, D]`` -> ``[batch..., Tq, H, Dv]``;
    ``window = (left, right)``, ``block`` queries per step, ``mask`` a padding mask or None."""
    batch, (tq, heads, _), tk = q.shape[:-3], q.shape[-3:], k.shape[-3]
    k, v = (jnp.repeat(x, heads // x.shape[-2], axis=-2) for x in (k, v))
    left, right = min(window[0], tk), min(window[1], tk)
    b = min(block, tq)
    n = math.ceil(tq / b)
    n_k = n * b + left + right  # every block's slab lies inside the padded keys

    def heads_first(x: Array, length: int, front: int) -> Array:  # -> [B, H, T, D]
        x = jnp.swapaxes(x.reshape(math.prod(batch), *x.shape[-3:]), 1, 2)
        return jnp.pad(x, ((0, 0), (0, 0), (front, length - front - x.shape[2]), (0, 0)))

    qt = jnp.swapaxes(heads_first(q, n * b, 0), -1, -2)
    k_pad = heads_first(k, n_k, left)
    masks = _padding(mask, batch, tq, tk, n * b, n_k, left)
    out_t = _band(
        qt, jnp.swapaxes(k_pad, -1, -2), k_pad, heads_first(v, n_k, left), masks,
        b, left, right, tk, scale, precision,
    )  # fmt: skip
    out = jnp.moveaxis(out_t, 0, -2)  # [B, H, Dv, n, b]
    out = out.reshape(*out.shape[:-2], n * b)[..., :tq]  # [B, H, Dv, Tq]
    out = jnp.transpose(out, (0, 3, 1, 2))  # [B, Tq, H, Dv]
    return out.reshape(*batch, tq, heads, v.shape[-1])


def refusal(problem: Problem, tq: int, tk: int) -> str | None:
    """Why flash_band cannot compute ``problem`` (apart from what every band kernel refuses),
    or None."""
    if problem.dot_scale is None:
        return "computes dot-product scores only"
    band = problem.rule.band(tq, tk, problem.grid)
    if band is not None and len(band.q_grid) != 1:
        return f"follows a band on a sequence only, not {problem.rule.name!r} on a grid"
    if problem.dropout_rate > 0.0:
        return "has no attention dropout: use 'band'"
    return None


def flash_band(q: Array, k: Array, v: Array, problem: Problem, *, block_size: int | None = None):
    """The rule's band of dot products on a sequence, ``block_size`` queries at a time (None:
    the band kernel's default with ``loop=True``)."""
    why = refusal(problem, q.shape[-3], k.shape[-3])
    if why is not None:
        raise ValueError(f"kernel 'flash_band' {why}")
    geo = band_lib.neighbourhood("flash_band", q, k, problem, block_size, loop=True)
    return flash_band_attention(
        q,
        k,
        v,
        window=geo.windows[0],
        block=geo.blocks[0],
        scale=problem.dot_scale,
        mask=problem.mask,
        precision=problem.precision,
    )
