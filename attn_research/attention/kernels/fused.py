"""What the fused dot-product kernels (``splash``, ``pallas_band``) share: their refusals,
per-position validity from a padding mask ``[batch..., H|1, Tq|1, Tk|1]``, and the query rows
that see no key (whose output is zero)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import jax.numpy as jnp

if TYPE_CHECKING:
    from attn_research.attention.kernels import Problem

Array = jnp.ndarray
Reach = tuple[int | None, int | None]


def refusal(problem: Problem) -> str | None:
    """Why a fused dot-product band kernel cannot compute ``problem``, or None (the rule is the
    kernel's own question)."""
    if problem.dot_scale is None:
        return "computes dot-product scores only: use kernel='dense' (or 'band' for a band)"
    if problem.bias is not None:
        return "takes no logits bias: use kernel='dense'"
    if problem.dropout_rate > 0.0:
        return "has no attention dropout: use 'dense', 'chunked' or 'band'"
    if problem.query_positions is not None:
        return "takes query positions 0 .. Tq - 1 only; for a decoding step use kernel='dense'"
    mask = problem.mask
    if mask is not None and mask.shape[-2] > 1 and mask.shape[-1] > 1:
        return (
            f"takes key-padding ([..., 1, Tk]) or query-padding ([..., Tq, 1]) masks, got a dense "
            f"mask of shape {mask.shape}: use kernel='dense' for it"
        )
    return None


def validity(mask: Array | None, batch: tuple[int, ...], tq: int, tk: int) -> tuple[Array, Array]:
    """``(queries [B, H|1, Tq], keys [B, H|1, Tk])`` bool, ``B = prod(batch)``, from a padding
    mask (a ``[..., H|1, 1, 1]`` mask switches whole heads off through the queries)."""
    flat = math.prod(batch)
    if mask is None:
        return jnp.ones((flat, 1, tq), bool), jnp.ones((flat, 1, tk), bool)
    heads = mask.shape[-3]
    mask = jnp.broadcast_to(mask, (*batch, *mask.shape[-3:])).reshape(flat, *mask.shape[-3:])
    queries = jnp.broadcast_to(mask[..., :, 0] if mask.shape[-1] == 1 else True, (flat, heads, tq))
    keys = jnp.broadcast_to(mask[..., 0, :] if mask.shape[-2] == 1 else True, (flat, heads, tk))
    return queries, keys


def rows_with_keys(reach: Reach, queries: Array, keys: Array) -> Array:
    """``[B, H|1, Tq]``: valid queries that see at least one valid key within ``reach``."""
    tq, tk = queries.shape[-1], keys.shape[-1]
    left, right = reach
    i = jnp.arange(tq)
    lo = jnp.clip(i - (tk if left is None else left), 0, tk)
    hi = jnp.clip(i + (tk if right is None else right) + 1, 0, tk)  # exclusive
    counts = jnp.cumsum(keys.astype(jnp.int32), axis=-1)
    counts = jnp.pad(counts, ((0, 0), (0, 0), (1, 0)))  # counts[..., n] = valid keys before n
    seen = jnp.take(counts, hi, axis=-1) - jnp.take(counts, lo, axis=-1)
    return queries & (hi > lo) & (seen > 0)


def zero_empty_rows(out: Array, rows: Array) -> Array:
    """``out [B, Tq, H, Dv]`` with the rows that see no key set to zero (``rows [B, H|1, Tq]``)."""
    return jnp.where(jnp.swapaxes(rows, 1, 2)[..., None], out, jnp.zeros((), out.dtype))
