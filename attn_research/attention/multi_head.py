"""Multi-head attention layer: projections, any attention kind, output projection.

    MultiHead(X_q, X_kv) = Concat_h(Attention(X_q W^Q_h, X_kv W^K_h, X_kv W^V_h)) W^O

(Vaswani et al. 2017), with ``Attention`` any positions x score x kernel (``presets``). The
parameters are laid out as in ``flax.linen.MultiHeadDotProductAttention`` (``query``/``key``/
``value`` kernels ``[features, heads, head_dim]``, ``out`` kernel ``[heads, head_dim,
out_features]``), so checkpoints of either load into the other.
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
    """Multi-head attention by the resolved ``attention``.

    Attributes:
      num_heads: query heads H.
      attention: a ``presets.Spec``, e.g. ``resolve("local", {"window": 32})``,
        ``resolve("local_2d", {"window": 3})``, ``resolve("dot_product", {"kernel":
        "chunked"})``, ``resolve("luong", {"score": "general", "positions": "local_p"})``.
      num_kv_heads: key/value heads (grouped-query attention); default H.
      qkv_features: total projected features, ``H * head_dim``; default the query input's.
      out_features: output features; default the query input's.
      dropout_rate: attention dropout (active when ``deterministic=False``; uses the
        'dropout' rng stream).
      sow_weights: store the float32 attention weights ``[batch..., H, Tq, Tk]`` in the
        'intermediates' collection as ``attention_weights``. The output is the same.
      decode: autoregressive decoding with a key/value cache in the 'cache' collection (the
        flax convention): ``init`` with a full-length input sizes the cache as the positions
        rule asks (``cache_size``: ``left + 1`` keys for a causal window, a rolling cache),
        then each call attends one new step over the cached keys the rule lets it see.
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
        """Writes this step's ``k``, ``v`` ``[batch..., 1, Hkv, D]`` into the cache.

        Returns None on the ``init`` call (which sizes the cache and attends normally), else
        the spec over the cache's slots, the cached keys and values ``[batch..., size, Hkv, D]``,
        the step's mask over them and its query position ``[1]``.
        """
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
        """Attends ``inputs_q [batch..., Tq, F]`` over ``inputs_kv [batch..., Tk, F_kv]``.

        Args:
          inputs_kv: keys and values' source (default: ``inputs_q``, self-attention).
          mask: bool, True = may attend, rank ``len(batch) + 3`` broadcastable to
            ``[batch..., H, Tq, Tk]`` (or ``[Tq, Tk]``).
          deterministic: disables attention dropout.
          causal, bias, query_positions, grid: as in ``compose.Attention``.

        Returns:
          ``[batch..., Tq, out_features]``.
        """
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
