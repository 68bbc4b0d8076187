"""Which positions attend: the rule a query-key pair must satisfy before it is scored.

A rule is a frozen dataclass over integer query positions ``i`` and key positions ``j``. It
answers ``allowed(i, j)``, ``causal()``, ``reach()`` (``(left, right)``, None = unbounded),
``band(tq, tk, grid)`` (its extents on the token grid, for the band kernels), ``cache_size`` and
``in_cache`` (the decode cache), ``weight(j, centre)`` (a factor after the softmax) and
``predicts_centre`` (whether ``scores.Centre`` predicts its window's centre).

    global:        every key (Bahdanau et al. 2014, Vaswani et al. 2017)
    causal:        j <= i
    window(l, r):  i - l <= j <= i + r   (Beltagy et al. 2020)
    window_2d(k):  |row_i - row_j| <= k_r // 2 and |col_i - col_j| <= k_c // 2 on the
                   token grid (Ramachandran et al. 2019)
    local_m:       |j - t| <= D, the window(D, D) around p_t = t (Luong et al. 2015)
    local_p:       |j - p_t| <= D with p_t = S sigmoid(v_p^T tanh(W_p h_t)), and the weights
                   times exp(-(j - p_t)^2 / (2 sigma^2)), sigma = D / 2 (Luong et al. 2015)

A new rule is a dataclass and one ``register`` line that declares its factory's options.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from attn_research.attention import checks
from attn_research.attention import masks as masks_lib
from attn_research.attention.registry import Registry

Array = jnp.ndarray


@dataclasses.dataclass(frozen=True)
class Band:
    """A rule's band on the token grid: per axis, the query and key extents and how far a
    query's keys reach, ``(left, right)``; no block sizes (those are a kernel's)."""

    q_grid: tuple[int, ...]
    k_grid: tuple[int, ...]
    reach: tuple[tuple[int, int], ...]


@dataclasses.dataclass(frozen=True)
class Rule:
    """The answers every rule inherits: those of a rule that restricts nothing."""

    name = "rule"
    # True for a rule whose window follows a centre predicted from the query (``scores.Centre``).
    predicts_centre = False

    def centre_mask(self, mask: Array | None, tq: int, tk: int) -> Array | None:
        """The keys a predicted centre counts (``S``): the caller's mask, within the rule's
        order."""
        del tq, tk
        return mask

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

    def causal(self) -> Rule:
        return Causal()

    def reach(self) -> tuple[int | None, int | None] | None:
        """``(left, right)`` such that the rule allows exactly ``i - left <= j <= i + right``
        (None: unbounded on that side), or None when no such pair describes it."""
        return (None, None) if type(self).allowed is Rule.allowed else None

    def check(self, tq: int, tk: int, grid: tuple[int, int] | None) -> None:
        """Raises ValueError when the rule cannot apply to ``tq`` queries and ``tk`` keys."""

    def band(self, tq: int, tk: int, grid: tuple[int, int] | None) -> Band | None:
        """The rule's static band for ``tq`` queries and ``tk`` keys when its keys are exactly
        those within reach on every grid axis, else None."""
        del tq, tk, grid
        return None

    def cache_size(self, max_len: int) -> int:
        """Keys a decoding step sees at most: the length of its key/value cache."""
        return max_len

    def in_cache(self) -> Rule:
        """The rule over the slots of a decode cache of ``max_len`` slots."""
        return self


@dataclasses.dataclass(frozen=True)
class Global(Rule):
    """Every key."""

    name = "global"


@dataclasses.dataclass(frozen=True)
class Causal(Rule):
    """``j <= i``."""

    name = "causal"

    def allowed(self, q_pos, k_pos, *, grid, centre):
        del grid, centre
        return k_pos <= q_pos

    def causal(self) -> Rule:
        return self

    def reach(self) -> tuple[int | None, int | None]:
        return None, 0


@dataclasses.dataclass(frozen=True)
class Window(Rule):
    """``i - left <= j <= i + right``."""

    left: int
    right: int
    name = "window"

    def allowed(self, q_pos, k_pos, *, grid, centre):
        del grid, centre
        return (k_pos >= q_pos - self.left) & (k_pos <= q_pos + self.right)

    def causal(self) -> Rule:
        return Window(self.left, 0)

    def reach(self) -> tuple[int, int]:
        return self.left, self.right

    def band(self, tq, tk, grid):
        del grid
        return Band((tq,), (tk,), ((self.left, self.right),))

    def cache_size(self, max_len: int) -> int:
        """``left + 1``: a causal window's step sees itself and ``left`` keys before it."""
        if self.right:
            raise ValueError(
                f"decoding sees no future keys, but the window reaches {self.right} ahead: "
                "decode with causal=True (right window 0)"
            )
        return min(self.left + 1, max_len)

    def in_cache(self) -> Rule:
        """Every filled slot: the rolling cache of ``left + 1`` keys holds the window."""
        return Global()


def window(window: int | tuple[int, int]) -> Window:
    """``window(w)`` = ``(w, w)``, or ``window((left, right))``."""
    return Window(*checks.check_window(window))


@dataclasses.dataclass(frozen=True)
class Window2D(Rule):
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
        rows, cols = checks.check_pair("grid", grid)
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

    def causal(self) -> Rule:
        raise ValueError("window_2d has no order on its grid: it cannot be causal or decoded")

    def band(self, tq, tk, grid):
        del tq, tk
        grid = tuple(self.on(grid))
        return Band(grid, grid, tuple((s // 2, s // 2) for s in self.size))

    def cache_size(self, max_len: int) -> int:
        return self.causal().cache_size(max_len)


def window_2d(window: int | tuple[int, int], grid: tuple[int, int] | None = None) -> Window2D:
    """``window_2d(k)`` = a ``k x k`` neighbourhood, or ``window_2d((k_r, k_c))``; odd sides.
    ``grid``: ``(rows, cols)`` of the tokens, if not the caller's."""
    size = checks.check_pair("window", window)
    if any(s % 2 == 0 for s in size):
        raise ValueError(f"window_2d sides must be odd (a centred neighbourhood), got {window!r}")
    return Window2D(size, None if grid is None else checks.check_pair("grid", grid))


def local_m(window: int = 10) -> Window:
    """Luong's local-m: the window ``[t - D, t + D]`` around the query's own position."""
    return Window(checks.check_positive_int("window", window), window)


@dataclasses.dataclass(frozen=True)
class LocalP(Rule):
    """``|j - p_t| <= D`` around the predicted centre ``p_t``, Gaussian-weighted (``units``,
    ``divide_position_by_sqrt_units``: ``scores.Centre``'s)."""

    half_width: int
    units: int | None = None
    divide_position_by_sqrt_units: bool = False
    is_causal: bool = False
    name = "local_p"
    predicts_centre = True

    def allowed(self, q_pos, k_pos, *, grid, centre):
        del grid
        near = jnp.abs(k_pos - centre) <= self.half_width
        return near & (k_pos <= q_pos) if self.is_causal else near

    def centre_mask(self, mask, tq, tk):
        return masks_lib.combine(mask, masks_lib.causal_mask(tq, tk)) if self.is_causal else mask

    def weight(self, k_pos, centre):
        sigma = self.half_width / 2.0
        return jnp.exp(-jnp.square(k_pos - centre) / (2.0 * sigma**2))

    def causal(self) -> Rule:
        return dataclasses.replace(self, is_causal=True)


def local_p(
    window: int = 10, units: int | None = None, divide_position_by_sqrt_units: bool = False
) -> LocalP:
    """Luong's local-p with half-width ``D = window``."""
    return LocalP(
        checks.check_positive_int("window", window), units, bool(divide_position_by_sqrt_units)
    )


# Name -> factory ``make(**options) -> Rule``, with the options it takes.
RULES: Registry = Registry("positions rule")
register = RULES.register
factory = RULES.__getitem__


register("global", Global)
register("causal", Causal)
register("window", window, options=("window",), required=("window",))
register("window_2d", window_2d, options=("window", "grid"), required=("window",))
register("local_m", local_m, options=("window",))
register("local_p", local_p, options=("window", "units", "divide_position_by_sqrt_units"))
