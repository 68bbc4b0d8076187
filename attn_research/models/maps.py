"""What a model attends: the one form in which every model shows its attention.

``attention_maps(params, *inputs) -> list[AttentionMap]``, one per attention in the order
computed: float32 weights ``[B, H, Tq, Tk]`` and what each query and key position is
(``Tokens``; roles ``class``, ``register``, ``probe``, ``patch`` on a row-major ``grid``,
``source``, ``target``). An image model's last map is its ``readout``, ``[B, H, 1, T]``: how its
classifier reads the final tokens.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Tokens:
    """The positions of one side of an attention: a role per position, and their grid."""

    roles: tuple[str, ...]
    grid: tuple[int, int] | None = None

    @classmethod
    def image(cls, grid: tuple[int, int], *, prefix: tuple[str, ...] = ()) -> Tokens:
        """``prefix`` tokens (class, registers) followed by ``rows * cols`` patches."""
        return cls(prefix + ("patch",) * (grid[0] * grid[1]), tuple(grid))

    @classmethod
    def text(cls, role: str, length: int) -> Tokens:
        return cls((role,) * length)

    def __len__(self) -> int:
        return len(self.roles)

    def on_grid(self) -> np.ndarray:
        """Indices of the ``patch`` positions, in the grid's row-major order."""
        return np.flatnonzero(np.asarray(self.roles) == "patch")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["weights", "centre_fraction"],
    meta_fields=["name", "queries", "keys"],
)
@dataclasses.dataclass(frozen=True)
class AttentionMap:
    """One attention of a model: its ``name`` (``encoder/layer1``, ``readout``), float32
    ``weights [B, H, Tq, Tk]`` (rows sum to 1, or 0 with no key), ``queries`` and ``keys``, and
    local-p's ``centre_fraction`` ``p_t / S``, float32 ``[B, H, Tq]`` (else None)."""

    name: str
    weights: jax.Array
    queries: Tokens
    keys: Tokens
    centre_fraction: jax.Array | None = None

    def __post_init__(self):
        shape = getattr(self.weights, "shape", None)
        if shape is None:  # a pytree placeholder inside a jax transformation
            return
        if len(shape) != 4 or shape[-2:] != (len(self.queries), len(self.keys)):
            raise ValueError(
                f"attention map {self.name!r}: weights {shape} are not [B, H, "
                f"{len(self.queries)}, {len(self.keys)}]"
            )


def layer_maps(
    prefix: str, weights_LBHQK: jax.Array, queries: Tokens, keys: Tokens
) -> list[AttentionMap]:
    """Stacked per-layer weights ``[L, B, H, Tq, Tk]`` -> ``prefix/layer1 ... prefix/layerL``."""
    return [
        AttentionMap(f"{prefix}/layer{i + 1}", w, queries, keys)
        for i, w in enumerate(weights_LBHQK)
    ]
