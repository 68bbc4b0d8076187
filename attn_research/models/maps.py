"""What a model attends: the one form in which every model shows its attention.

A model with attention has a method ``attention_maps(params, *inputs) -> list[AttentionMap]``,
one entry per attention it computes, in the order it computes them. Evaluation, figures and the
explorer read only this form: no ``isinstance``, no sown paths.

Each map holds float32 weights ``[B, H, Tq, Tk]`` (H = 1 for a single-head attention) and says
what its query and key positions are, as ``Tokens``. Roles:

- ``class``: a class token; ``register``: a register token; ``probe``: a pooling query;
- ``patch``: a patch or feature-map cell, on ``grid`` (row-major);
- ``source``, ``target``: sentence pieces of a translator's source and target.

An image model's last map is its ``readout``: the weights ``[B, H, 1, T]`` with which its
classifier reads the final tokens (one-hot on a class token, uniform for average pooling, a
probe's attention). For an attention CNN it is its only map.
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
    """One attention of a model.

    Attributes:
      name: where it is, e.g. ``encoder/layer1``, ``decoder/cross/layer2``, ``readout``.
      weights: float32 ``[B, H, Tq, Tk]``, rows summing to 1 (0 for rows with no key).
      queries, keys: what each of the ``Tq`` and ``Tk`` positions is.
      centre_fraction: float32 ``[B, H, Tq]``, each query's predicted window centre as a
        fraction of its keys, ``p_t / S`` (Luong's local-p); None for attention without a
        position model.
    """

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
