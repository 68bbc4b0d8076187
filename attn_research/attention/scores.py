"""How a query-key pair is scored: the logits ``e_ij`` before the softmax.

A score's ``prepare(q [batch..., Tq, H, D], k [batch..., Tk, Hkv, D])`` returns ``(q', k',
pair)``: per-position projections, done once, and a pure ``pair(q', k')`` -> float32 logits
``[batch..., H, Tq, Tk]`` that kernels call on whole arrays, chunks or blocks.

    dot:      e_ij = scale * q_i . k_j, scale 1/sqrt(d) by default (Vaswani et al. 2017;
              scale=1 is Luong et al. 2015's dot)
    general:  e_ij = scale * q_i^T W_a k_j, scale 1 by default (Luong et al. 2015)
    additive: e_ij = w^T tanh(q_i + k_j) (Bahdanau et al. 2014); normalize=True uses
              w <- g w / ||w|| and a bias in the tanh (Salimans & Kingma 2016)
    concat:   e_ij = v_a^T tanh(W_1 q_i + W_2 k_j) (Luong et al. 2015)

dot and general take ``divide_by_sqrt_depth`` (e_ij / sqrt(d)) and ``learned_gain`` (e_ij times
a learned scalar from ``gain_init``). A dot-product pair carries its ``dot_scale``
(``dense.ScaledDot``). ``Centre`` is local-p's learned centre network. A new score is a module
and one ``register`` line that declares its options.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_research.attention.kernels import dense
from attn_research.attention.registry import Registry

Array = jnp.ndarray
Pair = Callable[[Array, Array], Array]

_INIT = nn.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))


def additive_scores(q: Array, k: Array, score_vector: Array) -> Array:
    """``e_ij = w_h^T tanh(q_i + k_j)``: ``q [batch..., Tq, H, U]``, ``k [batch..., Tk, Hkv, U]``,
    ``score_vector [H, U]`` -> float32 ``[batch..., H, Tq, Tk]``."""
    heads, kv_heads = q.shape[-2], k.shape[-2]
    q_QhgU = dense.grouped_query(q, kv_heads).astype(jnp.float32)
    k_KhU = k.astype(jnp.float32)
    features = jnp.tanh(q_QhgU[..., :, None, :, :, :] + k_KhU[..., None, :, :, None, :])
    w_hgU = score_vector.reshape(kv_heads, -1, score_vector.shape[-1]).astype(jnp.float32)
    logits = jnp.einsum("...qkhgu,hgu->...hgqk", features, w_hgU)
    return logits.reshape(*logits.shape[:-4], heads, *logits.shape[-2:])


def _depth_scaled(scale: float, depth: int, divide_by_sqrt_depth: bool) -> float:
    """``scale``, divided by ``sqrt(depth)`` if asked."""
    return scale / math.sqrt(depth) if divide_by_sqrt_depth else scale


def _check_gain_init(module: nn.Module) -> None:
    if module.gain_init <= 0:
        raise ValueError(f"gain_init: the starting gain must be > 0, got {module.gain_init}")


def _gained(module: nn.Module, q: Array) -> Array:
    """``g * q`` with a learned scalar ``g`` (init ``gain_init``) if ``module.learned_gain``:
    ``(g q) . k = g (q . k)``, so the kernels still see a dot product."""
    if not module.learned_gain:
        return q
    gain = module.param("gain", nn.initializers.constant(module.gain_init), ())
    return q * gain.astype(q.dtype)


class Dot(nn.Module):
    """``scale * q . k``; ``scale`` None is ``1 / sqrt(D)``; ``divide_by_sqrt_depth`` divides
    by ``sqrt(D)`` once more (for Luong's dot, whose scale is 1: see General); ``learned_gain``
    multiplies by a learned scalar that starts at ``gain_init`` (see ``_gained``)."""

    scale: float | None = None
    divide_by_sqrt_depth: bool = False
    learned_gain: bool = False
    gain_init: float = 1.0
    has_params = False  # without learned_gain (see ``has_params``)

    def __post_init__(self) -> None:
        _check_gain_init(self)
        super().__post_init__()

    @nn.compact
    def prepare(self, q: Array, k: Array) -> tuple[Array, Array, Pair]:
        depth = q.shape[-1]
        scale = 1.0 / math.sqrt(depth) if self.scale is None else self.scale
        pair = dense.ScaledDot(_depth_scaled(scale, depth, self.divide_by_sqrt_depth))
        return _gained(self, q), k, pair


class General(nn.Module):
    """``e_ij = scale * q_i^T W_a k_j`` with one ``W_a [D, D]`` per head (Luong et al. 2015);
    ``divide_by_sqrt_depth`` (off: the paper's score) divides by ``sqrt(D)``."""

    scale: float = 1.0
    divide_by_sqrt_depth: bool = False
    learned_gain: bool = False
    gain_init: float = 1.0
    has_params = True

    def __post_init__(self) -> None:
        _check_gain_init(self)
        super().__post_init__()

    @nn.compact
    def prepare(self, q: Array, k: Array) -> tuple[Array, Array, Pair]:
        heads, depth = q.shape[-2:]
        w_a = self.param("w_general", _INIT, (heads, depth, depth))
        q = _gained(self, jnp.einsum("...qhd,hde->...qhe", q, w_a))
        return q, k, dense.ScaledDot(_depth_scaled(self.scale, depth, self.divide_by_sqrt_depth))


class Additive(nn.Module):
    """``w^T tanh(q + k)`` over projected ``q [..., H, U]``, ``k [..., Hkv, U]``."""

    normalize: bool = False
    has_params = True

    @nn.compact
    def prepare(self, q: Array, k: Array) -> tuple[Array, Array, Pair]:
        heads, units = q.shape[-2:]
        w = self.param("score_vector", nn.initializers.normal(units**-0.5), (heads, units))
        if self.normalize:
            g = self.param(
                "score_scale", nn.initializers.constant(math.sqrt(1.0 / units)), (heads,)
            )
            b = self.param("score_bias", nn.initializers.zeros, (units,))
            w = g[:, None] * w * jax.lax.rsqrt(jnp.sum(w * w, axis=-1, keepdims=True))
            k = k + b.astype(k.dtype)
        return q, k, lambda q_, k_, precision=None: additive_scores(q_, k_, w)


class Concat(nn.Module):
    """``v_a^T tanh(W_1 q + W_2 k)``, ``units`` wide (default: the depth of ``q``)."""

    units: int | None = None
    has_params = True

    @nn.compact
    def prepare(self, q: Array, k: Array) -> tuple[Array, Array, Pair]:
        heads, depth = q.shape[-2:]
        if k.shape[-2] != heads:
            raise ValueError(f"concat scores need as many key heads as query heads, got {k.shape}")
        units = self.units or depth
        w_q = self.param("w_query", _INIT, (heads, depth, units))
        w_k = self.param("w_key", _INIT, (heads, k.shape[-1], units))
        v_a = self.param("score_vector", nn.initializers.normal(units**-0.5), (heads, units))
        q = jnp.einsum("...hd,hdu->...hu", q, w_q)
        k = jnp.einsum("...hd,hdu->...hu", k, w_k)
        return q, k, lambda q_, k_, precision=None: additive_scores(q_, k_, v_a)


class Centre(nn.Module):
    """local-p's centre ``p_t = S sigmoid(v_p^T tanh(W_p h_t))`` (Luong et al. 2015), float32;
    ``divide_by_sqrt_units`` divides the pre-sigmoid by ``sqrt(U)``.

    ``q [batch..., Tq, H, D]`` and the key mask ``[batch..., H|1, Tq|1, Tk]`` (S counts each
    row's allowed keys) -> ``[batch..., H, Tq, 1]``; sows ``position_fraction = p_t / S``.
    """

    units: int | None = None
    divide_by_sqrt_units: bool = False

    @nn.compact
    def __call__(self, q: Array, mask: Array | None, tk: int) -> Array:
        heads, depth = q.shape[-2:]
        units = self.units or depth
        init = nn.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))
        w_p = self.param("w_position", init, (heads, depth, units))
        v_p = self.param("v_position", nn.initializers.normal(units**-0.5), (heads, units))
        hidden = jnp.tanh(jnp.einsum("...qhd,hdu->...qhu", q, w_p).astype(jnp.float32))
        logit = jnp.einsum("...qhu,hu->...hq", hidden, v_p)
        if self.divide_by_sqrt_units:
            logit = logit / jnp.sqrt(jnp.float32(units))
        fraction = jax.nn.sigmoid(logit)
        self.sow("intermediates", "position_fraction", fraction)
        fraction = fraction[..., None]
        if mask is None:
            return fraction * jnp.float32(tk)
        keys = jnp.broadcast_to(mask, (*mask.shape[:-1], tk))  # a [.., Tq, 1] mask pads no key
        return fraction * jnp.sum(keys, axis=-1, keepdims=True).astype(jnp.float32)


# Name -> score module class, with the options (its fields) it takes.
SCORES: Registry = Registry("score")
register = SCORES.register
get = SCORES.__getitem__

GAINS = ("scale", "divide_by_sqrt_depth", "learned_gain", "gain_init")
register("dot", Dot, options=GAINS)
register("general", General, options=GAINS)
register("additive", Additive, options=("normalize",))
register("concat", Concat, options=("units",))


def has_params(name: str, options: Mapping[str, Any]) -> bool:
    """Whether score ``name`` with ``options`` has parameters (dot has one with learned_gain)."""
    return get(name).has_params or bool(options.get("learned_gain", False))
