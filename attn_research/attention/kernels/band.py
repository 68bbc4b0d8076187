"""The band kernel: attention over the static band of a rule on a 1-D or 2-D token grid, in
O(T w) (Longformer, Beltagy et al. 2020; Stand-Alone Self-Attention, Ramachandran et al. 2019):

    out_i = sum_j softmax_j(pair(q_i, k_j), where=allowed_ij) v_j,
    allowed_ij = (i - left <= j <= i + right, per grid axis) AND the caller's padding mask.

Queries are cut into blocks of ``b`` positions per axis; each block gathers its own key block
and ``ceil(left/b)`` before, ``ceil(right/b)`` after (``K'`` keys) by static slices, and a static
``[NB, b, K']`` mask removes keys outside the window or the grid. Blocked arrays are
``[batch..., NB, b or K', *rest]`` (``rest``: heads and depth). ``loop=True`` runs one block of
grid rows at a time in a ``lax.map``, each step rematerialized, so that temporaries do not grow
with the length. Masks pad keys (``[..., H|1, 1, Tk]``) or queries (``[..., H|1, Tq, 1]``); a
dense ``[Tq, Tk]`` mask is refused.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from attn_research.attention import checks, kernels
from attn_research.attention.kernels import dense as dense_lib

if TYPE_CHECKING:
    from attn_research.attention.kernels import Problem
    from attn_research.attention.positions import Band

Array = jnp.ndarray

# Queries per block along a sequence: a quarter of the wider window side (the whole side when
# looping, whose steps must pay for the loop), within these bounds. Smaller blocks waste fewer
# keys per query ((ceil(l/b) + 1 + ceil(r/b)) * b >= l + 1 + r) but make smaller matmuls.
MIN_BLOCK, MAX_BLOCK = 16, 128
# Rows per block on a grid: the neighbourhood's radius, at least this.
MIN_GRID_BLOCK = 4


@dataclasses.dataclass(frozen=True)
class Neighbourhood:
    """Static geometry: per grid axis, the query and key extents, window and block size."""

    q_grid: tuple[int, ...]
    k_grid: tuple[int, ...]
    windows: tuple[tuple[int, int], ...]  # (left, right) per axis
    blocks: tuple[int, ...]

    @functools.cached_property
    def q_blocks(self) -> tuple[int, ...]:
        """Query blocks per axis, ``ceil(Q / b)``."""
        return tuple(math.ceil(q / b) for q, b in zip(self.q_grid, self.blocks))

    @functools.cached_property
    def before(self) -> tuple[int, ...]:
        """Neighbour key blocks before a query block, per axis (those that can hold keys)."""
        return tuple(
            min(math.ceil(l / b), n - 1)
            for (l, _), b, n in zip(self.windows, self.blocks, self.q_blocks)
        )

    @functools.cached_property
    def after(self) -> tuple[int, ...]:
        """Neighbour key blocks after a query block, per axis (those that can hold keys)."""
        return tuple(
            min(math.ceil(r / b), math.ceil(k / b) - 1)
            for (_, r), b, k in zip(self.windows, self.blocks, self.k_grid)
        )

    @property
    def num_blocks(self) -> int:
        return math.prod(self.q_blocks)

    @property
    def block_len(self) -> int:
        return math.prod(self.blocks)

    @property
    def keys_per_block(self) -> int:
        return math.prod((l + 1 + r) * b for l, r, b in zip(self.before, self.after, self.blocks))

    def _axis_key_positions(self, axis: int) -> np.ndarray:
        """``[nq, (before+1+after) * b]`` key positions seen by each query block on ``axis``."""
        b, n = self.blocks[axis], self.q_blocks[axis]
        span = np.arange(-self.before[axis] * b, (self.after[axis] + 1) * b)
        return np.arange(n)[:, None] * b + span[None, :]

    def static_mask(self) -> np.ndarray:
        """``[NB, b, K']`` bool: key inside the query's window and on the grid."""
        in_window, on_grid = [], []
        for a, ((left, right), b, k_len) in enumerate(zip(self.windows, self.blocks, self.k_grid)):
            key_pos = self._axis_key_positions(a)  # [nq, K_a]
            rel = key_pos[0][None, :] - np.arange(b)[:, None]  # same for every block
            in_window.append((rel >= -left) & (rel <= right))  # [b, K_a]
            on_grid.append((key_pos >= 0) & (key_pos < k_len))  # [nq, K_a]
        window = _outer_and(in_window).reshape(self.block_len, self.keys_per_block)
        grid = _outer_and(on_grid).reshape(self.num_blocks, self.keys_per_block)
        return window[None, :, :] & grid[:, None, :]


def _outer_and(per_axis: list[np.ndarray]) -> np.ndarray:
    """``[m_a, n_a]`` per axis -> ``[m_0, m_1, ..., n_0, n_1, ...]`` logical AND."""
    d = len(per_axis)
    out = np.ones((1,) * 2 * d, bool)
    for a, x in enumerate(per_axis):
        shape = [1] * 2 * d
        shape[a], shape[d + a] = x.shape
        out = out & x.reshape(shape)
    return out


def _lead(x: Array, grid: tuple[int, ...], n_rest: int) -> int:
    return x.ndim - len(grid) - n_rest


def query_blocks(x: Array, geo: Neighbourhood, n_rest: int) -> Array:
    """``[batch..., *q_grid, *rest]`` -> ``[batch..., NB, b, *rest]`` (zero-padded to whole blocks)."""
    lead, d = _lead(x, geo.q_grid, n_rest), len(geo.q_grid)
    pad = [(0, 0)] * x.ndim
    for a, (q, b, n) in enumerate(zip(geo.q_grid, geo.blocks, geo.q_blocks)):
        pad[lead + a] = (0, n * b - q)
    x = jnp.pad(x, pad)
    split = sum(((n, b) for n, b in zip(geo.q_blocks, geo.blocks)), ())
    x = x.reshape(*x.shape[:lead], *split, *x.shape[lead + d :])
    perm = (
        *range(lead),
        *(lead + 2 * a for a in range(d)),
        *(lead + 2 * a + 1 for a in range(d)),
        *range(lead + 2 * d, x.ndim),
    )
    x = x.transpose(perm)
    return x.reshape(*x.shape[:lead], geo.num_blocks, geo.block_len, *x.shape[lead + 2 * d :])


def unblock_queries(x: Array, geo: Neighbourhood, n_rest: int) -> Array:
    """Inverse of ``query_blocks``: ``[batch..., NB, b, *rest]`` -> ``[batch..., *q_grid, *rest]``."""
    lead, d = x.ndim - 2 - n_rest, len(geo.q_grid)
    x = x.reshape(*x.shape[:lead], *geo.q_blocks, *geo.blocks, *x.shape[lead + 2 :])
    perm = (
        *range(lead),
        *(p for a in range(d) for p in (lead + a, lead + d + a)),
        *range(lead + 2 * d, x.ndim),
    )
    x = x.transpose(perm)
    x = x.reshape(
        *x.shape[:lead],
        *(n * b for n, b in zip(geo.q_blocks, geo.blocks)),
        *x.shape[lead + 2 * d :],
    )
    return x[(slice(None),) * lead + tuple(slice(0, q) for q in geo.q_grid)]


def key_neighbourhoods(x: Array, geo: Neighbourhood, n_rest: int) -> Array:
    """``[batch..., *k_grid, *rest]`` -> ``[batch..., NB, K', *rest]``, zero-padded off the grid."""
    lead, d = _lead(x, geo.k_grid, n_rest), len(geo.k_grid)
    for a, (k, b, n, before, after) in enumerate(
        zip(geo.k_grid, geo.blocks, geo.q_blocks, geo.before, geo.after)
    ):
        total = (n + before + after) * b
        x = jax.lax.slice_in_dim(x, 0, min(k, total - before * b), axis=lead + a)
        pad = [(0, 0)] * x.ndim
        pad[lead + a] = (before * b, total - before * b - x.shape[lead + a])
        x = jnp.pad(x, pad)
    split = sum(
        ((n + bf + af, b) for n, bf, af, b in zip(geo.q_blocks, geo.before, geo.after, geo.blocks)),
        (),
    )
    x = x.reshape(*x.shape[:lead], *split, *x.shape[lead + d :])
    for a, (n, before, after) in enumerate(zip(geo.q_blocks, geo.before, geo.after)):
        axis = lead + 3 * a  # earlier axes already hold (blocks, neighbours, b)
        x = jnp.stack(
            [jax.lax.slice_in_dim(x, o, o + n, axis=axis) for o in range(before + 1 + after)],
            axis=axis + 1,
        )
    perm = (
        *range(lead),
        *(lead + 3 * a for a in range(d)),
        *(p for a in range(d) for p in (lead + 3 * a + 1, lead + 3 * a + 2)),
        *range(lead + 3 * d, x.ndim),
    )
    x = x.transpose(perm)
    return x.reshape(*x.shape[:lead], geo.num_blocks, geo.keys_per_block, *x.shape[lead + 3 * d :])


def check_padding_mask(mask: Array | None, kernel: str) -> None:
    """Raises ValueError for a mask that is not a padding mask (a dense ``[Tq, Tk]`` one)."""
    if mask is not None and mask.shape[-2] > 1 and mask.shape[-1] > 1:
        raise ValueError(
            f"the {kernel} kernel takes key-padding ([..., 1, Tk]) or query-padding ([..., Tq, 1]) "
            f"masks, got a dense mask of shape {mask.shape}; a dense [Tq, Tk] mask defeats "
            f"O(T*w) cost: use kernel='dense' for it"
        )


def _block_mask(mask: Array | None, geo: Neighbourhood) -> Array | None:
    """A query- or key-padding mask ``[batch..., H|1, Tq|1, Tk|1]`` -> ``[batch..., NB|1, H|1, b|1, K'|1]``."""
    if mask is None:
        return None
    lead = mask.shape[:-3]
    if mask.shape[-1] > 1:  # keys: [..., H|1, 1, Tk] -> [..., Tk, H|1] -> [..., NB, K', H|1]
        keys = jnp.swapaxes(mask[..., 0, :], -1, -2).reshape(*lead, *geo.k_grid, mask.shape[-3])
        return jnp.swapaxes(key_neighbourhoods(keys, geo, n_rest=1), -1, -2)[..., None, :]
    if (
        mask.shape[-2] > 1
    ):  # queries: [..., H|1, Tq, 1] -> [..., NB, b, H|1] -> [..., NB, H|1, b, 1]
        queries = jnp.swapaxes(mask[..., 0], -1, -2).reshape(*lead, *geo.q_grid, mask.shape[-3])
        return jnp.swapaxes(query_blocks(queries, geo, n_rest=1), -1, -2)[..., None]
    return mask[..., None, :, :, :]


def windowed_attention(q: Array, k: Array, v: Array, geo: Neighbourhood, problem: Problem) -> Array:
    """Blocked attention of ``q [batch..., Tq, H, D]`` over ``geo``'s neighbourhoods of ``k``,
    ``v``, all blocks at once."""
    batch = q.shape[:-3]
    q_blk = query_blocks(q.reshape(*batch, *geo.q_grid, *q.shape[-2:]), geo, n_rest=2)
    k_blk, v_blk = (
        key_neighbourhoods(x.reshape(*batch, *geo.k_grid, *x.shape[-2:]), geo, 2) for x in (k, v)
    )
    allowed = jnp.asarray(geo.static_mask()[:, None])  # [NB, 1, b, K']
    user = _block_mask(problem.mask, geo)
    if user is not None:
        allowed = allowed & user
    out_blk = dense_lib.einsum_attention(
        q_blk,
        k_blk,
        v_blk,
        problem.pair,
        mask=allowed,
        bias=None,
        dropout_rate=problem.dropout_rate,
        rng=problem.rng,
        precision=problem.precision,
    )
    out = unblock_queries(out_blk, geo, n_rest=2)
    return out.reshape(*batch, *q.shape[-3:-1], v.shape[-1])


def _merge_step_axis(x: Array, lead: int) -> Array:
    """``[lead..., A, N, B, *rest]`` -> ``[lead..., N, A * B, *rest]``: the step's positions
    along the first grid axis into each inner block."""
    x = jnp.moveaxis(x, lead, lead + 1)
    return x.reshape(*x.shape[:lead], x.shape[lead], -1, *x.shape[lead + 3 :])


def looped_attention(q: Array, k: Array, v: Array, geo: Neighbourhood, problem: Problem) -> Array:
    """Attention of ``q`` over ``geo``'s windows, one block of ``geo.blocks[0]`` positions along
    the first grid axis at a time -> ``[batch..., Tq, H, Dv]`` in ``v.dtype``."""
    mask, rng = problem.mask, problem.rng
    batch, lead = q.shape[:-3], q.ndim - 3
    (tq0, tk0), (left, right), b0 = (geo.q_grid[0], geo.k_grid[0]), geo.windows[0], geo.blocks[0]
    n0, slab = geo.q_blocks[0], min(geo.k_grid[0], b0 + left + right)
    inner = Neighbourhood(geo.q_grid[1:], geo.k_grid[1:], geo.windows[1:], geo.blocks[1:])
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
        return _merge_step_axis(key_neighbourhoods(rows, inner, n_rest), x.ndim - 1 - n_rest)

    def queries_of(x: Array, start: Array, n_rest: int) -> Array:
        """``[lead..., Tq, *rest]`` -> the step's ``[lead..., N1, b0 * b1, *rest]``."""
        rows = rows_of(x, start, b0, geo.q_grid, n_rest)
        return _merge_step_axis(query_blocks(rows, inner, n_rest), x.ndim - 1 - n_rest)

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
        out = dense_lib.einsum_attention(
            queries_of(q, q_start, 2),
            keys_of(k, k_start, 2),
            keys_of(v, k_start, 2),
            problem.pair,
            mask=allowed,
            bias=None,
            dropout_rate=problem.dropout_rate,
            rng=None if rng is None else jax.random.fold_in(rng, index),
            precision=problem.precision,
        )  # [batch..., N1, b0 * b1, H, Dv]
        out = out.reshape(*batch, inner.num_blocks, b0, inner.block_len, *out.shape[-2:])
        return unblock_queries(jnp.moveaxis(out, lead, lead + 1), inner, n_rest=2)

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


def blocks(band: Band, block_size: int | tuple[int, int] | None, *, loop: bool) -> tuple[int, ...]:
    """Queries per block on each grid axis: ``block_size`` (an int on a sequence, an int or a
    pair on a grid), or by default as ``MIN_BLOCK``, ``MAX_BLOCK`` and ``MIN_GRID_BLOCK`` say."""
    if block_size is not None and len(band.q_grid) == 1:
        sizes = (checks.check_positive_int("block_size", block_size),)
    elif block_size is not None:
        sizes = checks.check_pair("block_size", block_size)
    elif len(band.q_grid) == 1:
        wide = max(band.reach[0])
        sizes = (min(MAX_BLOCK, max(MIN_BLOCK, wide if loop else wide // 4)),)
    else:
        sizes = tuple(max(max(reach), MIN_GRID_BLOCK) for reach in band.reach)
    return tuple(min(b, n) for b, n in zip(sizes, band.q_grid))


def neighbourhood(
    kernel: str, q: Array, k: Array, problem: Problem, block_size, *, loop: bool
) -> Neighbourhood:
    """The rule's band cut into blocks, or a ValueError that says why ``kernel`` cannot run."""
    kernels.refuse(kernel, problem, query_positions=True, bias=True)
    band = problem.rule.band(q.shape[-3], k.shape[-3], problem.grid)
    if band is None:
        raise ValueError(
            f"the {kernel} kernel needs a band of positions, and {problem.rule.name!r} is none: "
            "use kernel='dense' or 'chunked'"
        )
    check_padding_mask(problem.mask, kernel)
    return Neighbourhood(band.q_grid, band.k_grid, band.reach, blocks(band, block_size, loop=loop))


def band(
    q: Array,
    k: Array,
    v: Array,
    problem: Problem,
    *,
    block_size: int | tuple[int, int] | None = None,
    loop: bool = False,
) -> Array:
    """The rule's band, all query blocks at once or (``loop``) one block of rows at a time."""
    geo = neighbourhood("band", q, k, problem, block_size, loop=loop)
    return (looped_attention if loop else windowed_attention)(q, k, v, geo, problem)
