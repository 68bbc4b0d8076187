"""Luong attention for RNN decoders (Luong, Pham & Manning 2015, "Effective approaches to
attention-based neural machine translation").

Scores of the current decoder state ``h_t`` against encoder states ``h_s``:

    dot:     score = h_t^T h_s
    general: score = h_t^T W_a h_s
    concat:  score = v_a^T tanh(W_a [h_t; h_s])  (= v_a^T tanh(W_1 h_t + W_2 h_s))

Alignment ``a_t(s) = softmax_s(score)`` over

    global:  every source position;
    local_m: the window ``[p_t - D, p_t + D]`` with ``p_t = t`` (monotonic);
    local_p: the window around ``p_t = S * sigmoid(v_p^T tanh(W_p h_t))`` (S = source length),
             and ``a_t(s)`` is then multiplied by ``exp(-(s - p_t)^2 / (2 sigma^2))``, ``sigma = D/2``.

The context is ``c_t = sum_s a_t(s) h_s``. Works per head on ``[batch..., T, H, D]`` arrays like
every kind here (an RNN decoder uses ``H = 1``), for one decoder step (``Tq = 1``) or many.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_research.attention import additive, checks
from attn_research.attention import masks as masks_lib
from attn_research.attention import softmax as softmax_lib

Array = jnp.ndarray

SCORES = ("dot", "general", "concat")
ALIGNS = ("global", "local_m", "local_p")


class LuongAttention(nn.Module):
    """Luong attention; ``score`` in SCORES, ``align`` in ALIGNS, half-window ``window`` = D.

    ``units`` is the hidden size of the concat score and of local_p's position network
    (default: the depth of ``q``).
    """

    score: str = "dot"
    align: str = "global"
    window: int = 10
    units: int | None = None

    def _check(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"luong score must be one of {SCORES}, got {self.score!r}")
        if self.align not in ALIGNS:
            raise ValueError(f"luong align must be one of {ALIGNS}, got {self.align!r}")
        checks.check_positive_int("window", self.window)

    def _scores(self, q: Array, k: Array) -> Array:
        """float32 logits ``[batch..., H, Tq, Tk]``."""
        heads, depth = q.shape[-2:]
        init = nn.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))
        if self.score == "concat":
            units = self.units or depth
            w_q = self.param("w_query", init, (heads, depth, units))
            w_k = self.param("w_key", init, (heads, depth, units))
            v_a = self.param("score_vector", nn.initializers.normal(units**-0.5), (heads, units))
            logits = additive.additive_scores(
                jnp.einsum("...hd,hdu->...hu", q, w_q), jnp.einsum("...hd,hdu->...hu", k, w_k), v_a
            )
            return logits.reshape(*logits.shape[:-4], heads, *logits.shape[-2:])
        if self.score == "general":
            q = jnp.einsum(
                "...qhd,hde->...qhe", q, self.param("w_general", init, (heads, depth, depth))
            )
        return jnp.einsum("...qhd,...khd->...hqk", q, k, preferred_element_type=jnp.float32)

    def _position(self, q: Array, allowed: Array, tk: int, query_positions: Array | None) -> Array:
        """Aligned source position ``p_t``, float32 ``[batch..., H|1, Tq, 1]``."""
        if self.align == "local_m":
            t = jnp.arange(q.shape[-3]) if query_positions is None else query_positions
            return jnp.asarray(t, jnp.float32)[..., None, :, None]
        heads, depth = q.shape[-2:]
        units = self.units or depth
        w_p = self.param(
            "w_position",
            nn.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,)),
            (heads, depth, units),
        )
        v_p = self.param("v_position", nn.initializers.normal(units**-0.5), (heads, units))
        hidden = jnp.tanh(jnp.einsum("...qhd,hdu->...qhu", q, w_p).astype(jnp.float32))
        fraction = jax.nn.sigmoid(jnp.einsum("...qhu,hu->...hq", hidden, v_p))[..., None]
        keys = jnp.broadcast_to(
            allowed, (*allowed.shape[:-1], tk)
        )  # a [.., Tq, 1] mask pads no key
        return fraction * jnp.sum(keys, axis=-1, keepdims=True).astype(jnp.float32)

    @nn.compact
    def __call__(
        self,
        q: Array,
        k: Array,
        v: Array,
        *,
        mask: Array | None = None,
        causal: bool = False,
        dropout_rate: float = 0.0,
        rng: Array | None = None,
        query_positions: Array | None = None,
        return_weights: bool = False,
    ) -> Array | tuple[Array, Array]:
        """Context vectors ``[batch..., Tq, H, Dv]`` for decoder states ``q [batch..., Tq, H, D]``.

        Args:
          k, v: encoder states ``[batch..., Tk, H, D]`` (usually ``k = v``).
          mask: bool, True = may attend, broadcastable to ``[batch..., H, Tq, Tk]``; the source
            length S of local_p counts the allowed keys of each row.
          causal: query ``i`` sees keys ``j <= i``.
          query_positions: ``[batch..., Tq]`` target positions t for local_m (default 0..Tq-1).
          return_weights: also return the ``[batch..., H, Tq, Tk]`` float32 alignment.
        """
        self._check()
        mask, _, _ = checks.check_attention_args(q, k, v, mask, None, dropout_rate, rng, 1.0)
        if k.shape[-2] != q.shape[-2]:
            raise ValueError(
                f"luong attention needs as many key heads as query heads, got {k.shape} and {q.shape}"
            )
        tq, tk = q.shape[-3], k.shape[-3]
        allowed = masks_lib.combine(mask, masks_lib.causal_mask(tq, tk) if causal else None)
        logits = self._scores(q, k)
        gaussian = None
        if self.align != "global":
            if allowed is None:
                allowed = jnp.ones((1,) * (q.ndim - 3) + (1, 1, tk), bool)
            p_t = self._position(q, allowed, tk, query_positions)
            distance = jnp.arange(tk, dtype=jnp.float32) - p_t
            allowed = allowed & (jnp.abs(distance) <= self.window)
            if self.align == "local_p":
                sigma = self.window / 2.0
                gaussian = jnp.exp(-jnp.square(distance) / (2.0 * sigma**2))
        weights = softmax_lib.masked_softmax(logits, allowed)
        if gaussian is not None:
            weights = weights * gaussian
        dropped = softmax_lib.dropout(weights, dropout_rate, rng)
        out = jnp.einsum(
            "...hqk,...khd->...qhd", dropped.astype(v.dtype), v, preferred_element_type=jnp.float32
        ).astype(v.dtype)
        return (out, weights) if return_weights else out
