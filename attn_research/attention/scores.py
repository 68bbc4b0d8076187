"""How a query-key pair is scored: the logits ``e_ij`` before the softmax.

A score is a Flax module whose ``prepare`` is called once per attention on
``q [batch..., Tq, H, D]`` and ``k [batch..., Tk, Hkv, D]``. It returns ``(q', k', pair)``: the per-position projections it
needs (done once, on the whole sequences) and a pure function ``pair(q', k') -> logits``,
float32 ``[batch..., H, Tq, Tk]``, that the kernels call on whole arrays, on chunks or on
blocks of neighbours (any leading axes are batch axes).

    dot:      e_ij = scale * q_i . k_j, scale 1/sqrt(d) by default (Vaswani et al. 2017;
              scale=1 is Luong et al. 2015's dot)
    general:  e_ij = scale * q_i^T W_a k_j, scale 1 by default (Luong et al. 2015)
    (dot and general: divide_by_sqrt_depth=True divides e_ij by sqrt(d) too; opt-in, see General;
    learned_gain=True multiplies e_ij by a learned scalar g, initialized to gain_init (1 by
    default): TF's LuongAttention(scale=True), Keras' Attention(use_scale=True))
    additive: e_ij = w^T tanh(q_i + k_j) (Bahdanau et al. 2014, where q = W s, k = U h come from
              the caller's projections); normalize=True uses w <- g w / ||w|| and a bias b in
              the tanh (Salimans & Kingma 2016's weight normalization, as TF-Addons)
    concat:   e_ij = v_a^T tanh(W_1 q_i + W_2 k_j) = v_a^T tanh(W_a [q_i; k_j]) (Luong et al. 2015)

A pair function that is a dot product carries its ``dot_scale`` (``dense.ScaledDot``), which
the kernels that compute dot products only ask for. ``Centre`` is local-p's learned centre
network (Luong et al. 2015), beside the scores as the other learned piece of an attention.

To add a score: a module here (or in its own file) and one ``register`` line below that
declares its options.
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
    """``e_ij = w_h^T tanh(q_i + k_j)`` for every head.

    Args:
      q: ``[batch..., Tq, H, U]``; k: ``[batch..., Tk, Hkv, U]``; score_vector: ``[H, U]``.

    Returns:
      float32 logits ``[batch..., H, Tq, Tk]``.
    """
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
    """``g * q`` with the learned scalar ``g`` (init ``module.gain_init``) if
    ``module.learned_gain``, else ``q``.

    ``(g q) . k = g (q . k)``: the gain scales the logits and the kernels still see a dot
    product. Divided by sqrt(d), a dot or general score starts soft; the gain lets training
    sharpen it without growing the states' norms, and ``gain_init`` sets how soft it starts.
    """
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
    """``e_ij = scale * q_i^T W_a k_j`` with one ``W_a [D, D]`` per head (Luong et al. 2015).

    ``divide_by_sqrt_depth`` (off by default: the paper's score) divides the logits by
    ``sqrt(D)`` as Vaswani et al. 2017 do for dot products (why: docs/attention.md).
    """

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
    """local-p's aligned position ``p_t = S sigmoid(v_p^T tanh(W_p h_t))``, float32 (Luong et
    al. 2015), or ``S sigmoid(v_p^T tanh(W_p h_t) / sqrt(U))`` with ``divide_by_sqrt_units``.

    ``divide_by_sqrt_units`` is off by default: the paper's formula (why it exists:
    docs/attention.md).

    ``q [batch..., Tq, H, D]`` and the key mask ``[batch..., H|1, Tq|1, Tk]`` (S counts each
    row's allowed keys) -> ``[batch..., H, Tq, 1]``. ``p_t / S [batch..., H, Tq]`` is sown as
    ``position_fraction`` in 'intermediates' (for diagnostics).
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
