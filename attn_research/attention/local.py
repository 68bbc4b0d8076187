"""Local (windowed) attention on sequences and on image-patch grids, blocked to O(T * w).

Sliding-window attention (as in Longformer, Beltagy et al. 2020, and Image Transformer /
Stand-Alone Self-Attention, Parmar et al. 2018, Ramachandran et al. 2019, in 2-D):

    out_i = sum_{j in N(i)} softmax_j(q_i . k_j * scale) v_j

- ``local_attention``: N(i) = {j : i - left <= j <= i + right} on a sequence.
- ``local_2d_attention``: tokens form a ``rows x cols`` grid (row-major) and N(i) is the
  ``k_r x k_c`` neighbourhood centred on token i (clipped at the borders).

Both run dense attention on blocks of queries against their gathered neighbour keys (see
``blocked``), never on a dense ``[T, T]`` mask. Masks may pad keys (``[..., 1, Tk]``) or
queries (``[..., Tq, 1]``); a dense ``[Tq, Tk]`` mask is refused (use ``dot_product``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attn_research.attention import blocked, checks, kernels

Array = jnp.ndarray

# Queries per block along a sequence: a quarter of the wider window side, within these bounds.
# Smaller blocks waste fewer keys per query ((ceil(l/b) + 1 + ceil(r/b)) * b >= l + 1 + r) but
# make smaller matmuls; at T=8192, window (128, 128), b=32 beat 64 and 128 by 5-15% (fwd+bwd).
MIN_BLOCK, MAX_BLOCK = 16, 128


def _block_mask(mask: Array | None, geo: blocked.Neighbourhood) -> Array | None:
    """A query- or key-padding mask ``[batch..., H|1, Tq|1, Tk|1]`` -> ``[batch..., NB|1, H|1, b|1, K'|1]``."""
    if mask is None:
        return None
    if mask.shape[-2] > 1 and mask.shape[-1] > 1:
        raise ValueError(
            f"local attention takes key-padding ([..., 1, Tk]) or query-padding ([..., Tq, 1]) "
            f"masks, got a dense mask of shape {mask.shape}; a dense [Tq, Tk] mask defeats "
            f"O(T*w) cost: use kind='dot_product' for it"
        )
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
    mask: Array | None,
    scale: float,
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
        mask=allowed,
        bias=None,
        scale=scale,
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


def local_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    window: int | tuple[int, int] | None = None,
    causal: bool = False,
    mask: Array | None = None,
    scale: float | None = None,
    dropout_rate: float = 0.0,
    rng: Array | None = None,
    block_size: int | None = None,
    precision: jax.lax.PrecisionLike = None,
    return_weights: bool = False,
) -> Array | tuple[Array, Array]:
    """Sliding-window attention: query ``i`` sees keys ``i - left ... i + right``.

    Args:
      q: ``[batch..., Tq, H, D]``; k, v: ``[batch..., Tk, Hkv, D|Dv]`` (positions of queries and
        keys are both counted from 0).
      window: ``w >= 1`` for ``(w, w)``, or ``(left, right)`` with both ``>= 0``.
      causal: right window 0 (query ``i`` sees ``i - left ... i``).
      mask: key- or query-padding mask, True = may attend: ``[batch..., H|1, 1, Tk]`` or
        ``[batch..., H|1, Tq, 1]`` (or ``[1, Tk]``, ``[Tq, 1]``).
      block_size: queries per block (default ``max(left, right) // 4`` within [16, 128]); a
        speed knob that never changes the result.
      return_weights: also return dense ``[batch..., H, Tq, Tk]`` float32 weights (O(T^2), for
        pictures); the output is unchanged.

    Returns:
      ``[batch..., Tq, H, Dv]``; rows with no allowed key are zero.
    """
    mask, _, scale = checks.check_attention_args(q, k, v, mask, None, dropout_rate, rng, scale)
    left, right = checks.check_window(window, causal=causal)
    tq = q.shape[-3]
    if block_size is None:
        block_size = min(MAX_BLOCK, max(MIN_BLOCK, max(left, right) // 4))
    block = checks.check_positive_int("block_size", block_size)
    geo = blocked.Neighbourhood((tq,), (k.shape[-3],), ((left, right),), (min(block, tq),))
    return windowed_attention(
        q,
        k,
        v,
        geo,
        mask=mask,
        scale=scale,
        dropout_rate=dropout_rate,
        rng=rng,
        precision=precision,
        return_weights=return_weights,
    )


def _pair(name: str, value) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(checks.check_positive_int(name, x) for x in pair)


def local_2d_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    grid: tuple[int, int] | None = None,
    window: int | tuple[int, int] | None = None,
    mask: Array | None = None,
    scale: float | None = None,
    dropout_rate: float = 0.0,
    rng: Array | None = None,
    block_size: int | tuple[int, int] | None = None,
    precision: jax.lax.PrecisionLike = None,
    return_weights: bool = False,
) -> Array | tuple[Array, Array]:
    """Neighbourhood attention on a ``rows x cols`` grid of tokens (row-major, ``T = rows*cols``).

    Token ``(r, c)`` sees tokens ``(r', c')`` with ``|r' - r| <= k_r // 2`` and
    ``|c' - c| <= k_c // 2``.

    Args:
      q, k, v: ``[batch..., T, H|Hkv, D]`` with ``T = rows * cols`` for all three.
      grid: ``(rows, cols)``.
      window: odd neighbourhood size ``k`` (``k x k``) or ``(k_r, k_c)``.
      mask: key- or query-padding mask as in ``local_attention``.
      block_size: block extent per axis (default ``min(extent, max(k // 2, 4))``); never
        changes the result.
      return_weights: also return dense ``[batch..., H, T, T]`` weights.
    """
    mask, _, scale = checks.check_attention_args(q, k, v, mask, None, dropout_rate, rng, scale)
    if grid is None or window is None:
        raise ValueError("local_2d needs grid=(rows, cols) and an odd window size")
    rows, cols = _pair("grid", grid)
    sizes = _pair("window", window)
    if any(s % 2 == 0 for s in sizes):
        raise ValueError(f"local_2d window must be odd (a centred neighbourhood), got {window!r}")
    for name, x in (("q", q), ("k", k)):
        if x.shape[-3] != rows * cols:
            raise ValueError(f"{name} has {x.shape[-3]} tokens but grid {grid} holds {rows * cols}")
    radii = tuple(s // 2 for s in sizes)
    default = tuple(max(r, 4) for r in radii)
    blocks = _pair("block_size", block_size if block_size is not None else default)
    blocks = tuple(min(b, n) for b, n in zip(blocks, (rows, cols)))
    geo = blocked.Neighbourhood((rows, cols), (rows, cols), tuple((r, r) for r in radii), blocks)
    return windowed_attention(
        q,
        k,
        v,
        geo,
        mask=mask,
        scale=scale,
        dropout_rate=dropout_rate,
        rng=rng,
        precision=precision,
        return_weights=return_weights,
    )
