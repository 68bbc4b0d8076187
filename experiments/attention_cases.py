"""The attention benchmark's cases and their measurement (``bench_attention`` runs them).

A ``Case`` is one jitted attention call at one shape; ``measure_group`` compiles the cases that
are compared with each other, times them in interleaved rounds and returns one ``Record`` each
(times, compiled temporaries, the load average, and for attention the rate of useful FLOPs
against the matmul peak timed in the same rounds). See ``bench_attention`` for the list.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from attn_research.attention import attend, kernels, positions, scores
from attn_research.attention.kernels import band, dense

Array = jax.Array
Fn = Callable[..., Array]

MiB = 2**20
# Records' kernel labels for kernels run with options of their own: label -> (kernel, options).
KERNEL_LABELS = {"band(loop=True)": ("band", {"loop": True})}
# The query chunk that ``auto`` gives additive scores.
ADDITIVE_DEFAULT_CHUNK = kernels.AUTO_WIDE_QUERY_CHUNK


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The shapes one run measures (``FULL`` or ``QUICK``)."""

    matmul: int
    dot_shapes: tuple[tuple[int, int, int, int], ...]  # (B, T, H, D)
    local_bhd: tuple[int, int, int]
    local_window: tuple[int, int]
    local_lengths: tuple[int, ...]  # ours; the middle one is the target length
    local_dense_lengths: tuple[int, ...]  # jax.nn dense-masked
    local_blocks: tuple[int, ...]  # block_size sweep at the target length
    additive: tuple[int, int, int, int, int]  # (B, T, H, U, Dv), Tq = Tk = T
    additive_chunks: tuple[int, ...]
    time_budget_s: float  # timing rounds per group ~ budget / one round, within [min, max]
    min_repeats: int
    max_repeats: int
    dtype: str = "float32"  # of every input (``--dtype``)

    @property
    def local_target_length(self) -> int:
        return self.local_lengths[len(self.local_lengths) // 2]


FULL = Sizes(
    matmul=2048,
    dot_shapes=((8, 512, 8, 64), (2, 2048, 8, 64)),
    local_bhd=(1, 8, 64),
    local_window=(128, 128),
    local_lengths=(4096, 8192, 16384),
    local_dense_lengths=(4096, 8192, 16384),
    local_blocks=(32, 64, 128, 256),
    additive=(1, 1024, 1, 256, 64),
    additive_chunks=(16, 32, 64, 128),
    time_budget_s=10.0,
    min_repeats=3,
    max_repeats=10,
)
QUICK = Sizes(
    matmul=64,
    dot_shapes=((1, 32, 2, 8),),
    local_bhd=(1, 2, 8),
    local_window=(8, 8),
    local_lengths=(64, 128, 256),
    local_dense_lengths=(64, 128),
    local_blocks=(8, 16),
    additive=(1, 32, 1, 16, 8),
    additive_chunks=(8, 16),
    time_budget_s=0.01,
    min_repeats=2,
    max_repeats=3,
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One function to measure on random inputs of the given shapes."""

    name: str
    kind: str
    kernel: str
    dims: tuple[tuple[str, int], ...]  # ("B", 8), ("T", 512), ...: the record's shape string
    inputs: tuple[tuple[int, ...], ...]
    fn: Fn
    extra: tuple[tuple[str, Any], ...] = ()
    useful_flops: float | None = None  # of forward+backward (``attention_flops``)

    @property
    def shape(self) -> str:
        return shape_string(self.dims)


@dataclasses.dataclass
class Record:
    """What one case measured; ``fwd_ms``/``fwd_bwd_ms`` are None for a case not run."""

    name: str
    kind: str
    kernel: str
    shape: str
    fwd_ms: float | None
    fwd_bwd_ms: float | None
    temp_bytes: int | None
    fwd_temp_bytes: int | None
    repeats: int
    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        return {**{k: v for k, v in fields.items() if k != "extra"}, **self.extra}


# ---------------------------------------------------------------- cases


def shape_string(dims: Sequence[tuple[str, int]]) -> str:
    """``(("B", 8), ("T", 512))`` -> ``"B8,T512"``."""
    return ",".join(f"{axis}{size}" for axis, size in dims)


def bthd(b: int, t: int, h: int, d: int) -> tuple[tuple[str, int], ...]:
    return (("B", b), ("T", t), ("H", h), ("D", d))


def attention_flops(b: int, h: int, pairs: int, d: int) -> float:
    """Useful FLOPs of softmax attention's forward+backward over ``pairs`` query-key pairs per
    head: the matmuls only, each a multiply-add per pair and feature. Forward ``QK^T`` and
    ``PV`` (2 x 2 x pairs x D); backward ``dP = dO V^T``, ``dV = P^T dO``, ``dQ = dS K``,
    ``dK = dS^T Q`` (4 x 2 x pairs x D): ``12 B H pairs D`` in all, with no recomputation and no
    overlap of blocks counted (the convention of FlashAttention's FLOP counts)."""
    return 12.0 * b * h * pairs * d


def band_pairs(length: int, window: tuple[int, int]) -> int:
    """Query-key pairs of a ``(left, right)`` window over ``length`` tokens, edges clipped."""
    i = np.arange(length)
    return int((np.minimum(i, window[0]) + np.minimum(length - 1 - i, window[1]) + 1).sum())


def peak_case(n: int, group: int) -> Case:
    """The f32 matmul ``n x n @ n x n`` timed with group ``group``: the peak its cases are
    compared with."""
    return Case(
        f"matmul[group {group}]",
        "matmul",
        "dense",
        (("M", n), ("K", n), ("N", n)),
        ((n, n), (n, n)),
        jnp.matmul,
    )


def attend_by_label(label: str, kind: str, **options: Any) -> Fn:
    """``attend`` of ``kind`` by the kernel a record's ``label`` names (``KERNEL_LABELS``)."""
    kernel, extra = KERNEL_LABELS.get(label, (label, {}))
    return lambda q, k, v: attend(q, k, v, kind=kind, kernel=kernel, **extra, **options)


def dot_product_kernels(dtype: str) -> tuple[str, ...]:
    """Our kernels that run here: cuDNN's only on a GPU with half-precision inputs."""
    gpu_half = jax.default_backend() == "gpu" and dtype in ("bfloat16", "float16")
    return ("dense", "chunked", "jax_nn") + (("cudnn",) if gpu_half else ())


def dot_product_cases(shape: tuple[int, int, int, int], dtype: str) -> list[Case]:
    """Ours with each kernel, then flax's, on ``q, k, v [B, T, H, D]``."""
    inputs = (shape,) * 3
    b, t, h, d = shape
    flops = attention_flops(b, h, t * t, d)
    ours = [
        Case(
            f"ours[{kernel}]",
            "dot_product",
            kernel,
            bthd(*shape),
            inputs,
            lambda q, k, v, kernel=kernel: attend(q, k, v, kind="dot_product", kernel=kernel),
            useful_flops=flops,
        )
        for kernel in dot_product_kernels(dtype)
    ]
    flax = Case(
        "flax.linen",
        "dot_product",
        "flax",
        bthd(*shape),
        inputs,
        nn.dot_product_attention,
        useful_flops=flops,
    )
    return ours + [flax]


def dot_product_part_cases(shape: tuple[int, int, int, int]) -> list[Case]:
    """The dense kernel's three steps alone, on ``[B, T, H, D]`` inputs: where its time goes.

    ``qk``: the logits ``q k^T`` (``dense.dot_logits``); ``softmax``: of ``[B, H, T, T]`` float32
    logits; ``pv``: the weights times the values (``dense.weighted_values``). Each matmul is
    half of ``attention_flops``: ``2 B H T^2 D`` FLOPs forward and twice that backward.
    """
    b, t, h, d = shape
    dims = bthd(*shape)
    matmul_flops = attention_flops(b, h, t * t, d) / 2
    return [
        Case(
            "part[qk]",
            "dot_product_parts",
            "dense",
            dims,
            (shape, shape),
            lambda q, k: dense.dot_logits(q, k, 1.0),
            useful_flops=matmul_flops,
        ),
        Case(
            "part[softmax]",
            "dot_product_parts",
            "dense",
            dims,
            ((b, h, t, t),),
            lambda logits: jax.nn.softmax(logits, axis=-1),
        ),
        Case(
            "part[pv]",
            "dot_product_parts",
            "dense",
            dims,
            ((b, h, t, t), shape),
            dense.weighted_values,
            useful_flops=matmul_flops,
        ),
    ]


def _local_case(
    sizes: Sizes, length: int, name: str, kernel: str, fn: Fn, *extra: tuple[str, Any]
) -> Case:
    b, h, d = sizes.local_bhd
    return Case(
        name,
        "local",
        kernel,
        bthd(b, length, h, d),
        ((b, length, h, d),) * 3,
        fn,
        (("window", list(sizes.local_window)), *extra),
        attention_flops(b, h, band_pairs(length, sizes.local_window), d),
    )


def local_cases(sizes: Sizes) -> list[Case]:
    """Ours (``auto``: flash_band on a CPU) at every length, then ours at each ``block_size``
    and the band kernel with ``loop=True`` at the target length."""
    window = sizes.local_window

    def ours(length: int, block: int | None = None, kernel: str = "auto") -> Case:
        label = "default" if block is None else block  # None: the library's default
        return _local_case(
            sizes,
            length,
            f"ours[block={label}]" if kernel == "auto" else f"{kernel}[block={label}]",
            kernel,
            attend_by_label(kernel, "local", window=window, block_size=block),
            ("block_size", label),
        )

    target = sizes.local_target_length
    return (
        [ours(length) for length in sizes.local_lengths]
        + [ours(target, block) for block in sizes.local_blocks]
        + [ours(target, None, "band(loop=True)")]
    )


def local_dense_cases(sizes: Sizes) -> list[Case]:
    """jax.nn's dense-masked window at ``local_dense_lengths``, in rounds of their own: its
    gigabytes of temporaries slow down whatever runs next in a round (docs/attention.md)."""
    window = sizes.local_window
    return [
        _local_case(
            sizes,
            length,
            "jax.nn[local_window]",
            "jax_nn_dense",
            lambda q, k, v: jax.nn.dot_product_attention(q, k, v, local_window_size=window),
        )
        for length in sizes.local_dense_lengths
    ]


def local_part_cases(sizes: Sizes) -> list[Case]:
    """The local band's logits matmul alone, in the two layouts of its kernels: where the time
    of a band kernel goes on a CPU.

    At the target length, with blocks of ``band.MAX_BLOCK`` queries and their slabs of
    ``b + left + right`` keys, batched over blocks and heads: ``rows`` is the looping band's
    ``[b, D] x [S, D]`` (depth minor, as the inputs come), ``depth-major`` flash_band's
    ``[D, S] x [D, b]``. Same FLOPs, ``2 X b S D``; read their forward times (flash_band
    differentiates by hand, so the backward of this form is not the kernel's).
    """
    b_, h, d = sizes.local_bhd
    block = min(band.MAX_BLOCK, sizes.local_target_length)
    slab = block + sum(sizes.local_window)
    batch = b_ * h * math.ceil(sizes.local_target_length / block)
    dims = (("X", batch), ("b", block), ("S", slab), ("D", d))

    def case(name: str, inputs: tuple[tuple[int, ...], ...], spec: str) -> Case:
        fn = lambda x, y: jnp.einsum(spec, x, y, preferred_element_type=jnp.float32)
        return Case(name, "local_parts", "flash_band", dims, inputs, fn)

    return [
        case("part[qk rows]", ((batch, block, d), (batch, slab, d)), "xqd,xkd->xqk"),
        case("part[qk depth-major]", ((batch, d, slab), (batch, d, block)), "xdk,xdq->xqk"),
    ]


def naive_additive(q: Array, k: Array, v: Array, score_vector: Array) -> Array:
    """Bahdanau attention written out: the whole ``[B, Tq, Tk, H, U]`` tanh tensor at once."""
    features_BQKHU = jnp.tanh(q[:, :, None, :, :] + k[:, None, :, :, :])
    logits_BHQK = jnp.einsum("bqkhu,hu->bhqk", features_BQKHU, score_vector)
    weights_BHQK = jax.nn.softmax(logits_BHQK, axis=-1)
    return jnp.einsum("bhqk,bkhd->bqhd", weights_BHQK, v)


def additive_dims(sizes: Sizes) -> tuple[tuple[str, int], ...]:
    b, t, h, u, dv = sizes.additive
    return (("B", b), ("Tq", t), ("Tk", t), ("H", h), ("U", u), ("Dv", dv))


def ours_additive(q: Array, k: Array, v: Array, score_vector: Array, chunk: int) -> Array:
    """Additive scores, global positions, the dense kernel in query chunks of ``chunk``."""
    pair = lambda q, k, precision=None: scores.additive_scores(q, k, score_vector)
    problem = kernels.Problem(pair, positions.Global())
    return dense.dense(q, k, v, problem, query_chunk_size=chunk)


def additive_cases(sizes: Sizes) -> list[Case]:
    """The naive form, then ours at each query chunk size (and at the library default)."""
    b, t, h, u, dv = sizes.additive
    score_vector = (
        jnp.asarray(np.random.default_rng(1).standard_normal((h, u), np.float32)) / u**0.5
    )
    dims = additive_dims(sizes)
    inputs = ((b, t, h, u), (b, t, h, u), (b, t, h, dv))
    naive = Case(
        "naive",
        "additive",
        "naive",
        dims,
        inputs,
        lambda q, k, v: naive_additive(q, k, v, score_vector),
    )
    chunks = sorted({*sizes.additive_chunks, ADDITIVE_DEFAULT_CHUNK})
    return [naive] + [
        Case(
            f"ours[qc={c}]",
            "additive",
            "query_chunked",
            dims,
            inputs,
            lambda q, k, v, c=c: ours_additive(q, k, v, score_vector, c),
            (("query_chunk_size", c),),
        )
        for c in chunks
    ]


def case_groups(sizes: Sizes) -> list[list[Case]]:
    """The cases, in groups whose members are timed in interleaved rounds (see ``time_group``),
    each with the matmul whose rate is its cases' peak."""
    groups = [dot_product_cases(s, sizes.dtype) for s in sizes.dot_shapes] + [
        dot_product_part_cases(sizes.dot_shapes[0]),
        local_cases(sizes),
        local_dense_cases(sizes),
        local_part_cases(sizes),
        additive_cases(sizes),
    ]
    return [[peak_case(sizes.matmul, i)] + group for i, group in enumerate(groups)]


# ---------------------------------------------------------------- measuring


def random_inputs(
    shapes: Sequence[tuple[int, ...]], dtype: str, seed: int = 0
) -> tuple[Array, ...]:
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.standard_normal(s, np.float32), dtype) for s in shapes)


def fwd_bwd(fn: Fn, n_inputs: int) -> Fn:
    """``(*inputs, cotangent) -> gradients`` of ``<fn(*inputs), cotangent>`` w.r.t. every input."""

    def loss(*args: Array) -> Array:
        *inputs, cotangent = args
        return jnp.vdot(fn(*inputs), cotangent)

    return jax.grad(loss, argnums=tuple(range(n_inputs)))


def temp_bytes(compiled: jax.stages.Compiled) -> int | None:
    analysis = compiled.memory_analysis()
    return None if analysis is None else int(analysis.temp_size_in_bytes)


@dataclasses.dataclass(eq=False)
class Prepared:
    """A case compiled on its inputs: forward ``fwd(*inputs)``, gradients ``grad(*inputs, ct)``."""

    case: Case
    inputs: tuple[Array, ...]
    cotangent: Array
    fwd: jax.stages.Compiled
    grad: jax.stages.Compiled
    record: Record

    def run(self, which: str) -> float:
        """Seconds for one call of ``"fwd"`` or ``"grad"``, until its result is ready."""
        fn, args = (
            (self.fwd, self.inputs)
            if which == "fwd"
            else (self.grad, (*self.inputs, self.cotangent))
        )
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        return time.perf_counter() - start


def prepare(case: Case, dtype: str) -> Prepared:
    """Compiles the case's forward and forward+backward and records their temporary memory."""
    inputs = random_inputs(case.inputs, dtype)
    (cotangent,) = random_inputs([jax.eval_shape(case.fn, *inputs).shape], dtype, seed=1)
    fwd = jax.jit(case.fn).lower(*inputs).compile()
    grad = jax.jit(fwd_bwd(case.fn, len(inputs))).lower(*inputs, cotangent).compile()
    record = Record(
        case.name,
        case.kind,
        case.kernel,
        case.shape,
        None,
        None,
        temp_bytes(grad),
        temp_bytes(fwd),
        0,
        {**dict(case.extra), "dtype": dtype},
    )
    return Prepared(case, inputs, cotangent, fwd, grad, record)


def time_group(group: Sequence[Prepared], sizes: Sizes) -> None:
    """Median fwd and fwd+bwd times of every member, filled into its record.

    After one warm-up call of each, the members are called in turn, round after round, so a
    change in the machine's load (it is shared) hits all of them alike and their ratios stay
    fair. Rounds: ``time_budget_s`` / (one round's time), within ``[min_repeats, max_repeats]``.
    """
    if not group:
        return
    one_round = sum(p.run("fwd") + p.run("grad") for p in group)
    repeats = min(
        sizes.max_repeats, max(sizes.min_repeats, math.ceil(sizes.time_budget_s / one_round))
    )
    seconds = {id(p): ([], []) for p in group}
    for _ in range(repeats):
        for p in group:
            seconds[id(p)][0].append(p.run("fwd"))
            seconds[id(p)][1].append(p.run("grad"))
    load = round(os.getloadavg()[0], 2)
    for p in group:
        fwd_s, grad_s = seconds[id(p)]
        p.record.fwd_ms, p.record.fwd_bwd_ms = (1e3 * statistics.median(t) for t in (fwd_s, grad_s))
        p.record.repeats = repeats
        p.record.extra.update(
            fwd_min_ms=1e3 * min(fwd_s), fwd_bwd_min_ms=1e3 * min(grad_s), loadavg=load
        )


def measure_group(cases: Sequence[Case], sizes: Sizes, max_temp_bytes: int) -> list[Record]:
    """Compiles every case; times those whose fwd+bwd temporary memory is within the limit."""
    prepared = [prepare(case, sizes.dtype) for case in cases]
    runnable = [p for p in prepared if (p.record.temp_bytes or 0) <= max_temp_bytes]
    for p in prepared:
        if p not in runnable:  # identity: Prepared has eq=False
            p.record.extra.update(
                loadavg=round(os.getloadavg()[0], 2),
                note=(f"not run: fwd+bwd temp > --max-temp-gib {max_temp_bytes / 2**30:g}"),
            )
    time_group(runnable, sizes)
    peak = None
    for p in runnable:
        if p.case.kind == "matmul":
            n = p.case.inputs[0][0]
            peak = 2 * n**3 / (p.record.fwd_ms * 1e-3) / 1e9
            p.record.extra["gflops"] = round(peak, 1)
    for p in runnable:
        if p.case.useful_flops is not None:
            rate = p.case.useful_flops / (p.record.fwd_bwd_ms * 1e-3) / 1e9
            p.record.extra.update(useful_gflop=p.case.useful_flops / 1e9, gflops=round(rate, 1))
            if peak:
                p.record.extra["peak_fraction"] = round(rate / peak, 4)
    return [p.record for p in prepared]
