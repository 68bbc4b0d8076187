"""The pallas_band kernel: FlashAttention-2 over a band (Dao 2023), in Pallas for the GPU.

    out_i = sum_j softmax_j(s_ij, where=allowed_ij) v_j,    s_ij = scale * q_i . k_j,
    allowed_ij = rule.allowed(i, j) AND valid query i AND valid key j,

one program per block of ``block_q`` queries, visiting only the key blocks within the rule's
span along the sequence (``span``). The backward rebuilds ``P = exp(S - L)`` from
``L_i = m_i + log l_i`` and applies

    dV = P^T dO,   dP = dO V^T,   dS = P * (dP - rowsum(dO * O)),
    dK = scale * dS^T Q,   dQ = scale * dS K,

in a pass per key block (dK, dV) and one per query block (dQ). ``q [batch..., Tq, H, D]``,
``k [..., Tk, Hkv, D]``, ``v [..., Tk, Hkv, Dv]`` -> ``[batch..., Tq, H, Dv]`` in ``q.dtype``;
padding masks ``[..., H|1, 1, Tk]`` or ``[..., H|1, Tq, 1]``. Depths are padded to a power of
two of at least 16 (Triton's dot). Rows that see no key give zeros.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from attn_research.attention import checks
from attn_research.attention.kernels import fused

if TYPE_CHECKING:
    from attn_research.attention.kernels import Problem
    from attn_research.attention.positions import Rule

Array = jnp.ndarray

# Pallas's GPU attention defaults (``ops.gpu.attention.BlockSizes.get_default()``): 128 x 128
# for the forward pass, 32 x 32 for the backward passes.
BLOCK, BACKWARD_BLOCK = 128, 32
MIN_TILE = 16


def _pow2(n: int) -> int:
    return max(MIN_TILE, 1 << (n - 1).bit_length())


def span(problem: Problem, tq: int, tk: int) -> fused.Reach | None:
    """How far along the sequence a query's keys can lie, ``(left, right)`` (None = unbounded):
    the rule's reach, or for a band of ``(r_rows, r_cols)`` on a row-major grid of ``cols``
    columns, ``r_rows * cols + r_cols`` each way. None: no span bounds the rule."""
    rule = problem.rule
    if rule.reach() is not None or rule.predicts_centre:
        return rule.reach()
    band = rule.band(tq, tk, problem.grid)
    if band is None or len(band.reach) != 2:
        return None
    (up, down), (left, right) = band.reach
    cols = band.k_grid[1]
    return up * cols + left, down * cols + right


def refusal(problem: Problem, tq: int, tk: int) -> str | None:
    """Why the pallas_band kernel cannot compute ``problem``, or None."""
    why = fused.refusal(problem)
    if why is None and span(problem, tq, tk) is None:
        why = (
            f"follows rules whose keys lie within a span of the sequence (global, causal, "
            f"window, window_2d), not {problem.rule.name!r}: use kernel='dense'"
        )
    return why


@dataclasses.dataclass(frozen=True)
class _Band:
    """What the kernels ask of the rule: its ``span`` along the sequence (the blocks to visit)
    and which keys each query may see (``rule.allowed`` on the ``grid``, within a block)."""

    span: fused.Reach
    rule: Rule
    grid: tuple[int, int] | None

    def key_blocks(self, i, bq: int, bk: int, nk: int):
        """Key blocks ``[lo, hi)`` that query block ``i`` reaches."""
        left, right = self.span
        lo = 0 if left is None else lax.div(jnp.maximum(i * bq - left, 0), bk)
        hi = nk if right is None else jnp.minimum(lax.div((i + 1) * bq + right + bk - 1, bk), nk)
        return lo, hi

    def query_blocks(self, j, bq: int, bk: int, nq: int):
        """Query blocks ``[lo, hi)`` that reach key block ``j``."""
        left, right = self.span
        lo = 0 if right is None else lax.div(jnp.maximum(j * bk - right, 0), bq)
        hi = nq if left is None else jnp.minimum(lax.div((j + 1) * bk + left + bq - 1, bq), nq)
        return lo, hi

    def allowed(self, q_start, k_start, bq: int, bk: int, rows, keys):
        """``[bq, bk]``: the rule, the valid queries ``rows [bq]`` and keys ``keys [bk]``."""
        q_pos, k_pos = (q_start + jnp.arange(bq))[:, None], k_start + jnp.arange(bk)
        ok = (rows > 0)[:, None] & (keys > 0)[None, :]
        rule = self.rule.allowed(q_pos, k_pos, grid=self.grid, centre=None)
        return ok if rule is None else ok & rule


def _weights(q, k, scale, lse, ok):
    """``P = exp(S - L)`` on the allowed pairs, float32 ``[bq, bk]``."""
    s = plgpu.dot(q, k, trans_b=True) * scale
    return jnp.where(ok, jnp.exp(s - lse[:, None]), 0.0)


def _forward_kernel(q_ref, k_ref, v_ref, rows_ref, keys_ref, o_ref, lse_ref, *, scale, band, bk):
    bq = q_ref.shape[0]
    i = pl.program_id(0)
    q, rows = q_ref[...], rows_ref[...]

    def step(j, carry):
        o, m, l = carry
        k, v = k_ref[pl.ds(j * bk, bk), :], v_ref[pl.ds(j * bk, bk), :]
        ok = band.allowed(i * bq, j * bk, bq, bk, rows, keys_ref[pl.ds(j * bk, bk)])
        s = jnp.where(ok, plgpu.dot(q, k, trans_b=True) * scale, -jnp.inf)
        m_next = jnp.maximum(m, jnp.max(s, axis=1))
        m_safe = jnp.where(m_next == -jnp.inf, 0.0, m_next)  # a row with no key yet
        p = jnp.where(ok, jnp.exp(s - m_safe[:, None]), 0.0)
        correction = jnp.exp(m - m_safe)
        o = correction[:, None] * o + plgpu.dot(p.astype(v.dtype), v)
        return o, m_next, correction * l + jnp.sum(p, axis=1)

    init = (
        jnp.zeros((bq, v_ref.shape[1]), jnp.float32),
        jnp.full((bq,), -jnp.inf, jnp.float32),
        jnp.zeros((bq,), jnp.float32),
    )
    o, m, l = lax.fori_loop(*band.key_blocks(i, bq, bk, k_ref.shape[0] // bk), step, init)
    some = l > 0.0
    total = jnp.where(some, l, 1.0)
    o_ref[...] = (o / total[:, None]).astype(o_ref.dtype)
    lse_ref[...] = jnp.where(some, m + jnp.log(total), 0.0)


def _dkv_kernel(
    q_ref, k_ref, v_ref, rows_ref, keys_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref,
    *, scale, band, bq,
):  # fmt: skip
    bk = k_ref.shape[0]
    j = pl.program_id(0)
    k, v, keys = k_ref[...], v_ref[...], keys_ref[...]

    def step(i, carry):
        dk, dv = carry
        queries = pl.ds(i * bq, bq)
        q, do = q_ref[queries, :], do_ref[queries, :]
        ok = band.allowed(i * bq, j * bk, bq, bk, rows_ref[queries], keys)
        p = _weights(q, k, scale, lse_ref[queries], ok)
        dv = dv + plgpu.dot(p.astype(do.dtype), do, trans_a=True)
        ds = p * (plgpu.dot(do, v, trans_b=True) - delta_ref[queries][:, None]) * scale
        return dk + plgpu.dot(ds.astype(q.dtype), q, trans_a=True), dv

    init = (jnp.zeros(dk_ref.shape, jnp.float32), jnp.zeros(dv_ref.shape, jnp.float32))
    nq = q_ref.shape[0] // bq
    dk, dv = lax.fori_loop(*band.query_blocks(j, bq, bk, nq), step, init)
    dk_ref[...], dv_ref[...] = dk, dv


def _dq_kernel(
    q_ref, k_ref, v_ref, rows_ref, keys_ref, do_ref, lse_ref, delta_ref, dq_ref,
    *, scale, band, bk,
):  # fmt: skip
    bq = q_ref.shape[0]
    i = pl.program_id(0)
    q, do, rows, lse, delta = q_ref[...], do_ref[...], rows_ref[...], lse_ref[...], delta_ref[...]

    def step(j, dq):
        k, v = k_ref[pl.ds(j * bk, bk), :], v_ref[pl.ds(j * bk, bk), :]
        ok = band.allowed(i * bq, j * bk, bq, bk, rows, keys_ref[pl.ds(j * bk, bk)])
        p = _weights(q, k, scale, lse, ok)
        ds = p * (plgpu.dot(do, v, trans_b=True) - delta[:, None]) * scale
        return dq + plgpu.dot(ds.astype(k.dtype), k)

    nk = k_ref.shape[0] // bk
    dq = lax.fori_loop(*band.key_blocks(i, bq, bk, nk), step, jnp.zeros(dq_ref.shape, jnp.float32))
    dq_ref[...] = dq


class _Specs:
    """BlockSpecs over ``[B, H, T, D]`` arrays for a grid ``(block, b, h)``: a block of the
    sequence, or the whole of it; of the query head, its key/value head, or the mask's head."""

    def __init__(self, group: int, mask_heads: int):
        self.group, self.mask_heads = group, mask_heads

    def head(self, h, kind: str):
        if kind == "kv":
            return lax.div(h, self.group)
        return h if kind == "q" or self.mask_heads > 1 else 0

    def block(self, size: int, depth: int | None, kind: str) -> pl.BlockSpec:
        """``size`` rows at block index ``n`` of the grid's first axis."""
        tail = () if depth is None else (depth,)
        return pl.BlockSpec(
            (None, None, size, *tail),
            lambda n, b, h: (b, self.head(h, kind), n, *(0,) * len(tail)),
        )

    def whole(self, length: int, depth: int | None, kind: str) -> pl.BlockSpec:
        tail = () if depth is None else (depth,)
        return pl.BlockSpec(
            (None, None, length, *tail),
            lambda n, b, h: (b, self.head(h, kind), 0, *(0,) * len(tail)),
        )


def _call(kernel, steps: int, q: Array, in_specs, outs, interpret: bool, name: str):
    """``kernel`` on the grid ``(steps, B, H)``; ``outs``: ``(spec, shape, dtype)`` per output."""
    return pl.pallas_call(
        kernel,
        grid=(steps, *q.shape[:2]),
        in_specs=in_specs,
        out_specs=[spec for spec, _, _ in outs],
        out_shape=[jax.ShapeDtypeStruct(shape, dtype) for _, shape, dtype in outs],
        compiler_params=plgpu.CompilerParams(num_warps=4, num_stages=2),
        interpret=interpret,
        name=name,
    )


def _per_query_block(specs: _Specs, bq: int, q: Array, k: Array, v: Array) -> list[pl.BlockSpec]:
    """A program per query block: its queries and their padding, every key and value."""
    tk = k.shape[2]
    return [
        specs.block(bq, q.shape[3], "q"),
        specs.whole(tk, k.shape[3], "kv"),
        specs.whole(tk, v.shape[3], "kv"),
        specs.block(bq, None, "mask"),
        specs.whole(tk, None, "mask"),
    ]


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def _band(q, k, v, rows, keys, scale, band, blocks, interpret):
    return _band_forward(q, k, v, rows, keys, scale, band, blocks, interpret)[0]


def _band_forward(q, k, v, rows, keys, scale, band, blocks, interpret):
    """``q [B, H, Tq, D]``, ``k, v [B, Hkv, Tk, D|Dv]``, ``rows [B, 1|H, Tq]``,
    ``keys [B, 1|H, Tk]`` int32 -> ``out [B, H, Tq, Dv]``, ``lse [B, H, Tq]``."""
    (batch, heads, tq, _), depth_v = q.shape, v.shape[-1]
    bq, bk = blocks[:2]
    specs = _Specs(heads // k.shape[1], rows.shape[1])
    outs = [
        (specs.block(bq, depth_v, "q"), (batch, heads, tq, depth_v), q.dtype),
        (specs.block(bq, None, "q"), (batch, heads, tq), jnp.float32),
    ]
    kernel = functools.partial(_forward_kernel, scale=scale, band=band, bk=bk)
    in_specs = _per_query_block(specs, bq, q, k, v)
    return _call(kernel, tq // bq, q, in_specs, outs, interpret, "pallas_band_forward")(
        q, k, v, rows, keys
    )


def _band_fwd(q, k, v, rows, keys, scale, band, blocks, interpret):
    out, lse = _band_forward(q, k, v, rows, keys, scale, band, blocks, interpret)
    return out, (q, k, v, rows, keys, out, lse)


def _band_bwd(scale, band, blocks, interpret, residuals, d_out):
    q, k, v, rows, keys, out, lse = residuals
    (batch, heads, tq, depth), (kv_heads, tk, depth_v) = q.shape, v.shape[1:]
    bq, bk = blocks[2:]
    delta = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)
    specs = _Specs(heads // kv_heads, rows.shape[1])
    inputs = (q, k, v, rows, keys, d_out, lse, delta)
    per_key_block = [
        specs.whole(tq, depth, "q"),
        specs.block(bk, depth, "kv"),
        specs.block(bk, depth_v, "kv"),
        specs.whole(tq, None, "mask"),
        specs.block(bk, None, "mask"),
        specs.whole(tq, depth_v, "q"),
        specs.whole(tq, None, "q"),
        specs.whole(tq, None, "q"),
    ]
    outs = [(specs.block(bk, d, "q"), (batch, heads, tk, d), jnp.float32) for d in (depth, depth_v)]
    kernel = functools.partial(_dkv_kernel, scale=scale, band=band, bq=bq)
    dk, dv = _call(kernel, tk // bk, q, per_key_block, outs, interpret, "pallas_band_dkv")(*inputs)
    per_query_block = _per_query_block(specs, bq, q, k, v) + [
        specs.block(bq, depth_v, "q"),
        specs.block(bq, None, "q"),
        specs.block(bq, None, "q"),
    ]
    outs = [(specs.block(bq, depth, "q"), q.shape, jnp.float32)]
    kernel = functools.partial(_dq_kernel, scale=scale, band=band, bk=bk)
    (dq,) = _call(kernel, tq // bq, q, per_query_block, outs, interpret, "pallas_band_dq")(*inputs)

    def grouped(g: Array) -> Array:  # [B, H, Tk, D] -> [B, Hkv, Tk, D], summed over each group
        return g.reshape(batch, kv_heads, heads // kv_heads, *g.shape[2:]).sum(axis=2)

    return dq.astype(q.dtype), grouped(dk).astype(k.dtype), grouped(dv).astype(v.dtype), None, None


_band.defvjp(_band_fwd, _band_bwd)


def _pad(x: Array, length: int, depth: int) -> Array:
    """``[batch..., T, H, D]`` -> ``[B, H, length, depth]``, zero-padded."""
    x = jnp.swapaxes(x.reshape(-1, *x.shape[-3:]), 1, 2)
    return jnp.pad(x, ((0, 0), (0, 0), (0, length - x.shape[2]), (0, depth - x.shape[3])))


def pallas_band(
    q: Array,
    k: Array,
    v: Array,
    problem: Problem,
    *,
    block_q: int = BLOCK,
    block_k: int = BLOCK,
    backward_block_q: int = BACKWARD_BLOCK,
    backward_block_k: int = BACKWARD_BLOCK,
    interpret: bool | None = None,
) -> Array:
    """FlashAttention-2 over the rule's band; ``block_q``, ``block_k`` (forward) and
    ``backward_block_q``, ``backward_block_k``: powers of two >= 16, shrunk to the padded
    sequence; ``interpret`` None: the interpreter unless on a GPU."""
    batch, (tq, heads, depth), tk, depth_v = q.shape[:-3], q.shape[-3:], k.shape[-3], v.shape[-1]
    why = refusal(problem, tq, tk)
    if why is not None:
        raise ValueError(f"kernel 'pallas_band' {why}")
    sizes = {"block_q": block_q, "block_k": block_k}
    sizes |= {"backward_block_q": backward_block_q, "backward_block_k": backward_block_k}
    for name, size in sizes.items():
        if checks.check_positive_int(name, size) < MIN_TILE or size & (size - 1):
            raise ValueError(f"pallas_band {name} must be a power of two >= {MIN_TILE}, got {size}")
    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    bq, bqb = (min(b, _pow2(tq)) for b in (block_q, backward_block_q))
    bk, bkb = (min(b, _pow2(tk)) for b in (block_k, backward_block_k))
    n_q = max(bq, bqb) * math.ceil(tq / max(bq, bqb))
    n_k = max(bk, bkb) * math.ceil(tk / max(bk, bkb))

    queries, keys = fused.validity(problem.mask, batch, tq, tk)
    rows = jnp.pad(queries.astype(jnp.int32), ((0, 0), (0, 0), (0, n_q - tq)))
    keys = jnp.pad(keys.astype(jnp.int32), ((0, 0), (0, 0), (0, n_k - tk)))
    out = _band(
        _pad(q, n_q, _pow2(depth)),
        _pad(k, n_k, _pow2(depth)),
        _pad(v, n_k, _pow2(depth_v)),
        rows,
        keys,
        float(problem.dot_scale),
        _Band(span(problem, tq, tk), problem.rule, problem.grid),
        (bq, bk, bqb, bkb),
        interpret,
    )  # [B, H, n_q, Dv']
    out = jnp.swapaxes(out[:, :, :tq, :depth_v], 1, 2)
    return out.reshape(*batch, tq, heads, depth_v)
