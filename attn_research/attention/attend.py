"""``attend``: one entry point for the attention kinds that have no parameters of their own."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from attn_research.attention import registry

Array = jnp.ndarray


def attend(
    q: Array,
    k: Array,
    v: Array,
    *,
    kind: str = "dot_product",
    mask: Array | None = None,
    causal: bool = False,
    window: int | tuple[int, int] | None = None,
    grid: tuple[int, int] | None = None,
    bias: Array | None = None,
    dropout_rate: float = 0.0,
    rng: Array | None = None,
    return_weights: bool = False,
    **options: Any,
) -> Array | tuple[Array, Array]:
    """Attention of ``q`` over ``k``, ``v`` by the kind named ``kind``.

    Args:
      q: ``[batch..., Tq, H, D]``.
      k: ``[batch..., Tk, Hkv, D]`` (``Hkv`` divides ``H``: grouped-query attention).
      v: ``[batch..., Tk, Hkv, Dv]``.
      kind: ``"dot_product"``, ``"local"`` or ``"local_2d"`` (kinds with parameters, such as
        additive and luong, are used through ``MultiHeadAttention`` or their modules).
      mask: bool, True = may attend, of rank ``len(batch) + 3`` broadcastable to
        ``[batch..., H, Tq, Tk]``, or ``[Tq, Tk]``. Local kinds take padding masks only
        (``[..., 1, Tk]`` or ``[..., Tq, 1]``).
      causal: query ``i`` sees keys ``j <= i`` (dot_product, local).
      window: local: ``w`` (= ``(w, w)``) or ``(left, right)``; query ``i`` sees keys
        ``i - left ... i + right``. local_2d: odd neighbourhood size ``k`` or ``(k_r, k_c)``.
      grid: local_2d: ``(rows, cols)`` of the row-major token grid, ``Tq = Tk = rows * cols``.
      bias: dot_product: float added to the logits, laid out like ``mask``.
      dropout_rate: attention dropout on the weights; needs ``rng``.
      rng: PRNG key for dropout.
      return_weights: also return float32 weights ``[batch..., H, Tq, Tk]`` (a dense view for
        local kinds); the output is the same either way.
      **options: the kind's other options: ``scale``, ``precision``; dot_product: ``impl``
        (``"xla"``, ``"chunked"``, ``"jax_nn"``, ``"cudnn"``), ``key_chunk_size``,
        ``query_chunk_size``; local kinds: ``block_size``.

    Returns:
      ``[batch..., Tq, H, Dv]`` in ``v.dtype`` (and the weights). Rows with no allowed key
      are zero.

    Raises:
      ValueError: unknown kind, an option the kind does not take, or bad shapes/values.
    """
    spec = registry.get(kind)
    if spec.function is None:
        raise ValueError(
            f"attention kind {kind!r} has parameters of its own; use "
            f"MultiHeadAttention(kind={kind!r}) or {spec.module.__name__}"
        )
    given = {"window": window, "grid": grid, "bias": bias, "rng": rng}
    options.update({name: value for name, value in given.items() if value is not None})
    if causal:
        options["causal"] = True
    if dropout_rate:
        options["dropout_rate"] = dropout_rate
    _, call = spec.split_options(options)
    if return_weights:
        return registry.call_with_weights(spec.function, q, k, v, mask=mask, **call)
    return spec.function(q, k, v, mask=mask, **call)
