"""Scaled dot-product attention (Vaswani et al. 2017, "Attention is all you need").

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + bias, where=mask) V

Multi-head and grouped-query (fewer key/value heads than query heads, Ainslie et al. 2023),
with padding and causal masks, an additive bias and attention dropout. The kernel that
evaluates it is chosen by ``impl`` (see ``kernels``); every kernel gives the same result.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attn_research.attention import checks, kernels
from attn_research.attention import masks as masks_lib

Array = jnp.ndarray

IMPLS = ("xla", "chunked", "jax_nn", "cudnn")


def dot_product_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: Array | None = None,
    bias: Array | None = None,
    causal: bool = False,
    scale: float | None = None,
    dropout_rate: float = 0.0,
    rng: Array | None = None,
    impl: str = "xla",
    key_chunk_size: int = 512,
    query_chunk_size: int = 1024,
    precision: jax.lax.PrecisionLike = None,
    return_weights: bool = False,
) -> Array | tuple[Array, Array]:
    """softmax(q k^T * scale + bias, where=mask) v over all keys.

    Args:
      q: ``[batch..., Tq, H, D]`` queries.
      k: ``[batch..., Tk, Hkv, D]`` keys; ``H`` must be a multiple of ``Hkv``.
      v: ``[batch..., Tk, Hkv, Dv]`` values.
      mask: bool, True = may attend; rank ``len(batch) + 3`` broadcastable to
        ``[batch..., H, Tq, Tk]``, or ``[Tq, Tk]``.
      bias: float added to the logits, same layout as ``mask``.
      causal: query ``i`` sees only keys ``j <= i``.
      scale: logit scale, default ``1 / sqrt(D)``.
      dropout_rate: attention dropout on the weights (needs ``rng``).
      rng: PRNG key for dropout.
      impl: kernel: ``"xla"`` (einsums), ``"chunked"`` (memory-efficient online softmax over
        ``key_chunk_size`` keys and ``query_chunk_size`` queries at a time), ``"jax_nn"``
        (``jax.nn.dot_product_attention``), ``"cudnn"`` (its cuDNN flash kernel; GPU, bf16/f16).
      precision: matmul precision for the einsum kernels.
      return_weights: also return the ``[batch..., H, Tq, Tk]`` float32 weights (before
        dropout). The output is the same with or without them.

    Returns:
      ``[batch..., Tq, H, Dv]`` in ``v.dtype`` (and the weights if asked). Rows whose keys are
      all masked are zero.
    """
    mask, bias, scale = checks.check_attention_args(q, k, v, mask, bias, dropout_rate, rng, scale)
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl in ("jax_nn", "cudnn") and dropout_rate > 0.0:
        raise ValueError(f"impl={impl!r} has no attention dropout; use impl='xla' or 'chunked'")
    tq, tk = q.shape[-3], k.shape[-3]
    causal_part = masks_lib.causal_mask(tq, tk)[(None,) * (q.ndim - 2)] if causal else None
    dense_mask = masks_lib.combine(mask, causal_part)
    weights = None
    if impl == "xla":
        out, weights = kernels.einsum_attention(
            q,
            k,
            v,
            mask=dense_mask,
            bias=bias,
            scale=scale,
            dropout_rate=dropout_rate,
            rng=rng,
            precision=precision,
        )
    elif impl == "chunked":
        out = kernels.chunked_attention(
            q,
            k,
            v,
            mask=mask,
            bias=bias,
            causal=causal,
            scale=scale,
            dropout_rate=dropout_rate,
            rng=rng,
            key_chunk_size=key_chunk_size,
            query_chunk_size=query_chunk_size,
            precision=precision,
        )
    else:
        out = kernels.jax_nn_attention(
            q,
            k,
            v,
            mask=mask,
            bias=bias,
            causal=causal,
            scale=scale,
            implementation="cudnn" if impl == "cudnn" else None,
        )
    if not return_weights:
        return out
    if weights is None:
        _, weights = kernels.einsum_attention(
            q, k, v, mask=dense_mask, bias=bias, scale=scale, precision=precision
        )
    return out, weights
