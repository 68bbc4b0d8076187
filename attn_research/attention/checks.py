"""Argument checks shared by the attention kinds; each raises a ValueError naming the problem."""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp

from attn_research.attention import masks as masks_lib

Array = jnp.ndarray


def check_qkv(q: Array, k: Array, v: Array, *, same_depth: bool = True) -> int:
    """Checks ``q [batch..., Tq, H, D]``, ``k [..., Tk, Hkv, D]``, ``v [..., Tk, Hkv, Dv]``
    (floating, ``Tq, Tk >= 1``); returns ``H // Hkv``."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.ndim < 3:
            raise ValueError(
                f"{name} must be [batch..., length, heads, depth], got shape {x.shape}"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    if not (q.ndim == k.ndim == v.ndim):
        raise ValueError(f"q, k, v must have the same rank, got {q.shape}, {k.shape}, {v.shape}")
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"k {k.shape} and v {v.shape} must agree in [batch..., kv_len, kv_heads]")
    if q.shape[:-3] != k.shape[:-3]:
        raise ValueError(f"q {q.shape} and k {k.shape} must have the same batch dims")
    if not q.shape[-3] or not k.shape[-3]:
        raise ValueError(
            f"attention needs at least one query and one key, got Tq={q.shape[-3]} and "
            f"Tk={k.shape[-3]} (q {q.shape}, k {k.shape}); leave empty sequences out"
        )
    if same_depth and q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q depth {q.shape[-1]} != k depth {k.shape[-1]} (shapes {q.shape}, {k.shape})"
        )
    heads, kv_heads = q.shape[-2], k.shape[-2]
    if heads % kv_heads:
        raise ValueError(f"query heads {heads} must be a multiple of key/value heads {kv_heads}")
    return heads // kv_heads


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int, if it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int,)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints >= 1, as a pair."""
    both = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(both) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(check_positive_int(name, x) for x in both)


def check_dropout(dropout_rate: float, rng: Array | None) -> None:
    """Raises ValueError unless ``0 <= dropout_rate < 1`` and an rng is given when it is > 0."""
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
    if dropout_rate > 0.0 and rng is None:
        raise ValueError("dropout_rate > 0 needs rng (a jax.random key)")


def check_window(window: Any, *, causal: bool = False) -> tuple[int, int]:
    """A window ``w >= 1`` (``(w, w)``) or ``(left, right) >= 0`` as ``(left, right)``;
    ``causal`` sets right to 0."""
    if window is None:
        raise ValueError("window is required: an int w >= 1 or a pair (left, right)")
    if isinstance(window, (tuple, list)):
        if len(window) != 2 or any(
            isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in window
        ):
            raise ValueError(f"window must be a pair of ints (left, right) >= 0, got {window!r}")
        left, right = window
    else:
        left = right = check_positive_int("window", window)
    return left, (0 if causal else right)


def check_attention_args(
    q: Array,
    k: Array,
    v: Array,
    mask: Array | None,
    bias: Array | None,
    dropout_rate: float,
    rng: Array | None,
    scale: float | None,
) -> tuple[Array | None, Array | None, float]:
    """The shared checks; returns ``(mask, bias, scale)``, mask and bias at the logits' rank,
    scale default ``1 / sqrt(D)``."""
    check_qkv(q, k, v)
    check_dropout(dropout_rate, rng)
    target = masks_lib.logits_shape(q.shape, k.shape)
    mask = masks_lib.as_logits_rank("mask", mask, target)
    if mask is not None and mask.dtype != jnp.bool_:
        raise ValueError(f"mask must be boolean (True = may attend), got dtype {mask.dtype}")
    bias = masks_lib.as_logits_rank("bias", bias, target)
    return mask, bias, (1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
