"""``attend``: attention as a function, for kinds whose pieces have no parameters."""

from __future__ import annotations

import inspect
from typing import Any

import jax.numpy as jnp

from attn_research.attention import presets
from attn_research.attention.compose import Attention

Array = jnp.ndarray

# The per-call arguments of an attention (mask, causal, ...), apart from its kind's options.
CALL_ARGS = tuple(
    name
    for name, p in inspect.signature(Attention.__call__).parameters.items()
    if p.kind is p.KEYWORD_ONLY
)


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
      **options: the call's arguments (``mask``, ``bias``, ``causal``, ``query_positions``,
        ``grid``, ``dropout_rate``, ``rng``, ``return_weights``: see ``compose.Attention``),
        the kind's options (``window``, ``scale``, ``block_size``, ...) and ``positions=``,
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
