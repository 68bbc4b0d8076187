"""The blocked kernel: attention over the static band of a window rule, O(T * w), never [T, T].

Windowed rules (``positions.Window`` on sequences, ``positions.Window2D`` on token grids) give
each block of queries a static neighbourhood of keys (``blocked.Neighbourhood``); dense
attention then runs on the ``[b, K']`` blocks with any score's ``pair`` function, as in
Longformer (Beltagy et al. 2020) and Stand-Alone Self-Attention (Ramachandran et al. 2019).
Masks may pad keys (``[..., 1, Tk]``) or queries (``[..., Tq, 1]``); a dense ``[Tq, Tk]`` mask
is refused (it would cost O(T^2): use the dense kernel).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from attn_research.attention import blocked, kernels

Array = jnp.ndarray


def check_padding_mask(mask: Array | None, kernel: str) -> None:
    """Raises ValueError for a mask that is not a padding mask (a dense ``[Tq, Tk]`` one)."""
    if mask is not None and mask.shape[-2] > 1 and mask.shape[-1] > 1:
        raise ValueError(
            f"the {kernel} kernel takes key-padding ([..., 1, Tk]) or query-padding ([..., Tq, 1]) "
            f"masks, got a dense mask of shape {mask.shape}; a dense [Tq, Tk] mask defeats "
            f"O(T*w) cost: use kernel='dense' for it"
        )


def _block_mask(mask: Array | None, geo: blocked.Neighbourhood) -> Array | None:
    """A query- or key-padding mask ``[batch..., H|1, Tq|1, Tk|1]`` -> ``[batch..., NB|1, H|1, b|1, K'|1]``."""
    if mask is None:
        return None
    check_padding_mask(mask, "blocked")
    lead = mask.shape[:-3]
    if mask.shape[-1] > 1:  # keys: [..., H|1, 1, Tk] -> [..., Tk, H|1] -> [..., NB, K', H|1]
        keys = jnp.swapaxes(mask[..., 0, :], -1, -2).reshape(*lead, *geo.k_grid, mask.shape[-3])
        return jnp.swapaxes(blocked.key_neighbourhoods(keys, geo, n_rest=1), -1, -2)[..., None, :]
    if (
        mask.shape[-2] > 1
    ):  # queries: [..., H|1, Tq, 1] -> [..., NB, b, H|1] -> [..., NB, H|1, b, 1]
        queries = jnp.swapaxes(mask[..., 0], -1, -2).reshape(*lead, *geo.q_grid, mask.shape[-3])
        return jnp.swapaxes(blocked.query_blocks(queries, geo, n_rest=1), -1, -2)[..., None]
    return mask[..., None, :, :, :]


def windowed_attention(
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
    return_weights: bool,
) -> Array | tuple[Array, Array]:
    """Blocked attention of ``q [batch..., Tq, H, D]`` over ``geo``'s neighbourhoods of ``k``, ``v``."""
    batch = q.shape[:-3]
    q_blk = blocked.query_blocks(q.reshape(*batch, *geo.q_grid, *q.shape[-2:]), geo, n_rest=2)
    k_blk, v_blk = (
        blocked.key_neighbourhoods(x.reshape(*batch, *geo.k_grid, *x.shape[-2:]), geo, 2)
        for x in (k, v)
    )
    allowed = jnp.asarray(geo.static_mask()[:, None])  # [NB, 1, b, K']
    user = _block_mask(mask, geo)
    if user is not None:
        allowed = allowed & user
    out_blk, weights_blk = kernels.einsum_attention(
        q_blk,
        k_blk,
        v_blk,
        pair,
        mask=allowed,
        bias=None,
        dropout_rate=dropout_rate,
        rng=rng,
        precision=precision,
    )
    out = blocked.unblock_queries(out_blk, geo, n_rest=2).reshape(
        *batch, *q.shape[-3:-1], v.shape[-1]
    )
    if not return_weights:
        return out
    return out, _dense_weights(weights_blk, geo, q.shape[-3], k.shape[-3])


def _dense_weights(weights_blk: Array, geo: blocked.Neighbourhood, tq: int, tk: int) -> Array:
    """Blocked weights ``[batch..., NB, H, b, K']`` -> dense ``[batch..., H, Tq, Tk]`` (for pictures)."""
    q_index, k_index = geo.dense_indices()
    w = jnp.moveaxis(weights_blk, -3, -4)  # [..., H, NB, b, K']
    dense = jnp.zeros((*w.shape[:-3], tq, tk), w.dtype)
    return dense.at[..., q_index, k_index].add(w, mode="drop")
