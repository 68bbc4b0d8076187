"""Multi-head attention layer: projections, any registered kind, output projection.

    MultiHead(X_q, X_kv) = Concat_h(attend_kind(X_q W^Q_h, X_kv W^K_h, X_kv W^V_h)) W^O

(Vaswani et al. 2017). The parameters are laid out as in ``flax.linen.MultiHeadDotProductAttention``
(``query``/``key``/``value`` kernels ``[features, heads, head_dim]``, ``out`` kernel
``[heads, head_dim, out_features]``), so checkpoints of either load into the other.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import FrozenDict

from attn_research.attention import checks, registry
from attn_research.attention import masks as masks_lib

Array = jnp.ndarray


class MultiHeadAttention(nn.Module):
    """Multi-head attention with the kind chosen by name.

    Attributes:
      num_heads: query heads H.
      kind: a registered kind (``attn_research.attention.KINDS``).
      options: the kind's own options, e.g. ``{"window": 32}`` for local, ``{"grid": (7, 7),
        "window": 3}`` for local_2d, ``{"impl": "chunked"}`` for dot_product,
        ``{"normalize": True}`` for additive, ``{"score": "general"}`` for luong.
      num_kv_heads: key/value heads (grouped-query attention); default H.
      qkv_features: total projected features, ``H * head_dim``; default the query input's.
      out_features: output features; default the query input's.
      dropout_rate: attention dropout (active when ``deterministic=False``; uses the
        'dropout' rng stream).
      sow_weights: store the float32 attention weights ``[batch..., H, Tq, Tk]`` (dense view
        for local kinds) in the 'intermediates' collection as ``attention_weights``. The
        output is bit-identical with or without.
      decode: autoregressive decoding with a key/value cache in the 'cache' collection (the
        flax convention): ``init`` with a full-length input sizes the cache, then each call
        attends one new step over the cached ones. A step's visibility (causal, and the
        window of kind 'local') becomes a key mask over the cache, so a local step runs as
        dot_product over the visible keys; local_2d has no decoding order and is refused.
    """

    num_heads: int
    kind: str = "dot_product"
    options: Mapping[str, Any] = FrozenDict()
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

    def _decode_step(
        self, spec: registry.Kind, k: Array, v: Array, mask: Array | None, options: dict[str, Any]
    ):
        """Writes this step's ``k``, ``v`` ``[batch..., 1, Hkv, D]`` into the cache.

        Returns the kind to run, the cached keys and values ``[batch..., max_len, Hkv, D]``, the
        step's mask over them, and the kind's remaining options.
        """
        if spec.name == "local_2d":
            raise ValueError("decode=True needs a sequence kind; local_2d has no decoding order")
        initialized = self.has_variable("cache", "cached_key")
        cached_k = self.variable("cache", "cached_key", jnp.zeros, k.shape, k.dtype)
        cached_v = self.variable("cache", "cached_value", jnp.zeros, v.shape, v.dtype)
        index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
        if not initialized:  # the init call sizes the cache and attends normally
            return spec, k, v, mask, options
        if k.shape[-3] != 1:
            raise ValueError(f"decode=True attends one step at a time, got {k.shape[-3]} steps")
        step = index.value
        start = (0,) * (k.ndim - 3) + (step, 0, 0)
        cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k, start)
        cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v, start)
        index.value = step + 1
        position = jnp.arange(cached_k.value.shape[-3])
        visible = position <= step
        options = {name: value for name, value in options.items() if name != "causal"}
        if spec.name == "local":
            left, _ = checks.check_window(options.pop("window", None), causal=True)
            options.pop("block_size", None)
            visible = visible & (position >= step - left)
            spec = registry.get("dot_product")
        return (
            spec,
            cached_k.value,
            cached_v.value,
            masks_lib.combine(mask, visible[None, :]),
            options,
        )

    @nn.compact
    def __call__(
        self,
        inputs_q: Array,
        inputs_kv: Array | None = None,
        *,
        mask: Array | None = None,
        deterministic: bool = True,
        **call_options: Any,
    ) -> Array:
        """Attends ``inputs_q [batch..., Tq, F]`` over ``inputs_kv [batch..., Tk, F_kv]``.

        Args:
          inputs_kv: keys and values' source (default: ``inputs_q``, self-attention).
          mask: bool, True = may attend, rank ``len(batch) + 3`` broadcastable to
            ``[batch..., H, Tq, Tk]`` (or ``[Tq, Tk]``).
          deterministic: disables attention dropout.
          **call_options: per-call options of the kind, e.g. ``causal=True``, ``bias=...``.

        Returns:
          ``[batch..., Tq, out_features]``.
        """
        spec = registry.get(self.kind)
        fields, kind_options = spec.split_options({**self.options, **call_options})
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
            spec, k, v, mask, kind_options = self._decode_step(spec, k, v, mask, kind_options)
        if self.dropout_rate > 0.0 and not deterministic:
            kind_options.update(dropout_rate=self.dropout_rate, rng=self.make_rng("dropout"))
        kind_call = spec.function or spec.module(**fields, name=self.kind)
        if self.sow_weights:
            result, weights = registry.call_with_weights(
                kind_call, q, k, v, mask=mask, **kind_options
            )
            self.sow("intermediates", "attention_weights", weights)
        else:
            result = kind_call(q, k, v, mask=mask, **kind_options)
        return nn.DenseGeneral(
            features=self.out_features or inputs_q.shape[-1],
            axis=(-2, -1),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=self.kernel_init,
            use_bias=self.use_bias,
            name="out",
        )(result)
