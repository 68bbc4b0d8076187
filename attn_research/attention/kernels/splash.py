"""The splash kernel: JAX's splash attention (TPU Pallas; FlashAttention-2, Dao 2023, over a
block-sparse mask):

    out_i = sum_j softmax_j(scale * q_i . k_j, where=allowed_ij) v_j,
    allowed_ij = (i - left <= j <= i + right) AND segment(q_i) == segment(k_j),

with the rule's reach as a ``FullMask``, ``CausalMask`` or ``LocalMask`` and the caller's padding
as segment ids (valid keys 1, padded keys 0, padded queries 2). ``q [batch..., Tq, H, D]`` ->
``[batch..., Tq, H, Dv]`` in ``q.dtype``; ``q`` is scaled before the kernel, which takes no scale.
Grouped queries run its MQA form. Rows that see no key give zeros.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu import splash_attention as splash_lib

from attn_research.attention import checks
from attn_research.attention.kernels import fused

if TYPE_CHECKING:
    from attn_research.attention.kernels import Problem

Array = jnp.ndarray

# Splash attention's own defaults (``BlockSizes.get_default()``), for the forward pass and both
# backward passes.
DEFAULT_BLOCKS = splash_lib.BlockSizes.get_default()
# The TPU's lanes: key blocks and (for the segment ids of the dK/dV pass) query blocks fill
# whole lanes.
LANES = 128


def refusal(problem: Problem) -> str | None:
    """Why the splash kernel cannot compute ``problem``, or None."""
    why = fused.refusal(problem)
    if why is None and problem.rule.reach() is None:
        why = (
            f"follows global, causal and 1-D window rules (its masks), not "
            f"{problem.rule.name!r}: use kernel='band' for a 2-D window, 'dense' otherwise"
        )
    if why is None and problem.mask is not None and problem.mask.shape[-3] > 1:
        why = (
            f"takes padding shared by the heads (segment ids), got a per-head mask of shape "
            f"{problem.mask.shape}: use kernel='dense'"
        )
    return why


def _static_mask(reach: fused.Reach, shape: tuple[int, int]) -> splash_lib.Mask:
    if reach == (None, None):
        return splash_lib.FullMask(shape)
    if reach == (None, 0):
        return splash_lib.CausalMask(shape)
    return splash_lib.LocalMask(shape, reach, offset=0)


def _blocks(block_q: int, block_kv: int, block_kv_compute: int | None) -> splash_lib.BlockSizes:
    """The same blocks for the forward and both backward passes, checked against the tiles."""
    compute = block_kv if block_kv_compute is None else block_kv_compute
    for name, size in (
        ("block_q", block_q),
        ("block_kv", block_kv),
        ("block_kv_compute", compute),
    ):
        if checks.check_positive_int(name, size) % LANES:
            raise ValueError(f"splash {name} must be a multiple of {LANES}, got {size}")
    if block_kv % compute:
        raise ValueError(
            f"splash block_kv {block_kv} is not a multiple of block_kv_compute {compute}"
        )
    return splash_lib.BlockSizes(
        block_q=block_q,
        block_kv=block_kv,
        block_kv_compute=compute,
        block_q_dkv=block_q,
        block_kv_dkv=block_kv,
        block_kv_dkv_compute=compute,
        block_q_dq=block_q,
        block_kv_dq=block_kv,
    )


def _heads_first(x: Array, length: int) -> Array:
    """``[batch..., T, H, D]`` -> ``[B, H, length, D]``, zero-padded along T."""
    x = jnp.swapaxes(x.reshape(-1, *x.shape[-3:]), 1, 2)
    return jnp.pad(x, ((0, 0), (0, 0), (0, length - x.shape[2]), (0, 0)))


def splash(
    q: Array,
    k: Array,
    v: Array,
    problem: Problem,
    *,
    block_q: int = DEFAULT_BLOCKS.block_q,
    block_kv: int = DEFAULT_BLOCKS.block_kv,
    block_kv_compute: int | None = DEFAULT_BLOCKS.block_kv_compute,
    interpret: bool | None = None,
) -> Array:
    """Splash attention with ``BlockSizes`` ``block_q``, ``block_kv``, ``block_kv_compute``
    (shrunk to the padded sequence); ``interpret`` None: the interpreter unless on a TPU."""
    why = refusal(problem)
    if why is not None:
        raise ValueError(f"kernel 'splash' {why}")
    if interpret is None:
        interpret = jax.default_backend() != "tpu"
    batch, (tq, heads, depth), (tk, kv_heads) = q.shape[:-3], q.shape[-3:], k.shape[-3:-1]
    bq = min(block_q, LANES * math.ceil(tq / LANES))
    bkv = min(block_kv, LANES * math.ceil(tk / LANES))
    compute = None if block_kv_compute is None else min(block_kv_compute, bkv)
    blocks = _blocks(bq, bkv, compute)
    n_q, n_k = bq * math.ceil(tq / bq), bkv * math.ceil(tk / bkv)

    queries, keys = fused.validity(problem.mask, batch, tq, tk)  # [B, 1, T]
    segments = None  # without padding of either kind
    if problem.mask is not None or (n_q, n_k) != (tq, tk):
        segments = splash_lib.SegmentIds(
            q=jnp.pad(jnp.where(queries[:, 0], 1, 2), ((0, 0), (0, n_q - tq)), constant_values=2),
            kv=jnp.pad(keys[:, 0].astype(jnp.int32), ((0, 0), (0, n_k - tk))),
        )
    scaled = q * jnp.asarray(problem.dot_scale, q.dtype)
    q_, k_, v_ = _heads_first(scaled, n_q), _heads_first(k, n_k), _heads_first(v, n_k)

    group = heads // kv_heads
    static = _static_mask(problem.rule.reach(), (n_q, n_k))
    make = splash_lib.make_splash_mha if group == 1 else splash_lib.make_splash_mqa
    kernel = make(
        splash_lib.MultiHeadMask([static] * (heads if group == 1 else group)),
        block_sizes=blocks,
        head_shards=1,
        q_seq_shards=1,
        interpret=interpret,
    )
    if group == 1:
        out = jax.vmap(kernel)(q_, k_, v_, segments)  # [B, H, n_q, Dv]
    else:  # each key/value head with its group of query heads: [B, Hkv, G, n_q, Dv]
        q_ = q_.reshape(q_.shape[0], kv_heads, group, n_q, depth)
        per_head = jax.vmap(kernel, in_axes=(0, 0, 0, None))
        out = jax.vmap(per_head)(q_, k_, v_, segments)
    out = jnp.swapaxes(out.reshape(-1, heads, n_q, v.shape[-1])[:, :, :tq], 1, 2)
    out = fused.zero_empty_rows(out, fused.rows_with_keys(problem.rule.reach(), queries, keys))
    return out.reshape(*batch, tq, heads, v.shape[-1]).astype(q.dtype)
