"""The looped kernel: the blocked kernel's band, one block of queries at a time.

It computes what ``blocked_kernel`` computes for a windowed rule (``positions.Window``, or
``positions.Window2D`` on a token grid), as in Longformer (Beltagy et al. 2020) and Stand-Alone
Self-Attention (Ramachandran et al. 2019),

    out_i = sum_j softmax_j(pair(q_i, k_j), where=allowed_ij) v_j,
    allowed_ij = (i - left <= j <= i + right, per grid axis) AND the caller's padding mask,

but not for all query blocks at once. The queries are cut into blocks of ``b0`` positions along
the first grid axis (positions of a sequence, rows of a grid), and a ``lax.map`` over these
blocks computes each one's attention over its slab of keys: the ``b0 + left + right``
positions (rows) that its windows reach, read with a ``dynamic_slice`` (shifted inwards at the
ends of the axis, with the positions off the window masked). The remaining grid axis (the
columns of a grid) is blocked within the step, as the blocked kernel does it (``blocked``'s
``query_blocks`` and ``key_neighbourhoods``). Each step is rematerialized in the backward pass
(``jax.checkpoint``), so that the compiled temporaries hold a few steps' logits,
``O(b0 (b0 + left + right))`` per head and column block, whatever the length; beyond that, only
arrays of the size of the inputs and outputs grow with ``T``.

Layouts: ``q [batch..., Tq, H, D]``, ``k [batch..., Tk, Hkv, D]``, ``v [batch..., Tk, Hkv, Dv]``
with ``Tq``, ``Tk`` the product of the grid; masks as the blocked kernel takes them (key padding
``[..., H|1, 1, Tk]`` or query padding ``[..., H|1, Tq, 1]``, True = may attend).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from attn_research.attention import blocked, blocked_kernel, kernels

Array = jnp.ndarray


def _merge_step_axis(x: Array, lead: int) -> Array:
    """``[lead..., A, N, B, *rest]`` -> ``[lead..., N, A * B, *rest]``: the step's positions
    along the first grid axis into each inner block."""
    x = jnp.moveaxis(x, lead, lead + 1)
    return x.reshape(*x.shape[:lead], x.shape[lead], -1, *x.shape[lead + 3 :])


def looped_attention(
    q: Array,
    k: Array,
    v: Array,
    geo: blocked.Neighbourhood,
    *,
    pair: Callable[..., Array],
    mask: Array | None,
    dropout_rate: float,
    rng: Array | None,
    precision: jax.lax.PrecisionLike,
) -> Array:
    """Attention of ``q`` over ``geo``'s windows of ``k``, ``v``, one block of ``geo.blocks[0]``
    positions along the first grid axis at a time.

    Returns:
      ``[batch..., Tq, H, Dv]`` in ``v.dtype``. With dropout, masks are drawn per step, so they
      differ from the blocked kernel's (same distribution).
    """
    blocked_kernel.check_padding_mask(mask, "looped")
    batch, lead = q.shape[:-3], q.ndim - 3
    (tq0, tk0), (left, right), b0 = (geo.q_grid[0], geo.k_grid[0]), geo.windows[0], geo.blocks[0]
    n0, slab = geo.q_blocks[0], min(geo.k_grid[0], b0 + left + right)
    inner = blocked.Neighbourhood(geo.q_grid[1:], geo.k_grid[1:], geo.windows[1:], geo.blocks[1:])
    inner_mask = inner.static_mask()  # [N1, b1, K1]

    # Arrays stay in their token layout [lead..., T, *rest]: a step's rows are contiguous there
    # (reshaping the whole arrays to the grid lets XLA copy them, for unit axes' layouts).
    def rows_of(x: Array, start: Array, count: int, grid: tuple[int, ...], n_rest: int) -> Array:
        """Grid rows ``start .. start + count - 1`` of ``x [lead..., T, *rest]``, as
        ``[lead..., count, *grid[1:], *rest]``."""
        at, row = x.ndim - 1 - n_rest, math.prod(grid[1:])
        rows = jax.lax.dynamic_slice_in_dim(x, start * row, count * row, axis=at)
        return rows.reshape(*x.shape[:at], count, *grid[1:], *x.shape[at + 1 :])

    def keys_of(x: Array, start: Array, n_rest: int) -> Array:
        """``[lead..., Tk, *rest]`` -> the step's ``[lead..., N1, slab * K1, *rest]``."""
        rows = rows_of(x, start, slab, geo.k_grid, n_rest)
        return _merge_step_axis(
            blocked.key_neighbourhoods(rows, inner, n_rest), x.ndim - 1 - n_rest
        )

    def queries_of(x: Array, start: Array, n_rest: int) -> Array:
        """``[lead..., Tq, *rest]`` -> the step's ``[lead..., N1, b0 * b1, *rest]``."""
        rows = rows_of(x, start, b0, geo.q_grid, n_rest)
        return _merge_step_axis(blocked.query_blocks(rows, inner, n_rest), x.ndim - 1 - n_rest)

    key_mask = query_mask = None  # [lead..., T, H|1]
    if mask is not None and mask.shape[-1] > 1:
        key_mask = jnp.swapaxes(mask[..., 0, :], -1, -2)
    elif mask is not None and mask.shape[-2] > 1:
        query_mask = jnp.swapaxes(mask[..., 0], -1, -2)

    @jax.checkpoint
    def block(q_start: Array, index: Array) -> Array:
        """The output rows ``q_start .. q_start + b0 - 1``: ``[batch..., b0, *q_grid[1:], H, Dv]``."""
        k_start = jnp.clip(q_start - left, 0, tk0 - slab)
        rel = (k_start + jnp.arange(slab))[None, :] - (q_start + jnp.arange(b0))[:, None]
        rows_near = (rel >= -left) & (rel <= right)  # [b0, slab]
        allowed = rows_near[None, :, None, :, None] & inner_mask[:, None, :, None, :]
        allowed = allowed.reshape(inner.num_blocks, 1, b0 * inner.block_len, -1)  # [N1, 1, b, K']
        if key_mask is not None:
            allowed = allowed & jnp.swapaxes(keys_of(key_mask, k_start, 1), -1, -2)[..., None, :]
        elif query_mask is not None:
            allowed = allowed & jnp.swapaxes(queries_of(query_mask, q_start, 1), -1, -2)[..., None]
        elif mask is not None:
            allowed = allowed & mask[..., None, :, :, :]
        out, _ = kernels.einsum_attention(
            queries_of(q, q_start, 2),
            keys_of(k, k_start, 2),
            keys_of(v, k_start, 2),
            pair,
            mask=allowed,
            bias=None,
            dropout_rate=dropout_rate,
            rng=None if rng is None else jax.random.fold_in(rng, index),
            precision=precision,
        )  # [batch..., N1, b0 * b1, H, Dv]
        out = out.reshape(*batch, inner.num_blocks, b0, inner.block_len, *out.shape[-2:])
        return blocked.unblock_queries(jnp.moveaxis(out, lead, lead + 1), inner, n_rest=2)

    # With a batch of one, the steps' outputs are stacked without it and then reshaped: a
    # moved unit axis would make XLA copy the output's cotangent in the backward pass.
    single = math.prod(batch) == 1

    def step(index: Array) -> Array:
        # The last block ends at the last row, overlapping its predecessor when b0 does not
        # divide the rows: every block is a whole slice, and no input is copied padded.
        rows = block(jnp.minimum(index * b0, tq0 - b0), index)
        return rows.reshape(rows.shape[lead:]) if single else rows

    out = jax.lax.map(step, jnp.arange(n0))  # [n0, batch... (unless single), b0, ...]
    out = out if single else jnp.moveaxis(out, 0, lead)
    out = out.reshape(*batch, n0 * b0, *geo.q_grid[1:], q.shape[-2], v.shape[-1])
    if n0 * b0 > tq0:  # the last block's new rows
        last = jax.lax.slice_in_dim(out, n0 * b0 - (tq0 - (n0 - 1) * b0), n0 * b0, axis=lead)
        out = jnp.concatenate([jax.lax.slice_in_dim(out, 0, (n0 - 1) * b0, axis=lead), last], lead)
    return out.reshape(*batch, q.shape[-3], *out.shape[-2:])
