"""Which keys a query block sees in windowed attention on a 1-D or 2-D token grid.

Queries on a grid (``(T,)`` for sequences, ``(rows, cols)`` for image patches) are cut into
blocks of ``blocks`` positions per axis. Query position ``i`` on an axis may see key
positions ``i - left ... i + right``; so a query block needs its own key block and
``ceil(left/b)`` blocks before, ``ceil(right/b)`` after. Those neighbour blocks are
gathered with static slices into ``K'`` keys per block, and dense attention runs on the
``[b, K']`` blocks: time and memory O(T * K') instead of O(T^2). The remaining positions
outside the exact window, or off the grid, are removed by a static ``[NB, b, K']`` mask.

Arrays are laid out ``[batch..., *grid, *rest]`` (``rest`` = trailing axes such as heads and
depth), blocked ones ``[batch..., NB, b or K', *rest]``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jnp.ndarray


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

    def dense_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat query ``[NB, b, 1]`` and key ``[NB, 1, K']`` positions in ``[Tq, Tk]``.

        Positions off the grid are set to ``Tq`` / ``Tk`` (out of range, dropped on scatter).
        """
        q_pos = [
            np.arange(n)[:, None] * b + np.arange(b)[None, :]
            for n, b in zip(self.q_blocks, self.blocks)
        ]
        k_pos = [self._axis_key_positions(a) for a in range(len(self.blocks))]
        return (
            _flat_index(q_pos, self.q_grid)[:, :, None],
            _flat_index(k_pos, self.k_grid)[:, None, :],
        )


def _outer_and(per_axis: list[np.ndarray]) -> np.ndarray:
    """``[m_a, n_a]`` per axis -> ``[m_0, m_1, ..., n_0, n_1, ...]`` logical AND."""
    d = len(per_axis)
    out = np.ones((1,) * 2 * d, bool)
    for a, x in enumerate(per_axis):
        shape = [1] * 2 * d
        shape[a], shape[d + a] = x.shape
        out = out & x.reshape(shape)
    return out


def _flat_index(per_axis: list[np.ndarray], grid: tuple[int, ...]) -> np.ndarray:
    """``[n_a, m_a]`` grid positions per axis -> ``[prod n_a, prod m_a]`` row-major flat index.

    Positions off the grid map to ``prod(grid)`` (out of range).
    """
    d = len(per_axis)
    flat, valid = np.zeros((1,) * 2 * d, np.int64), np.ones((1,) * 2 * d, bool)
    for a, (pos, size) in enumerate(zip(per_axis, grid)):
        shape = [1] * 2 * d
        shape[a], shape[d + a] = pos.shape
        pos = pos.reshape(shape)
        flat = flat * size + pos
        valid = valid & (pos >= 0) & (pos < size)
    flat = np.where(valid, flat, math.prod(grid))
    return flat.reshape(math.prod(flat.shape[:d]), -1)


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
