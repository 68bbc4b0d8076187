"""The library kernels: ``jax.nn.dot_product_attention`` (XLA) and its cuDNN flash kernel, for
dot-product scores; the rule goes in as a causal flag, cuDNN's sliding window ``(left, 0)`` or a
mask."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import jax
import jax.numpy as jnp

from attn_research.attention import kernels
from attn_research.attention import masks as masks_lib

if TYPE_CHECKING:
    from attn_research.attention.kernels import Problem

Array = jnp.ndarray

# cuDNN's flash attention: its head dimension (Hopper and later; 128 before) and its dtypes.
CUDNN_MAX_HEAD_DIM = 256
CUDNN_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def jax_nn_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: Array | None,
    bias: Array | None,
    causal: bool,
    scale: float,
    implementation: str | None = None,
    local_window_size: tuple[int, int] | None = None,
) -> Array:
    """``jax.nn.dot_product_attention`` over flattened batch dims (``implementation``: None =
    XLA, ``"cudnn"``; ``local_window_size=(left, right)``), with rows that see no key set to
    zero rather than jax.nn's mean of the values."""
    if v.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"jax.nn.dot_product_attention needs values as deep as the queries, got "
            f"{v.shape[-1]} and {q.shape[-1]}: use impl='xla' or 'chunked'"
        )
    batch = q.shape[:-3]

    def flat(x):
        return x.reshape((-1, *x.shape[len(batch) :]))

    # cuDNN takes masks and biases only with the full [Tq, Tk] extent.
    tail = q.shape[-3], k.shape[-3]

    def flat_logits(x):
        if x is None:
            return None
        full = x.shape[-2:] if implementation != "cudnn" else tail
        return flat(jnp.broadcast_to(x, (*batch, x.shape[-3], *full)))

    out = jax.nn.dot_product_attention(
        flat(q),
        flat(k),
        flat(v),
        bias=flat_logits(bias),
        mask=flat_logits(mask),
        scale=scale,
        is_causal=causal,
        local_window_size=local_window_size,
        implementation=implementation,
    ).reshape(*batch, *q.shape[-3:-1], v.shape[-1])
    if mask is not None:
        allowed = mask
        if causal:
            allowed = allowed & masks_lib.causal_mask(q.shape[-3], k.shape[-3])
        if local_window_size is not None:
            q_pos, k_pos = jnp.arange(q.shape[-3])[:, None], jnp.arange(k.shape[-3])
            left, right = local_window_size
            allowed = allowed & (k_pos >= q_pos - left) & (k_pos <= q_pos + right)
        has_key_HQ = jnp.any(allowed, axis=-1)  # [..., H|1, Tq|1]
        out = jnp.where(jnp.swapaxes(has_key_HQ, -1, -2)[..., None], out, 0)
    return out


def cudnn_window(q, k, problem: Problem) -> tuple[int | None, str | None]:
    """``(left, why)``: ``left`` when cuDNN runs the call as its causal sliding window
    (``window(left, 0)``), None for a rule it runs with a mask; ``why`` it cannot, or None."""
    depth = q.shape[-1]
    if jnp.dtype(q.dtype) not in CUDNN_DTYPES:
        return None, f"runs bfloat16 or float16 only, got {q.dtype}"
    if depth > CUDNN_MAX_HEAD_DIM or depth % 8:
        return None, (
            f"takes a head dimension that is a multiple of 8 and at most {CUDNN_MAX_HEAD_DIM}, "
            f"got {depth}"
        )
    reach = problem.rule.reach()
    if reach is None or reach[0] is None or problem.query_positions is not None:
        return None, None
    left, right = reach
    if right:
        return None, (
            f"has a sliding window that reaches back only (window(left, 0)), got "
            f"window({left}, {right}): use kernel='pallas_band' or 'band'"
        )
    if q.shape[-3] != k.shape[-3]:
        return None, (
            f"has a sliding window for self-attention, got {q.shape[-3]} queries and "
            f"{k.shape[-3]} keys: use kernel='band'"
        )
    return left, None


def library_kernel(implementation: str | None) -> Callable[..., Array]:
    """The kernel ``(q, k, v, problem) -> out`` of jax.nn's ``implementation`` (None: XLA)."""
    name = implementation or "jax_nn"

    def kernel(q: Array, k: Array, v: Array, problem: Problem) -> Array:
        kernels.refuse(name, problem, query_positions=False)
        if problem.dot_scale is None:
            raise ValueError(f"kernel {name!r} computes dot-product scores only")
        if problem.dropout_rate > 0.0:
            raise ValueError(f"kernel {name!r} has no attention dropout: use 'dense' or 'chunked'")
        left = None
        if implementation == "cudnn":
            left, why = cudnn_window(q, k, problem)
            if why is not None:
                raise ValueError(f"kernel 'cudnn' {why}")
        causal = problem.rule.reach() == (None, 0) or left is not None
        causal = causal and problem.query_positions is None
        mask = problem.mask
        if not causal:
            rule = problem.allowed(problem.query_grid(q.shape[-3]), jnp.arange(k.shape[-3]), None)
            target = masks_lib.logits_shape(q.shape, k.shape)
            mask = masks_lib.combine(mask, masks_lib.as_logits_rank("positions", rule, target))
        return jax_nn_attention(
            q,
            k,
            v,
            mask=mask,
            bias=problem.bias,
            causal=causal,
            scale=problem.dot_scale,
            implementation=implementation,
            local_window_size=None if left is None else (left, 0),
        )

    kernel.__name__ = name
    return kernel
