"""Multi-head attention (Vaswani et al. 2017) with any positions x score x kernel:

    MultiHead(X_q, X_kv) = Concat_h(Attention(X_q W^Q_h, X_kv W^K_h, X_kv W^V_h)) W^O

Parameters laid out as ``flax.linen.MultiHeadDotProductAttention``'s, so checkpoints load in
either.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import FrozenDict

from attn_research.attention import masks as masks_lib
from attn_research.attention import presets

Array = jnp.ndarray


class MultiHeadAttention(nn.Module):
    """Multi-head attention by the resolved ``attention`` (a ``presets.Spec``).

    Attributes:
      num_kv_heads: key/value heads (grouped-query attention); default ``num_heads``.
      qkv_features, out_features: default the query input's features.
      dropout_rate: attention dropout when ``deterministic=False`` ('dropout' rng).
      sow_weights: sow float32 weights ``[batch..., H, Tq, Tk]`` as ``attention_weights``.
      decode: one step at a time over a key/value cache in the 'cache' collection, sized by
        the rule's ``cache_size`` when ``init`` sees a full-length input.
    """

    num_heads: int
    attention: presets.Spec = presets.resolve("dot_product")
    num_kv_heads: int | None = None
    qkv_features: int | None = None
    out_features: int | None = None
    dropout_rate: float = 0.0
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()
    sow_weights: bool = False
    decode: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.attention, presets.Spec):
            raise ValueError(
                f"attention must be a resolved presets.Spec (attention.resolve(kind, options)), "
                f"got {self.attention!r}"
            )
        super().__post_init__()

    def _heads(self, features: int) -> tuple[int, int, int]:
        """``(H, Hkv, head_dim)``, with the errors a bad configuration deserves."""
        heads = self.num_heads
        kv_heads = heads if self.num_kv_heads is None else self.num_kv_heads
        if heads < 1 or kv_heads < 1:
            raise ValueError(f"num_heads ({heads}) and num_kv_heads ({kv_heads}) must be >= 1")
        if features % heads:
            raise ValueError(f"num_heads {heads} does not divide the features {features}")
        if heads % kv_heads:
            raise ValueError(f"num_kv_heads {kv_heads} does not divide num_heads {heads}")
        return heads, kv_heads, features // heads

    def _decode_step(self, spec: presets.Spec, causal: bool, k: Array, v: Array, mask):
        """Writes this step's ``k``, ``v`` ``[batch..., 1, Hkv, D]`` into the cache; returns None
        on ``init``, else the spec over the slots, the cached keys and values, the step's mask
        and its query position ``[1]``."""
        rule = spec.positions.causal() if causal else spec.positions
        initialized = self.has_variable("cache", "cached_key")
        size = rule.cache_size(k.shape[-3])
        shape = (*k.shape[:-3], size, *k.shape[-2:])
        cached_k = self.variable("cache", "cached_key", jnp.zeros, shape, k.dtype)
        cached_v = self.variable(
            "cache", "cached_value", jnp.zeros, shape[:-1] + v.shape[-1:], v.dtype
        )
        index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
        if not initialized:
            return None
        if k.shape[-3] != 1:
            raise ValueError(f"decode=True attends one step at a time, got {k.shape[-3]} steps")
        step, size = index.value, cached_k.value.shape[-3]
        start = (0,) * (k.ndim - 3) + (step % size, 0, 0)
        cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k, start)
        cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v, start)
        index.value = step + 1
        filled = jnp.arange(size) <= step
        spec = dataclasses.replace(
            spec, positions=rule.in_cache(), kernel="dense", kernel_options=FrozenDict()
        )
        return (
            spec,
            cached_k.value,
            cached_v.value,
            masks_lib.combine(mask, filled[None, :]),
            step[None],
        )

    @nn.compact
    def __call__(
        self,
        inputs_q: Array,
        inputs_kv: Array | None = None,
        *,
        mask: Array | None = None,
        deterministic: bool = True,
        causal: bool = False,
        bias: Array | None = None,
        query_positions: Array | None = None,
        grid: tuple[int, int] | None = None,
    ) -> Array:
        """Attends ``inputs_q [batch..., Tq, F]`` over ``inputs_kv`` (default ``inputs_q``) ->
        ``[batch..., Tq, out_features]``; ``mask``, ``causal``, ``bias``, ``query_positions``,
        ``grid`` as in ``compose.Attention``."""
        spec = self.attention
        inputs_kv = inputs_q if inputs_kv is None else inputs_kv
        features = self.qkv_features or inputs_q.shape[-1]
        heads, kv_heads, head_dim = self._heads(features)
        dense = functools.partial(
            nn.DenseGeneral,
            axis=-1,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=self.kernel_init,
            use_bias=self.use_bias,
        )
        q = dense(features=(heads, head_dim), name="query")(inputs_q)
        k = dense(features=(kv_heads, head_dim), name="key")(inputs_kv)
        v = dense(features=(kv_heads, head_dim), name="value")(inputs_kv)
        if self.decode:
            step = self._decode_step(spec, causal, k, v, mask)
            if step is not None:
                spec, k, v, mask, query_positions = step
                causal = False
        dropout = {}
        if self.dropout_rate > 0.0 and not deterministic:
            dropout = dict(dropout_rate=self.dropout_rate, rng=self.make_rng("dropout"))
        result = spec.module(name="attention")(
            q,
            k,
            v,
            mask=mask,
            bias=bias,
            causal=causal,
            query_positions=query_positions,
            grid=grid,
            return_weights=self.sow_weights,
            **dropout,
        )
        if self.sow_weights:
            result, weights = result
            self.sow("intermediates", "attention_weights", weights)
        return nn.DenseGeneral(
            features=self.out_features or inputs_q.shape[-1],
            axis=(-2, -1),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=self.kernel_init,
            use_bias=self.use_bias,
            name="out",
        )(result)
