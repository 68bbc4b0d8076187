"""Attention benchmark: our kernels side by side with flax's, jax.nn's and naive forms.

    python -m experiments.bench_attention --json results/bench_attention.json [--quick]

In one process, for each case: the median wall time of the jitted forward pass and of the
forward+backward pass (``jax.grad`` of ``<out, c>`` for a fixed random cotangent ``c``, with
respect to every input), after compilation and one warm-up call, with ``block_until_ready``;
and the compiled functions' temporary memory (XLA's ``memory_analysis().temp_size_in_bytes``;
``temp_bytes`` is the forward+backward one). Inputs are float32 (``--dtype bfloat16``: bf16, and
on a GPU cuDNN flash attention joins the dot_product cases). The cases compared with each other
are timed in interleaved rounds (one call of each, then again), so that a change in the load
of a shared machine hits them alike. Cases:

- matmul: a jitted ``2048 x 2048 @ 2048 x 2048`` matmul, the machine's GFLOP/s on this run;
- dot_product at ``B8,T512,H8,D64`` and ``B2,T2048,H8,D64``: ours (``kernel`` dense, chunked,
  jax_nn) and ``flax.linen.dot_product_attention``;
- local, window (128, 128), ``B1,H8,D64``: ours (blocked, library default block) at
  T = 4096, 8192, 16384, our ``block_size`` 32/64/128/256 at T = 8192, and the dense-masked
  ``jax.nn.dot_product_attention(local_window_size=(128, 128))`` at T = 4096, 8192 (at 16384
  its temporary memory is only reported: cases above ``--max-temp-gib`` are compiled, not run);
- additive, ``B1,Tq1024,Tk1024,H1,U256,Dv64`` (one head: the naive form's fwd+bwd already
  needs ~2 GiB): ours (query-chunked, ``query_chunk_size`` 16/32/64/128) and a naive form
  that materializes the whole ``[B, Tq, Tk, H, U]`` tanh tensor.

It prints one table of all records, then the issue's targets with PASS/FAIL, and writes the
records as a JSON list of ``{"name", "kind", "kernel", "shape", "fwd_ms", "fwd_bwd_ms",
"temp_bytes", ...}`` (and the fastest call, ``fwd_min_ms``/``fwd_bwd_min_ms``). Timings
depend on the machine's load: each record keeps the 1-minute load average when it was
measured. The full run took 9 minutes on a shared 2-core CPU at a load average of 8-10 (12 at
12; the dense-masked jax.nn local attention at T = 8192, 30-45 s per fwd+bwd, is half of it);
``--quick`` runs tiny shapes in seconds (the smoke test).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from attn_research.attention import attend, compute, positions, scores

Array = jax.Array
Fn = Callable[..., Array]

MiB = 2**20
TIME_TOLERANCE = 1.10  # "no slower" allows 10% timing noise (the CPU is shared)
LINEARITY_TOLERANCE = 1.25  # "linear in T" allows 25% above the length ratio
NOTE_KEYS = ("window", "gflops", "note")  # extra fields shown in the table
# The query chunk that ``auto`` gives additive scores.
ADDITIVE_DEFAULT_CHUNK = compute.AUTO_WIDE_QUERY_CHUNK


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


def matmul_case(n: int) -> Case:
    return Case(
        "matmul", "matmul", "dense", (("M", n), ("K", n), ("N", n)), ((n, n), (n, n)), jnp.matmul
    )


def dot_product_kernels(dtype: str) -> tuple[str, ...]:
    """Our kernels that run here: cuDNN's only on a GPU with half-precision inputs."""
    gpu_half = jax.default_backend() == "gpu" and dtype in ("bfloat16", "float16")
    return ("dense", "chunked", "jax_nn") + (("cudnn",) if gpu_half else ())


def dot_product_cases(shape: tuple[int, int, int, int], dtype: str) -> list[Case]:
    """Ours with each kernel, then flax's, on ``q, k, v [B, T, H, D]``."""
    inputs = (shape,) * 3
    ours = [
        Case(
            f"ours[{kernel}]",
            "dot_product",
            kernel,
            bthd(*shape),
            inputs,
            lambda q, k, v, kernel=kernel: attend(q, k, v, kind="dot_product", kernel=kernel),
        )
        for kernel in dot_product_kernels(dtype)
    ]
    return ours + [
        Case("flax.linen", "dot_product", "flax", bthd(*shape), inputs, nn.dot_product_attention)
    ]


def local_cases(sizes: Sizes) -> list[Case]:
    """Ours (blocked) at every length with the dense-masked jax.nn form beside it where measured,
    then ours at each ``block_size`` at the target length."""
    b, h, d = sizes.local_bhd
    window = sizes.local_window

    def case(length: int, name: str, kernel: str, fn: Fn, *extra: tuple[str, Any]) -> Case:
        return Case(
            name,
            "local",
            kernel,
            bthd(b, length, h, d),
            ((b, length, h, d),) * 3,
            fn,
            (("window", list(window)), *extra),
        )

    def ours(length: int, block: int | None = None) -> Case:  # None: the library's default
        label = "default" if block is None else block
        return case(
            length,
            f"ours[block={label}]",
            "blocked",
            lambda q, k, v: attend(q, k, v, kind="local", window=window, block_size=block),
            ("block_size", label),
        )

    def dense(length: int) -> Case:
        return case(
            length,
            "jax.nn[local_window]",
            "jax_nn_dense",
            lambda q, k, v: jax.nn.dot_product_attention(q, k, v, local_window_size=window),
        )

    cases = []
    for length in sizes.local_lengths:
        cases += [ours(length)] + ([dense(length)] if length in sizes.local_dense_lengths else [])
    return cases + [ours(sizes.local_target_length, block) for block in sizes.local_blocks]


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
    problem = compute.Problem(pair, positions.Positions())
    return compute.dense(q, k, v, problem, return_weights=False, query_chunk_size=chunk)


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
    """The cases, in groups whose members are timed in interleaved rounds (see ``time_group``)."""
    return (
        [[matmul_case(sizes.matmul)]]
        + [dot_product_cases(s, sizes.dtype) for s in sizes.dot_shapes]
        + [local_cases(sizes), additive_cases(sizes)]
    )


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
    for p in runnable:
        if p.case.kind == "matmul":
            n = p.case.inputs[0][0]
            p.record.extra["gflops"] = round(2 * n**3 / (p.record.fwd_ms * 1e-3) / 1e9, 1)
    return [p.record for p in prepared]


# ---------------------------------------------------------------- targets


@dataclasses.dataclass(frozen=True)
class Check:
    """A ratio the issue asks about; ``passed`` None for information only."""

    what: str
    value: float | None
    goal: str
    passed: bool | None


def field_of(
    records: dict[tuple[str, str, str], Record], kind: str, name: str, shape: str, field: str
) -> float | None:
    record = records.get((kind, name, shape))
    return None if record is None else getattr(record, field)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def check(what: str, value: float | None, goal: str, ok: Callable[[float], bool] | None) -> Check:
    return Check(what, value, goal, None if ok is None or value is None else ok(value))


def dot_product_checks(get: Callable[..., float | None], sizes: Sizes) -> list[Check]:
    checks = []
    for shape in sizes.dot_shapes:
        s = shape_string(bthd(*shape))
        flax_ms = get("dot_product", "flax.linen", s, "fwd_bwd_ms")
        for kernel in ("dense", "chunked", "jax_nn"):
            value = ratio(get("dot_product", f"ours[{kernel}]", s, "fwd_bwd_ms"), flax_ms)
            target = kernel == "dense"  # the default kernel carries the target; others are shown
            checks.append(
                check(
                    f"dot_product {s}: ours[{kernel}] / flax fwd+bwd time",
                    value,
                    f"<= {TIME_TOLERANCE:.2f}" if target else "(info)",
                    (lambda r: r <= TIME_TOLERANCE) if target else None,
                )
            )
    return checks


def local_checks(get: Callable[..., float | None], sizes: Sizes) -> list[Check]:
    b, h, d = sizes.local_bhd
    shape = lambda t: shape_string(bthd(b, t, h, d))
    at = shape(sizes.local_target_length)
    ours, dense = "ours[block=default]", "jax.nn[local_window]"
    first, last = sizes.local_lengths[0], sizes.local_lengths[-1]
    linear = last / first
    return [
        check(
            f"local {at}: jax.nn dense / ours fwd+bwd time (speed-up)",
            ratio(get("local", dense, at, "fwd_bwd_ms"), get("local", ours, at, "fwd_bwd_ms")),
            ">= 8",
            lambda r: r >= 8,
        ),
        check(
            f"local {at}: jax.nn dense / ours fwd time (speed-up)",
            ratio(get("local", dense, at, "fwd_ms"), get("local", ours, at, "fwd_ms")),
            "(info)",
            None,
        ),
        check(
            f"local {at}: ours / jax.nn dense fwd+bwd temp memory",
            ratio(get("local", ours, at, "temp_bytes"), get("local", dense, at, "temp_bytes")),
            "<= 0.10",
            lambda r: r <= 0.10,
        ),
        check(
            f"local: ours fwd+bwd time T{last} / T{first}",
            ratio(
                get("local", ours, shape(last), "fwd_bwd_ms"),
                get("local", ours, shape(first), "fwd_bwd_ms"),
            ),
            f"~{linear:g} (<= {linear * LINEARITY_TOLERANCE:g})",
            lambda r: r <= linear * LINEARITY_TOLERANCE,
        ),
    ]


def additive_checks(get: Callable[..., float | None], sizes: Sizes) -> list[Check]:
    s = shape_string(additive_dims(sizes))
    ours = f"ours[qc={ADDITIVE_DEFAULT_CHUNK}]"
    return [
        check(
            f"additive {s}: {ours} / naive fwd+bwd temp memory",
            ratio(
                get("additive", ours, s, "temp_bytes"), get("additive", "naive", s, "temp_bytes")
            ),
            "<= 0.125",
            lambda r: r <= 0.125,
        ),
        check(
            f"additive {s}: {ours} / naive fwd+bwd time",
            ratio(
                get("additive", ours, s, "fwd_bwd_ms"), get("additive", "naive", s, "fwd_bwd_ms")
            ),
            f"<= {TIME_TOLERANCE:.2f}",
            lambda r: r <= TIME_TOLERANCE,
        ),
    ]


def targets(records: Sequence[Record], sizes: Sizes) -> list[Check]:
    by_key = {(r.kind, r.name, r.shape): r for r in records}
    get = lambda *key: field_of(by_key, *key)
    return dot_product_checks(get, sizes) + local_checks(get, sizes) + additive_checks(get, sizes)


def fastest(records: Sequence[Record], kind: str, option: str) -> str:
    """The sweep's fastest setting of ``option`` by fwd+bwd time, with its time and memory."""
    swept = [
        r
        for r in records
        if r.kind == kind and isinstance(r.extra.get(option), int) and r.fwd_bwd_ms is not None
    ]
    if not swept:
        return f"{kind}: no {option} sweep"
    best = min(swept, key=lambda r: r.fwd_bwd_ms)
    return (
        f"{kind} {best.shape}: fastest {option}={best.extra[option]} "
        f"({best.fwd_bwd_ms:.1f} ms fwd+bwd, {best.temp_bytes / MiB:.1f} MiB temp)"
    )


# ---------------------------------------------------------------- printing


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def records_table(records: Sequence[Record]) -> str:
    header = (
        f"{'kind':<12}{'name':<22}{'shape':<30}{'fwd ms':>10}{'fwd+bwd ms':>12}"
        f"{'(min)':>10}{'temp MiB':>10}{'load':>6}  notes"
    )
    lines = [header, "-" * len(header)]
    for r in records:
        notes = ", ".join(f"{k}={r.extra[k]}" for k in NOTE_KEYS if k in r.extra)
        mib = None if r.temp_bytes is None else r.temp_bytes / MiB
        lines.append(
            f"{r.kind:<12}{r.name:<22}{r.shape:<30}{fmt(r.fwd_ms):>10}"
            f"{fmt(r.fwd_bwd_ms):>12}{fmt(r.extra.get('fwd_bwd_min_ms')):>10}{fmt(mib):>10}"
            f"{r.extra['loadavg']:>6.1f}  {notes}"
        )
    return "\n".join(lines)


def targets_table(checks: Sequence[Check]) -> str:
    verdict = {True: "PASS", False: "FAIL", None: ""}
    width = max(len(c.what) for c in checks)
    lines = [f"{'target':<{width}}  {'value':>8}  {'goal':<18}result"]
    lines += [
        f"{c.what:<{width}}  {fmt(c.value, 3):>8}  {c.goal:<18}"
        f"{verdict[c.passed] if c.value is not None else 'not measured'}"
        for c in checks
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", required=True, help="where to write the JSON list of records")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (smoke test)")
    parser.add_argument(
        "--max-temp-gib",
        type=float,
        default=8.0,
        help="compile but do not run cases whose fwd+bwd needs more temp memory",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="input dtype (bfloat16 adds cuDNN flash attention on a GPU)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Runs every case, prints the tables, writes and returns the JSON records."""
    args = parse_args(argv)
    sizes = dataclasses.replace(QUICK if args.quick else FULL, dtype=args.dtype)
    start = time.perf_counter()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    records = []
    for group in case_groups(sizes):
        records += measure_group(group, sizes, int(args.max_temp_gib * 2**30))
        print(
            f"  {group[0].kind}: {len(group)} cases done after {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    print()
    print(records_table(records))
    print()
    print(targets_table(targets(records, sizes)))
    print()
    print(fastest(records, "local", "block_size"))
    print(fastest(records, "additive", "query_chunk_size"))
    print(
        f"\n{len(records)} cases in {time.perf_counter() - start:.0f} s, "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    out = [r.to_json() for r in records]
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
