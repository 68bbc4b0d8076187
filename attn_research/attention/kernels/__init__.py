"""How attention is computed: the problem a kernel is given, the kernel registry, and ``auto``.

Every kernel evaluates ``softmax(pair(q, k) + bias, where=allowed) v`` for projected
``q [batch..., Tq, H, D]``, ``k [batch..., Tk, Hkv, D]``, ``v [batch..., Tk, Hkv, Dv]``:

    dense:       the whole ``[Tq, Tk]`` logits, or ``query_chunk_size`` rows at a time
    chunked:     online softmax over key chunks within query chunks (Rabe & Staats 2021)
    band:        the static band of a rule that is one, O(T w); ``loop=True``: one query block
                 at a time, rematerialized in the backward pass
    flash_band:  a band of dot products with a FlashAttention-2 backward (Dao 2023)
    jax_nn:      ``jax.nn.dot_product_attention`` (XLA); dot products only
    cudnn:       its cuDNN flash kernel (GPU, bfloat16/float16); dot products only
    splash:      JAX's splash attention (TPU Pallas) over global, causal and 1-D windows
    pallas_band: FlashAttention-2 over a band of dot products in Pallas for the GPU
    auto:        the fastest kernel that is correct for the backend, dtype, score and rule

A kernel is ``kernel(q, k, v, problem, **options) -> [batch..., Tq, H, Dv]``. It asks the rule
and the score questions, never their types, and raises a ValueError that says why it cannot
compute a call. A new kernel is a file here and one ``register`` line below.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Callable

import jax
import jax.numpy as jnp
from absl import logging

from attn_research.attention.registry import Registry

if TYPE_CHECKING:
    from attn_research.attention.positions import Rule

Array = jnp.ndarray


@dataclasses.dataclass(frozen=True)
class Problem:
    """One attention call apart from ``q``, ``k``, ``v``: the score's ``pair`` (float32 logits
    ``[..., H, Tq, Tk]``), the rule, ``mask`` (bool, True = may attend) and ``bias`` at the
    logits' rank, int ``query_positions [batch..., Tq]`` (None: ``0 .. Tq - 1``), the token
    ``grid``, the predicted ``centre [batch..., H, Tq, 1]``, dropout and precision."""

    pair: Callable[..., Array]
    rule: Rule
    mask: Array | None = None
    bias: Array | None = None
    query_positions: Array | None = None
    grid: tuple[int, int] | None = None
    centre: Array | None = None
    dropout_rate: float = 0.0
    rng: Array | None = None
    precision: jax.lax.PrecisionLike = None

    @property
    def dot_scale(self) -> float | None:
        """``s`` when the score is the dot product ``s q . k``, else None."""
        return getattr(self.pair, "dot_scale", None)

    def query_grid(self, tq: int) -> Array:
        """Query positions shaped to broadcast against keys: ``[Tq, 1]`` or ``[..., 1, Tq, 1]``."""
        if self.query_positions is None:
            return jnp.arange(tq)[:, None]
        return jnp.asarray(self.query_positions)[..., None, :, None]

    def allowed(self, q_pos: Array, k_pos: Array, centre: Array | None) -> Array | None:
        return self.rule.allowed(q_pos, k_pos, grid=self.grid, centre=centre)


def refuse(kernel: str, problem: Problem, *, query_positions: bool, bias: bool = False) -> None:
    """ValueError for what ``kernel`` cannot compute: a window that follows a predicted centre,
    and (where asked) given query positions or a logits bias."""
    if problem.rule.predicts_centre:
        raise ValueError(
            f"kernel {kernel!r} cannot follow positions {problem.rule.name!r}, whose window "
            "moves with a centre predicted from each query: use kernel='dense'"
        )
    if query_positions and problem.query_positions is not None:
        raise ValueError(
            f"kernel {kernel!r} takes query positions 0 .. Tq - 1 only; with query_positions "
            "(a decoding step) use kernel='dense'"
        )
    if bias and problem.bias is not None:
        raise ValueError(f"kernel {kernel!r} takes no logits bias: use kernel='dense'")


# Name -> ``kernel(q, k, v, problem, **options) -> out``, with its declared options.
KERNELS: Registry = Registry("attention kernel")
register = KERNELS.register
get = KERNELS.__getitem__
options_of = KERNELS.options

# The kernels, each in its own file; imported here, after Problem, which they annotate.
from attn_research.attention.kernels import (  # noqa: E402
    band,
    dense,
    flash_band,
    library,
    pallas_band,
    splash,
)

# auto: above this many bytes of float32 logits, dot-product attention runs chunked.
AUTO_CHUNKED_BYTES = 1 << 30
# auto: on a CPU, a band of more float32 logits than this (``[batch, H, blocks, b, K']``) runs
# one block at a time (loop=True); a smaller one stays vectorized. On a GPU it stays vectorized.
AUTO_LOOPED_BYTES = 1 << 18
# auto: flash_band copies its inputs into its layouts (about six times the queries' bytes);
# above this many bytes of queries a CPU band loops instead, whose temporaries stay flat.
AUTO_FLASH_BAND_QUERY_BYTES = 1 << 27
# auto: queries per chunk for scores that build a [Tq, Tk, units] tensor (additive, concat).
AUTO_WIDE_QUERY_CHUNK = 64


def dense_weights(q: Array, k: Array, problem: Problem) -> Array:
    """The float32 weights ``[batch..., H, Tq, Tk]`` of a call, before dropout, by one pass of
    the dense arithmetic."""
    return dense.dense_weights(q, k, problem)


def _padding_only(mask: Array | None) -> bool:
    return mask is None or mask.shape[-2] == 1 or mask.shape[-1] == 1


def _accelerated(q, k, v, problem: Problem) -> tuple[str, dict[str, Any], str] | None:
    """The TPU's and the GPU's fused kernels, where they compute the call."""
    backend, rule = jax.default_backend(), problem.rule
    if backend == "tpu" and splash.refusal(problem) is None:
        why = f"{rule.name} dot products on a TPU: splash attention skips the masked key blocks"
        return "splash", {}, why
    if backend != "gpu" or problem.dot_scale is None:
        return None
    left, cudnn_why = library.cudnn_window(q, k, problem)
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
        and pallas_band.refusal(problem, q.shape[-3], k.shape[-3]) is None
    ):
        return "pallas_band", {}, f"{rule.name} {reach} on a GPU: FlashAttention-2 over the band"
    return None


def _band_choice(q: Array, k: Array, problem: Problem) -> tuple[str, dict[str, Any], str] | None:
    """band (looping on a CPU when its logits are large) or flash_band, for a rule that is a
    band, with fixed query positions, no bias and a padding mask; else None."""
    if problem.query_positions is not None or problem.bias is not None:
        return None
    band_of = problem.rule.band(q.shape[-3], k.shape[-3], problem.grid)
    if band_of is None or not _padding_only(problem.mask):
        return None
    blocks = band.blocks(band_of, None, loop=False)
    geo = band.Neighbourhood(band_of.q_grid, band_of.k_grid, band_of.reach, blocks)
    logits = 4 * math.prod(q.shape[:-3]) * q.shape[-2] * geo.num_blocks * geo.block_len
    logits *= geo.keys_per_block
    name = problem.rule.name
    if jax.default_backend() != "cpu" or logits <= AUTO_LOOPED_BYTES:
        return "band", {"loop": False}, f"{name} is a band"
    why = f"{name} is a band of {logits / 2**20:.1f} MiB of logits on a CPU"
    query_bytes = math.prod(q.shape) * jnp.dtype(q.dtype).itemsize
    flash = flash_band.refusal(problem, q.shape[-3], k.shape[-3]) is None
    if flash and query_bytes <= AUTO_FLASH_BAND_QUERY_BYTES:
        return "flash_band", {}, f"{why}, of dot products: flash backward"
    return "band", {"loop": True}, f"{why}: one block at a time"


def choose(q: Array, k: Array, v: Array, problem: Problem) -> tuple[str, dict[str, Any], str]:
    """``(kernel, its options, why)``: what ``auto`` runs for this call."""
    tq, tk = q.shape[-3], k.shape[-3]
    rule = problem.rule
    if rule.predicts_centre:
        return "dense", {}, "the window follows a predicted centre"
    chosen = _accelerated(q, k, v, problem) or _band_choice(q, k, problem)
    if chosen is not None:
        return chosen
    dot = problem.dot_scale is not None
    if not dot and jax.default_backend() == "gpu":
        return "dense", {}, "the naive formula on a GPU: [queries, keys, units] features at once"
    if not dot:
        return (
            "dense",
            {"query_chunk_size": AUTO_WIDE_QUERY_CHUNK},
            "the score builds [queries, keys, units] features: a few query rows at a time",
        )
    fixed_positions = problem.query_positions is None
    if (
        jax.default_backend() == "gpu"
        and jnp.dtype(q.dtype) in library.CUDNN_DTYPES
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


def auto(q: Array, k: Array, v: Array, problem: Problem, **options: Any) -> Array:
    """Runs the kernel ``choose`` picks with the ``options`` it declares, and logs why."""
    name, picked, why = choose(q, k, v, problem)
    options = {**picked, **{k: v for k, v in options.items() if k in options_of(name)}}
    logging.info(
        "attention kernel auto -> %s%s (%s) for q %s, k %s, %s, %s",
        name,
        "".join(f" {key}={value}" for key, value in picked.items()),
        why,
        q.shape,
        k.shape,
        q.dtype,
        problem.rule.name,
    )
    return get(name)(q, k, v, problem, **options)


register("dense", dense.dense, options=("query_chunk_size",))
register("chunked", dense.chunked, options=("key_chunk_size", "query_chunk_size"))
register("band", band.band, options=("block_size", "loop"))
register("flash_band", flash_band.flash_band, options=("block_size",))
register("jax_nn", library.library_kernel(None))
register("cudnn", library.library_kernel("cudnn"))
register("splash", splash.splash, options=("block_q", "block_kv", "block_kv_compute", "interpret"))
register(
    "pallas_band",
    pallas_band.pallas_band,
    options=("block_q", "block_k", "backward_block_q", "backward_block_k", "interpret"),
)
register("auto", auto, options=None)
