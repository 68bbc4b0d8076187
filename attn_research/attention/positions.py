"""Which positions attend: the rule a query-key pair must satisfy before it is scored.

A rule is a small frozen dataclass that answers, for integer query positions ``i`` and key
positions ``j`` (both counted from 0, or given by the caller, e.g. a decoder's step ``t``):

- ``allowed(i, j)``: may query ``i`` see key ``j``? (elementwise on broadcasting positions);
- ``causal()``: the rule intersected with ``j <= i``;
- ``neighbourhood(...)``: its static band for the blocked kernel, when it is one;
- ``reach()``: how far back and ahead a query sees along a sequence, ``(left, right)`` with
  None for an unbounded side, when that alone says which keys it sees (the fused kernels'
  question);
- ``cache_size(max_len)`` and ``in_cache()``: how many past keys a decoding step can ever see
  (the decode cache's length: ``left + 1`` for a causal window, a rolling cache) and which
  of the cached keys it sees;
- ``weight(i, j)``: a factor on the weights after the softmax (local_p's Gaussian), or None.

Rules (True = may attend; padding masks are combined with them by the caller):

    global:         every key (Bahdanau et al. 2014, Vaswani et al. 2017)
    causal:         j <= i
    window(l, r):   i - l <= j <= i + r   (Beltagy et al. 2020)
    window_2d(k):   |row_i - row_j| <= k_r // 2 and |col_i - col_j| <= k_c // 2 on the
                    caller's token grid (Ramachandran et al. 2019)
    luong_local_m:  |j - t| <= D, the window(D, D) around p_t = t (Luong et al. 2015)
    luong_local_p:  |j - p_t| <= D with p_t = S sigmoid(v_p^T tanh(W_p h_t)), and the weights
                    times exp(-(j - p_t)^2 / (2 sigma^2)), sigma = D / 2 (Luong et al. 2015);
                    divide_position_by_sqrt_units=True: sigmoid(v_p^T tanh(W_p h_t) / sqrt(U))

To add a rule: a dataclass here (or in its own file) and one ``register`` line below.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_research.attention import blocked, checks
from attn_research.attention import masks as masks_lib
from attn_research.attention.registry import Registry

Array = jnp.ndarray


@dataclasses.dataclass(frozen=True)
class Positions:
    """The global rule, and the defaults every rule inherits."""

    name = "global"
    # True for a rule whose window follows a centre predicted from the query (``Centre``).
    predicts_centre = False

    def predict_centre(self, q: Array, mask: Array | None, tk: int) -> Array | None:
        """The centre ``[batch..., H, Tq, 1]`` of each query's window, by a submodule of the
        calling attention module (a rule with parameters); None for fixed rules."""
        del q, mask, tk
        return None

    def allowed(
        self, q_pos: Array, k_pos: Array, *, grid: tuple[int, int] | None, centre: Array | None
    ) -> Array | None:
        """bool, broadcast of ``q_pos [..., Tq, 1]`` and ``k_pos [Tk]``; None = all."""
        del q_pos, k_pos, grid, centre
        return None

    def weight(self, k_pos: Array, centre: Array | None) -> Array | None:
        """A factor on the softmax weights ``[..., Tq, Tk]``, or None."""
        del k_pos, centre
        return None

    def causal(self) -> Positions:
        return Causal()

    def reach(self) -> tuple[int | None, int | None] | None:
        """``(left, right)`` such that the rule allows exactly ``i - left <= j <= i + right``
        (None: unbounded on that side); None when no such pair describes it (a grid, a predicted
        centre, a pattern). A rule that restricts nothing reaches everywhere; a rule that
        restricts keys and does not say how far it reaches answers None."""
        return (None, None) if type(self).allowed is Positions.allowed else None

    def check(self, tq: int, tk: int, grid: tuple[int, int] | None) -> None:
        """Raises ValueError when the rule cannot apply to ``tq`` queries and ``tk`` keys."""

    def neighbourhood(
        self, tq: int, tk: int, grid: tuple[int, int] | None, block_size: Any
    ) -> blocked.Neighbourhood | None:
        """The static band of the rule for the blocked kernel; None if it is not a band."""
        del tq, tk, grid, block_size
        return None

    def cache_size(self, max_len: int) -> int:
        """Keys a decoding step sees at most: the length of its key/value cache."""
        return max_len

    def in_cache(self) -> Positions:
        """The rule over the slots of the decode cache: this rule, as keys keep their positions
        in a cache of ``max_len`` slots (a rolling cache answers otherwise)."""
        return self


@dataclasses.dataclass(frozen=True)
class Causal(Positions):
    name = "causal"

    def allowed(self, q_pos, k_pos, *, grid, centre):
        del grid, centre
        return k_pos <= q_pos

    def causal(self) -> Positions:
        return self

    def reach(self) -> tuple[int | None, int | None]:
        return None, 0


# Queries per block along a sequence: a quarter of the wider window side, within these bounds.
# Smaller blocks waste fewer keys per query ((ceil(l/b) + 1 + ceil(r/b)) * b >= l + 1 + r) but
# make smaller matmuls.
MIN_BLOCK, MAX_BLOCK = 16, 128


@dataclasses.dataclass(frozen=True)
class Window(Positions):
    """``i - left <= j <= i + right``."""

    left: int
    right: int
    name = "window"

    def allowed(self, q_pos, k_pos, *, grid, centre):
        del grid, centre
        return (k_pos >= q_pos - self.left) & (k_pos <= q_pos + self.right)

    def causal(self) -> Positions:
        return Window(self.left, 0)

    def reach(self) -> tuple[int, int]:
        return self.left, self.right

    def neighbourhood(self, tq, tk, grid, block_size):
        del grid
        if block_size is None:
            block_size = min(MAX_BLOCK, max(MIN_BLOCK, max(self.left, self.right) // 4))
        block = min(checks.check_positive_int("block_size", block_size), tq)
        return blocked.Neighbourhood((tq,), (tk,), ((self.left, self.right),), (block,))

    def cache_size(self, max_len: int) -> int:
        """``left + 1``: a causal window's step sees itself and ``left`` keys before it."""
        if self.right:
            raise ValueError(
                f"decoding sees no future keys, but the window reaches {self.right} ahead: "
                "decode with causal=True (right window 0)"
            )
        return min(self.left + 1, max_len)

    def in_cache(self) -> Positions:
        """Every filled slot: the rolling cache of ``left + 1`` keys holds the window."""
        return Positions()


def window(window: int | tuple[int, int]) -> Window:
    """``window(w)`` = ``(w, w)``, or ``window((left, right))``."""
    return Window(*checks.check_window(window))


def pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints >= 1, as a pair."""
    both = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(both) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(checks.check_positive_int(name, x) for x in both)


@dataclasses.dataclass(frozen=True)
class Window2D(Positions):
    """A ``k_r x k_c`` neighbourhood (odd sides) on the row-major ``grid`` of the tokens: its own,
    or else the caller's (a model's patch grid)."""

    size: tuple[int, int]
    grid: tuple[int, int] | None = None
    name = "window_2d"

    def on(self, grid: tuple[int, int] | None) -> tuple[int, int] | None:
        """The grid the rule runs on."""
        if self.grid is not None and grid is not None and tuple(grid) != self.grid:
            raise ValueError(f"window_2d grid {self.grid} differs from the tokens' grid {grid}")
        return self.grid or grid

    def check(self, tq, tk, grid):
        grid = self.on(grid)
        if grid is None:
            raise ValueError("window_2d needs the token grid (rows, cols) from the model")
        rows, cols = pair("grid", grid)
        for what, tokens in (("queries", tq), ("keys", tk)):
            if tokens != rows * cols:
                raise ValueError(
                    f"window_2d: {tokens} {what} do not fill the token grid {tuple(grid)} "
                    f"({rows * cols} tokens); a token off the grid (a class token, a register) "
                    "has no neighbourhood: pool without one (gap or map), with no registers"
                )

    def allowed(self, q_pos, k_pos, *, grid, centre):
        del centre
        cols = self.on(grid)[1]
        rows_near = jnp.abs(q_pos // cols - k_pos // cols) <= self.size[0] // 2
        return rows_near & (jnp.abs(q_pos % cols - k_pos % cols) <= self.size[1] // 2)

    def causal(self) -> Positions:
        raise ValueError("window_2d has no order on its grid: it cannot be causal or decoded")

    def neighbourhood(self, tq, tk, grid, block_size):
        del tq, tk
        grid = self.on(grid)
        radii = tuple(s // 2 for s in self.size)
        blocks = pair("block_size", block_size or tuple(max(r, 4) for r in radii))
        blocks = tuple(min(b, n) for b, n in zip(blocks, grid))
        return blocked.Neighbourhood(tuple(grid), tuple(grid), tuple((r, r) for r in radii), blocks)

    def cache_size(self, max_len: int) -> int:
        return self.causal().cache_size(max_len)


def window_2d(window: int | tuple[int, int], grid: tuple[int, int] | None = None) -> Window2D:
    """``window_2d(k)`` = a ``k x k`` neighbourhood, or ``window_2d((k_r, k_c))``; odd sides.
    ``grid``: ``(rows, cols)`` of the tokens, if not the caller's."""
    size = pair("window", window)
    if any(s % 2 == 0 for s in size):
        raise ValueError(f"window_2d sides must be odd (a centred neighbourhood), got {window!r}")
    return Window2D(size, None if grid is None else pair("grid", grid))


def luong_local_m(window: int = 10) -> Window:
    """Luong's local-m: the window ``[t - D, t + D]`` around the query's own position."""
    return Window(checks.check_positive_int("window", window), window)


@dataclasses.dataclass(frozen=True)
class LuongLocalP(Positions):
    """``|j - p_t| <= D`` around the predicted centre ``p_t``, Gaussian-weighted."""

    half_width: int
    units: int | None = None
    divide_position_by_sqrt_units: bool = False
    is_causal: bool = False
    name = "luong_local_p"
    predicts_centre = True

    def allowed(self, q_pos, k_pos, *, grid, centre):
        del grid
        near = jnp.abs(k_pos - centre) <= self.half_width
        return near & (k_pos <= q_pos) if self.is_causal else near

    def predict_centre(self, q, mask, tk):
        if self.is_causal:
            mask = masks_lib.combine(mask, masks_lib.causal_mask(q.shape[-3], tk))
        centre = Centre(self.units, self.divide_position_by_sqrt_units, name="centre")
        return centre(q, mask, tk)

    def weight(self, k_pos, centre):
        sigma = self.half_width / 2.0
        return jnp.exp(-jnp.square(k_pos - centre) / (2.0 * sigma**2))

    def causal(self) -> Positions:
        return dataclasses.replace(self, is_causal=True)


def luong_local_p(
    window: int = 10, units: int | None = None, divide_position_by_sqrt_units: bool = False
) -> LuongLocalP:
    """Luong's local-p with half-width ``D = window`` (``units``: the centre network's size;
    ``divide_position_by_sqrt_units``: see ``Centre``)."""
    return LuongLocalP(
        checks.check_positive_int("window", window), units, bool(divide_position_by_sqrt_units)
    )


class Centre(nn.Module):
    """local-p's aligned position ``p_t = S sigmoid(v_p^T tanh(W_p h_t))``, float32 (Luong et
    al. 2015), or ``S sigmoid(v_p^T tanh(W_p h_t) / sqrt(U))`` with ``divide_by_sqrt_units``.

    The pre-activation sums ``U`` (``units``) terms. Adam moves each ``v_p`` entry by about the
    learning rate per step, whatever its gradient's size, so the sum moves by about ``U`` times
    the learning rate: within tens of steps the sigmoid saturates and ``p_t`` is pinned near
    one end of the sentence for most rows, where the window no longer follows the alignment.
    Dividing by ``sqrt(U)`` keeps the pre-activation's moves (and its init, ``v_p`` of variance
    ``1 / U``) of order one. Off by default: the paper's formula.

    ``q [batch..., Tq, H, D]`` and the key mask ``[batch..., H|1, Tq|1, Tk]`` (S counts each
    row's allowed keys) -> ``[batch..., H, Tq, 1]``. ``p_t / S [batch..., H, Tq]`` is sown as
    ``position_fraction`` in 'intermediates' (for diagnostics).
    """

    units: int | None = None
    divide_by_sqrt_units: bool = False

    @nn.compact
    def __call__(self, q: Array, mask: Array | None, tk: int) -> Array:
        heads, depth = q.shape[-2:]
        units = self.units or depth
        init = nn.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))
        w_p = self.param("w_position", init, (heads, depth, units))
        v_p = self.param("v_position", nn.initializers.normal(units**-0.5), (heads, units))
        hidden = jnp.tanh(jnp.einsum("...qhd,hdu->...qhu", q, w_p).astype(jnp.float32))
        logit = jnp.einsum("...qhu,hu->...hq", hidden, v_p)
        if self.divide_by_sqrt_units:
            logit = logit / jnp.sqrt(jnp.float32(units))
        fraction = jax.nn.sigmoid(logit)
        self.sow("intermediates", "position_fraction", fraction)
        fraction = fraction[..., None]
        if mask is None:
            return fraction * jnp.float32(tk)
        keys = jnp.broadcast_to(mask, (*mask.shape[:-1], tk))  # a [.., Tq, 1] mask pads no key
        return fraction * jnp.sum(keys, axis=-1, keepdims=True).astype(jnp.float32)


# Name -> factory ``make(**options) -> Positions``.
RULES: Registry = Registry("positions rule")
register = RULES.register
factory = RULES.__getitem__


register("global", Positions)
register("causal", Causal)
register("window", window)
register("window_2d", window_2d)
register("luong_local_m", luong_local_m)
register("luong_local_p", luong_local_p)

register("local_m", luong_local_m)  # shim until the kernels branch lands
register("local_p", luong_local_p)
