"""Masks: boolean, True = may attend, of rank ``[batch..., heads, q_len, kv_len]`` (any axis 1)
or rank 2 ``[q_len, kv_len]``. Other ranks are refused: right-aligned broadcasting would pair a
``[batch, q_len, kv_len]`` mask's batch axis with the heads axis.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

Array = jnp.ndarray


def logits_shape(q_shape: tuple[int, ...], k_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``[batch..., heads, q_len, kv_len]`` for q ``[batch..., Tq, H, D]``, k ``[batch..., Tk, Hkv, D]``."""
    return (*q_shape[:-3], q_shape[-2], q_shape[-3], k_shape[-3])


def as_logits_rank(name: str, x: Array | None, target: tuple[int, ...]) -> Array | None:
    """``x`` (a mask or bias, or None) given the rank of the logits shape ``target``.

    Raises:
      ValueError: naming ``name``, when ``x`` is neither rank 2 nor broadcastable to ``target``.
    """
    if x is None:
        return None
    x = jnp.asarray(x)
    layout = "[batch..., heads, q_len, kv_len]"
    if x.ndim == 2:
        x = x.reshape((1,) * (len(target) - 2) + x.shape)
    elif x.ndim != len(target):
        raise ValueError(
            f"{name} has shape {x.shape} (rank {x.ndim}) but must have rank {len(target)} "
            f"{layout} = {target}, or rank 2 [q_len, kv_len]; e.g. a [batch, q_len, kv_len] "
            f"mask needs a heads axis: {name}[:, None]"
        )
    for axis, (got, want) in enumerate(zip(x.shape, target)):
        if got not in (1, want):
            raise ValueError(
                f"{name} of shape {x.shape} does not broadcast to {layout} = {target}: "
                f"axis {axis} has size {got}, expected 1 or {want}"
            )
    return x


def causal_mask(q_len: int, kv_len: int, q_offset: int = 0) -> np.ndarray:
    """``[q_len, kv_len]`` bool: query ``i`` (at position ``q_offset + i``) sees keys ``j <= q_offset + i``."""
    return np.arange(kv_len)[None, :] <= np.arange(q_offset, q_offset + q_len)[:, None]


def padding_mask(q_valid: Array, kv_valid: Array) -> Array:
    """``[batch..., 1, q_len, kv_len]`` from ``[batch..., len]`` bool validity (True = real)."""
    return jnp.logical_and(q_valid[..., None, :, None], kv_valid[..., None, None, :])


def key_padding_mask(kv_valid: Array) -> Array:
    """``[batch..., kv_len]`` validity -> ``[batch..., 1, 1, kv_len]`` mask (every query alike)."""
    return kv_valid[..., None, None, :]


def combine(*masks: Array | None) -> Array | None:
    """Logical AND of the given masks (None entries are ignored; all None gives None)."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = jnp.logical_and(out, m)
    return out
