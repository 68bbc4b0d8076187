"""The attention library: which positions attend x how a pair is scored x how it is computed.

Shapes: ``q [batch..., Tq, H, D]``, ``k [batch..., Tk, Hkv, D]``, ``v [batch..., Tk, Hkv, Dv]``;
boolean masks broadcastable to ``[batch..., H, Tq, Tk]`` (True = may attend). The three axes
have registries: positions (``positions.py``), score (``scores.py``) and kernel
(``kernels/``). Presets (``presets.py``) name combinations; ``resolve`` turns a preset and its
options into a frozen ``Spec`` once: ``MultiHeadAttention(4, resolve("local", {"window": 8}))``.
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
    """Attention of ``q`` over ``k``, ``v`` by the preset ``kind`` with ``options``.

    ``options`` holds the call's arguments (``compose.CALL_ARGS``), the kind's options and
    ``positions=``, ``score=``, ``kernel=`` to replace an axis. Returns ``[batch..., Tq, H, Dv]``
    in ``v.dtype`` (and float32 weights ``[batch..., H, Tq, Tk]`` with ``return_weights``).

    Raises:
      ValueError: an unknown kind or option, a score with parameters (use
        ``MultiHeadAttention``), or bad shapes/values.
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
