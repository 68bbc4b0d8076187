"""How attention is computed: the kernel registry, and ``auto``, which picks a kernel.

Every kernel evaluates the same function, ``softmax(pair(q, k) + bias, where=allowed) v``, for
projected ``q [batch..., Tq, H, D]``, ``k [batch..., Tk, Hkv, D]``, ``v [batch..., Tk, Hkv, Dv]``
and a ``Problem`` (the score's pair function, the positions rule, masks, dropout):

    dense:    the whole ``[Tq, Tk]`` logits, or ``query_chunk_size`` rows at a time, each chunk
              rematerialized in the backward pass
    chunked:  online softmax over key chunks within query chunks (Rabe & Staats 2021)
    blocked:  the static band of a window rule, O(T w), all query blocks at once
              (``blocked_kernel``)
    looped:   the same band, one query block (of grid rows) at a time in a ``lax.map``, each
              rematerialized in the backward pass: temporaries O(block w) (``looped_kernel``)
    flash_band: a 1-D window with dot-product scores, one query block at a time, with a
              hand-written FlashAttention-2 backward and CPU-friendly layouts
              (``flash_band_kernel``)
    jax_nn:   ``jax.nn.dot_product_attention`` (XLA); dot-product scores only
    cudnn:    its cuDNN flash kernel (GPU, bfloat16/float16); dot-product scores only
    pallas_band: FlashAttention-2 over a band (global, causal, window, window_2d) of dot
              products in Pallas for the GPU, skipping the key blocks outside it
              (``pallas_band_kernel``)
    splash:   JAX's splash attention (TPU Pallas): global, causal and 1-D windows of dot
              products, skipping the key blocks outside them (``splash_kernel``)
    auto:     the fastest kernel that is correct for the backend, dtype, score and rule

A kernel that cannot compute a combination raises a ValueError that says why. To add a kernel:
a function ``f(q, k, v, problem, *, return_weights, **options)`` and one ``register`` line.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from absl import logging

from attn_research.attention import blocked as blocked_lib
from attn_research.attention import (
    blocked_kernel,
    checks,
    flash_band_kernel,
    kernels,
    looped_kernel,
    pallas_band_kernel,
    positions,
    splash_kernel,
)
from attn_research.attention import masks as masks_lib
from attn_research.attention.registry import Registry

Array = jnp.ndarray

# auto: above this many bytes of float32 logits, dot-product attention runs chunked.
AUTO_CHUNKED_BYTES = 1 << 30
# auto: on a CPU, a band of more float32 logits than this (the blocked kernel's
# [batch, H, blocks, b, K']) runs looped, one block at a time; a smaller one, well under a
# millisecond either way, stays vectorized. On a GPU the vectorized form is kept.
AUTO_LOOPED_BYTES = 1 << 18
# auto: flash_band copies its inputs into its layouts (about six times the queries' bytes);
# above this many bytes of queries a CPU band runs looped instead, whose temporaries stay flat.
AUTO_FLASH_BAND_QUERY_BYTES = 1 << 27
# auto: queries per chunk for scores that build a [Tq, Tk, units] tensor (additive, concat).
AUTO_WIDE_QUERY_CHUNK = 64


@dataclasses.dataclass(frozen=True)
class Problem:
    """One attention call, apart from ``q``, ``k``, ``v``.

    Attributes:
      pair: the score's ``pair(q, k, precision=...) -> float32 logits [..., H, Tq, Tk]``.
      rule: which positions attend (``positions.Positions``).
      mask: bool at the logits' rank ``[batch..., H|1, Tq|1, Tk|1]`` (True = may attend).
      bias: float at the logits' rank, added to the logits.
      query_positions: int ``[batch..., Tq]``, or None for ``0 .. Tq - 1``.
      grid: ``(rows, cols)`` of the tokens, for rules on a grid.
      centre: the rule's predicted centre ``[batch..., H, Tq, 1]`` (``positions.Centre``).
    """

    pair: Callable[..., Array]
    rule: positions.Positions
    mask: Array | None = None
    bias: Array | None = None
    query_positions: Array | None = None
    grid: tuple[int, int] | None = None
    centre: Array | None = None
    dropout_rate: float = 0.0
    rng: Array | None = None
    precision: jax.lax.PrecisionLike = None

    def query_grid(self, tq: int) -> Array:
        """Query positions shaped to broadcast against keys: ``[Tq, 1]`` or ``[..., 1, Tq, 1]``."""
        if self.query_positions is None:
            return jnp.arange(tq)[:, None]
        return jnp.asarray(self.query_positions)[..., None, :, None]

    def allowed(self, q_pos: Array, k_pos: Array, centre: Array | None) -> Array | None:
        return self.rule.allowed(q_pos, k_pos, grid=self.grid, centre=centre)


def dense(
    q: Array,
    k: Array,
    v: Array,
    problem: Problem,
    *,
    return_weights: bool,
    query_chunk_size: int | None = None,
) -> Array | tuple[Array, Array]:
    """All logits at once, or ``query_chunk_size`` query rows at a time (a ``lax.map``)."""
    tq, tk = q.shape[-3], k.shape[-3]
    k_pos = jnp.arange(tk)

    def rows(q_c, q_pos, mask, bias, centre, rng):
        allowed = masks_lib.combine(mask, problem.allowed(q_pos, k_pos, centre))
        return kernels.einsum_attention(
            q_c,
            k,
            v,
            problem.pair,
            mask=allowed,
            bias=bias,
            dropout_rate=problem.dropout_rate,
            rng=rng,
            precision=problem.precision,
            weight=problem.rule.weight(k_pos, centre),
        )

    q_pos = problem.query_grid(tq)
    whole = (q_pos, problem.mask, problem.bias, problem.centre)
    if query_chunk_size is None or query_chunk_size >= tq:
        out, weights = rows(q, *whole, problem.rng)
        return (out, weights) if return_weights else out
    qc = checks.check_positive_int("query_chunk_size", query_chunk_size)
    nq = math.ceil(tq / qc)

    @jax.checkpoint
    def one_chunk(xs):
        q_c, index, *parts = xs
        parts = [kernels.pick(part, full) for part, full in zip(parts, whole)]
        rng = None if problem.rng is None else jax.random.fold_in(problem.rng, index)
        out, weights = rows(q_c, *parts, rng)
        return out, (weights if return_weights else None)

    split = [kernels.split_chunks(x, -2, qc, nq) for x in whole]
    xs = (kernels.split_chunks(q, -3, qc, nq), jnp.arange(nq), *split)
    out, weights = jax.lax.map(one_chunk, xs)  # [nq, ..., qc, H, Dv], [nq, ..., H, qc, Tk]
    out = jnp.moveaxis(out, 0, -4)
    out = out.reshape(*out.shape[:-4], nq * qc, *out.shape[-2:])[..., :tq, :, :]
    if not return_weights:
        return out
    weights = jnp.moveaxis(weights, 0, -3)
    return out, weights.reshape(*weights.shape[:-3], nq * qc, tk)[..., :tq, :]


def _refuse(kernel: str, problem: Problem, *, given_positions: bool, bias: bool = False) -> None:
    """ValueError for what ``kernel`` cannot compute."""
    if problem.rule.predicts_centre:
        raise ValueError(
            f"kernel {kernel!r} cannot follow positions {problem.rule.name!r}, whose window "
            "moves with a centre predicted from each query: use kernel='dense'"
        )
    if given_positions and problem.query_positions is not None:
        raise ValueError(
            f"kernel {kernel!r} takes query positions 0 .. Tq - 1 only; with query_positions "
            "(a decoding step) use kernel='dense'"
        )
    if bias and problem.bias is not None:
        raise ValueError(f"kernel {kernel!r} takes no logits bias: use kernel='dense'")


def _weights(q, k, v, problem: Problem) -> Array:
    """The dense kernel's weights, for kernels that do not form them."""
    return dense(q, k, v, dataclasses.replace(problem, dropout_rate=0.0), return_weights=True)[1]


def chunked(
    q: Array,
    k: Array,
    v: Array,
    problem: Problem,
    *,
    return_weights: bool,
    key_chunk_size: int = 512,
    query_chunk_size: int = 1024,
) -> Array | tuple[Array, Array]:
    """Online softmax over ``key_chunk_size`` keys in ``query_chunk_size`` query chunks."""
    _refuse("chunked", problem, given_positions=True)
    for name, size in (("key_chunk_size", key_chunk_size), ("query_chunk_size", query_chunk_size)):
        checks.check_positive_int(name, size)
    out = kernels.chunked_attention(
        q,
        k,
        v,
        problem.pair,
        mask=problem.mask,
        bias=problem.bias,
        allowed=lambda q_pos, k_pos: problem.allowed(q_pos, k_pos, None),
        dropout_rate=problem.dropout_rate,
        rng=problem.rng,
        key_chunk_size=key_chunk_size,
        query_chunk_size=query_chunk_size,
        precision=problem.precision,
    )
    return (out, _weights(q, k, v, problem)) if return_weights else out


def _band(kernel: str, q, k, problem: Problem, block_size) -> blocked_lib.Neighbourhood:
    """The rule's band for a banded kernel, or a ValueError that says why there is none."""
    _refuse(kernel, problem, given_positions=True, bias=True)
    geo = problem.rule.neighbourhood(q.shape[-3], k.shape[-3], problem.grid, block_size)
    if geo is None:
        raise ValueError(
            f"the {kernel} kernel needs a band of positions, and {problem.rule.name!r} is none: "
            "use kernel='dense' or 'chunked'"
        )
    return geo


def blocked(
    q: Array,
    k: Array,
    v: Array,
    problem: Problem,
    *,
    return_weights: bool,
    block_size: int | tuple[int, int] | None = None,
) -> Array | tuple[Array, Array]:
    """Dense attention on blocks of queries and their band of keys, all blocks at once."""
    geo = _band("blocked", q, k, problem, block_size)
    return blocked_kernel.windowed_attention(
        q,
        k,
        v,
        geo,
        pair=problem.pair,
        mask=problem.mask,
        dropout_rate=problem.dropout_rate,
        rng=problem.rng,
        precision=problem.precision,
        return_weights=return_weights,
    )


def _loop_band(kernel: str, q, k, problem: Problem, block_size) -> blocked_lib.Neighbourhood:
    """``_band`` for the kernels that loop over query blocks: on a sequence, ``block_size`` None
    means blocks as long as the window's wider side (within the rule's bounds), four times the
    blocked kernel's default, which makes steps too small to pay for the loop."""
    geo = _band(kernel, q, k, problem, block_size)
    if block_size is None and len(geo.blocks) == 1:
        wide = min(positions.MAX_BLOCK, max(positions.MIN_BLOCK, *geo.windows[0]))
        geo = _band(kernel, q, k, problem, wide)
    return geo


def looped(
    q: Array,
    k: Array,
    v: Array,
    problem: Problem,
    *,
    return_weights: bool,
    block_size: int | tuple[int, int] | None = None,
) -> Array | tuple[Array, Array]:
    """The blocked kernel's band, one block of queries (of grid rows) at a time; ``block_size``
    None on a sequence: see ``_loop_band``."""
    geo = _loop_band("looped", q, k, problem, block_size)
    out = looped_kernel.looped_attention(
        q,
        k,
        v,
        geo,
        pair=problem.pair,
        mask=problem.mask,
        dropout_rate=problem.dropout_rate,
        rng=problem.rng,
        precision=problem.precision,
    )
    return (out, _weights(q, k, v, problem)) if return_weights else out


def _flash_band_refusal(problem: Problem) -> str | None:
    """Why flash_band cannot compute this call, or None."""
    if not isinstance(problem.pair, kernels.ScaledDot):
        return "computes dot-product scores only"
    if type(problem.rule) is not positions.Window:
        return f"follows a 1-D window only, not {problem.rule.name!r}"
    if problem.dropout_rate > 0.0:
        return "has no attention dropout: use 'looped'"
    return None


def flash_band(
    q: Array,
    k: Array,
    v: Array,
    problem: Problem,
    *,
    return_weights: bool,
    block_size: int | None = None,
) -> Array | tuple[Array, Array]:
    """A 1-D window's band of dot products, one block of ``block_size`` queries at a time, with
    a FlashAttention-2 backward; ``block_size`` None: as the looped kernel's default."""
    why = _flash_band_refusal(problem)
    if why is not None:
        raise ValueError(f"kernel 'flash_band' {why}")
    geo = _loop_band("flash_band", q, k, problem, block_size)
    blocked_kernel.check_padding_mask(problem.mask, "flash_band")
    out = flash_band_kernel.flash_band_attention(
        q,
        k,
        v,
        window=geo.windows[0],
        block=geo.blocks[0],
        scale=problem.pair.scale,
        mask=problem.mask,
        precision=problem.precision,
    )
    return (out, _weights(q, k, v, problem)) if return_weights else out


def _with_dense_weights(kernel: Callable[..., Array]) -> Callable[..., Array]:
    """A kernel that does not form weights, given the dense kernel's when asked (one more
    pass): ``kernel(q, k, v, problem, **options)`` -> the registry's form."""

    @functools.wraps(kernel)
    def with_weights(q, k, v, problem: Problem, *, return_weights: bool, **options):
        out = kernel(q, k, v, problem, **options)
        return (out, _weights(q, k, v, problem)) if return_weights else out

    return with_weights


# cuDNN's flash attention: its head dimension (Hopper and later; 128 before) and its dtypes.
CUDNN_MAX_HEAD_DIM = 256
CUDNN_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


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
            f"window({left}, {right}): use kernel='pallas_band' or 'blocked'"
        )
    if q.shape[-3] != k.shape[-3]:
        return None, (
            f"has a sliding window for self-attention, got {q.shape[-3]} queries and "
            f"{k.shape[-3]} keys: use kernel='blocked'"
        )
    return left, None


def _jax_nn(implementation: str | None) -> Callable[..., Array]:
    name = implementation or "jax_nn"

    def kernel(q, k, v, problem: Problem, *, return_weights: bool):
        _refuse(name, problem, given_positions=False)
        if not isinstance(problem.pair, kernels.ScaledDot):
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
        out = kernels.jax_nn_attention(
            q,
            k,
            v,
            mask=mask,
            bias=problem.bias,
            causal=causal,
            scale=problem.pair.scale,
            implementation=implementation,
            local_window_size=None if left is None else (left, 0),
        )
        return (out, _weights(q, k, v, problem)) if return_weights else out

    kernel.__name__ = name
    return kernel


def _padding_only(mask: Array | None) -> bool:
    return mask is None or mask.shape[-2] == 1 or mask.shape[-1] == 1


def _accelerated(q, k, v, problem: Problem) -> tuple[str, dict[str, Any], str] | None:
    """The TPU's and the GPU's fused kernels, where they compute the call."""
    backend, rule = jax.default_backend(), problem.rule
    if backend == "tpu" and splash_kernel.refusal(problem) is None:
        why = f"{rule.name} dot products on a TPU: splash attention skips the masked key blocks"
        return "splash", {}, why
    if backend != "gpu" or not isinstance(problem.pair, kernels.ScaledDot):
        return None
    left, cudnn_why = cudnn_window(q, k, problem)
    if (
        left is not None
        and cudnn_why is None
        and problem.mask is None
        and problem.bias is None
        and problem.dropout_rate == 0.0
        and q.shape[-1] == v.shape[-1]
    ):
        return "cudnn", {}, f"a causal window of {left} in half precision: cuDNN's sliding window"
    reach = rule.reach()
    if (
        reach is not None
        and reach[0] is not None
        and pallas_band_kernel.refusal(problem, q.shape[-3], k.shape[-3]) is None
    ):
        return "pallas_band", {}, f"{rule.name} {reach} on a GPU: FlashAttention-2 over the band"
    return None


def choose(q: Array, k: Array, v: Array, problem: Problem) -> tuple[str, dict[str, Any], str]:
    """``(kernel, its options, why)``: what ``auto`` runs for this call."""
    tq, tk = q.shape[-3], k.shape[-3]
    rule = problem.rule
    if rule.predicts_centre:
        return "dense", {}, "the window follows a predicted centre"
    accelerated = _accelerated(q, k, v, problem)
    if accelerated is not None:
        return accelerated
    fixed_positions = problem.query_positions is None
    if fixed_positions and problem.bias is None and _padding_only(problem.mask):
        geo = rule.neighbourhood(tq, tk, problem.grid, None)
        if geo is not None:
            band = 4 * math.prod(q.shape[:-3]) * q.shape[-2] * geo.num_blocks * geo.block_len
            band *= geo.keys_per_block
            if jax.default_backend() == "cpu" and band > AUTO_LOOPED_BYTES:
                why = f"{rule.name} is a band of {band / 2**20:.1f} MiB of logits on a CPU"
                query_bytes = math.prod(q.shape) * jnp.dtype(q.dtype).itemsize
                if (
                    _flash_band_refusal(problem) is None
                    and query_bytes <= AUTO_FLASH_BAND_QUERY_BYTES
                ):
                    return "flash_band", {}, f"{why}, of dot products: flash backward"
                return "looped", {}, f"{why}: one block at a time"
            return "blocked", {}, f"{rule.name} is a band"
    dot = isinstance(problem.pair, kernels.ScaledDot)
    if not dot and jax.default_backend() == "gpu":
        return "dense", {}, "the naive formula on a GPU: [queries, keys, units] features at once"
    if not dot:
        return (
            "dense",
            {"query_chunk_size": AUTO_WIDE_QUERY_CHUNK},
            "the score builds [queries, keys, units] features: a few query rows at a time",
        )
    half = jnp.dtype(q.dtype) in CUDNN_DTYPES
    if (
        jax.default_backend() == "gpu"
        and half
        and rule.reach() in ((None, None), (None, 0))
        and problem.dropout_rate == 0.0
        and q.shape[-1] == v.shape[-1]
        and fixed_positions
    ):
        return "cudnn", {}, "half precision on a GPU"
    logits_bytes = 4 * math.prod(q.shape[:-3]) * q.shape[-2] * tq * tk
    if logits_bytes > AUTO_CHUNKED_BYTES and fixed_positions:
        return "chunked", {}, f"{logits_bytes / 2**30:.1f} GiB of logits"
    return "dense", {}, "the logits fit in memory"


def auto(q: Array, k: Array, v: Array, problem: Problem, *, return_weights: bool, **options):
    """Runs the kernel ``choose`` picks, and logs which and why.

    ``options`` are speed knobs of any kernel (``block_size``, ``query_chunk_size``, ...); the
    picked kernel takes those it has.
    """
    name, picked, why = choose(q, k, v, problem)
    options = {**picked, **{k: v for k, v in options.items() if k in options_of(name)}}
    logging.info(
        "attention kernel auto -> %s (%s) for q %s, k %s, %s, %s",
        name,
        why,
        q.shape,
        k.shape,
        q.dtype,
        problem.rule.name,
    )
    return KERNELS[name](q, k, v, problem, return_weights=return_weights, **options)


# Name -> ``kernel(q, k, v, problem, *, return_weights, **options)``.
KERNELS: Registry = Registry("attention kernel")
register = KERNELS.register
get = KERNELS.__getitem__


def options_of(name: str) -> tuple[str, ...]:
    """The keyword options kernel ``name`` takes (``auto``: those of every other kernel)."""
    params = inspect.signature(get(name)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return tuple(sorted({o for other in KERNELS if other != name for o in options_of(other)}))
    return tuple(p for p, s in params.items() if s.kind is s.KEYWORD_ONLY and p != "return_weights")


register("dense", dense)
register("chunked", chunked)
register("blocked", blocked)
register("looped", looped)
register("flash_band", flash_band)
register("jax_nn", _jax_nn(None))
register("cudnn", _jax_nn("cudnn"))
register("splash", _with_dense_weights(splash_kernel.splash))
register("pallas_band", _with_dense_weights(pallas_band_kernel.pallas_band))
register("auto", auto)
