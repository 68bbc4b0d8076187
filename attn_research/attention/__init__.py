"""The attention library: which positions attend x how a pair is scored x how it is computed.

Every attention works on ``q [batch..., Tq, H, D]``, ``k [batch..., Tk, Hkv, D]``,
``v [batch..., Tk, Hkv, Dv]`` with boolean masks broadcastable to ``[batch..., H, Tq, Tk]``
(True = may attend), and is three choices, each from its own registry:

- positions (``positions.py``): global, causal, window, window_2d, local_m, local_p;
- score (``scores.py``): dot, general, additive, concat;
- kernel (``kernels/``): dense, chunked, band, flash_band, jax_nn, cudnn, splash, pallas_band,
  auto.

Configs name presets (``presets.py``: dot_product, local, local_2d, additive, luong) and may
replace any axis; ``resolve`` turns a preset and its options into a frozen ``Spec`` once, and
the layers take the spec: ``MultiHeadAttention(4, resolve("local", {"score": "additive",
"window": 8}))``.

- ``attend(q, k, v, kind=..., **options)`` for attention without parameters;
- ``compose.Attention`` on projected q, k, v, and ``MultiHeadAttention`` with projections.

This package imports nothing else of the project.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from attn_research.attention import kernels, positions, presets, scores
from attn_research.attention.compose import CALL_ARGS, Attention
from attn_research.attention.masks import causal_mask, key_padding_mask, padding_mask
from attn_research.attention.multi_head import MultiHeadAttention
from attn_research.attention.presets import KINDS, Kind, Spec, get, register, resolve

Array = jnp.ndarray


def attend(
    q: Array, k: Array, v: Array, *, kind: str = "dot_product", **options: Any
) -> Array | tuple[Array, Array]:
    """Attention of ``q`` over ``k``, ``v`` by the kind ``kind`` with ``options``.

    Args:
      q: ``[batch..., Tq, H, D]``.
      k: ``[batch..., Tk, Hkv, D]`` (``Hkv`` divides ``H``: grouped-query attention).
      v: ``[batch..., Tk, Hkv, Dv]``.
      kind: a preset of ``presets.KINDS``; its pieces must have no parameters (the dot score;
        kinds with parameters, such as additive, run in ``MultiHeadAttention``).
      **options: the call's arguments (``compose.CALL_ARGS``: ``mask``, ``bias``, ``causal``,
        ``query_positions``, ``grid``, ``dropout_rate``, ``rng``, ``return_weights``), the
        kind's options (``window``, ``scale``, ``block_size``, ...) and ``positions=``,
        ``score=``, ``kernel=`` to replace an axis (``presets.resolve``).

    Returns:
      ``[batch..., Tq, H, Dv]`` in ``v.dtype`` (and the float32 weights ``[batch..., H, Tq, Tk]``
      with ``return_weights=True``).

    Raises:
      ValueError: an unknown kind or option, a piece with parameters, or bad shapes/values.
    """
    call = {name: options.pop(name) for name in CALL_ARGS if name in options}
    spec = presets.resolve(kind, options)
    if spec.has_params:
        raise ValueError(
            f"attention kind {kind!r} (score {spec.score!r}, positions {spec.positions.name!r}) "
            "has parameters of its own: use MultiHeadAttention or compose.Attention"
        )
    return spec.module().apply({}, q, k, v, **call)


__all__ = [
    "KINDS",
    "Attention",
    "Kind",
    "MultiHeadAttention",
    "Spec",
    "attend",
    "causal_mask",
    "get",
    "kernels",
    "key_padding_mask",
    "padding_mask",
    "positions",
    "presets",
    "register",
    "resolve",
    "scores",
]
