"""Train-step benchmark: our Transformer and ViT against same-size peers with flax's attention.

    python -m experiments.bench --json results/bench.json [--dtype bfloat16] [--remat none]
        [--unroll 4] [--quick]

In one process:
- the f32 matmul peak of this run (a jitted 2048^3 matmul), the yardstick for FLOP rates. It
  is timed in the same interleaved rounds as each model's steps, and each model's fraction of
  the peak uses the peak of its own rounds: the machine's speed drifts (docs/benchmarks.md);
- a Transformer encoder train step (token embedding, pre-LN blocks, per-token softmax head,
  adam), the Transformer translator's train step (encoder-decoder, teacher forcing) and a ViT
  train step, each built twice: with our ``MultiHeadAttention`` and with
  ``flax.linen.MultiHeadDotProductAttention`` (same sizes, same MLPs, same scanned layers;
  only the attention layer differs; the scanned layers keep only their Dense outputs for the
  backward pass, ``--remat dots``, and the loop runs one layer per iteration, ``--unroll 1``,
  as the experiment configs do). Reported: tokens/s or images/s, and achieved GFLOP/s as a
  fraction of the peak. FLOPs are counted from the model, as for MFU (PaLM, Chowdhery et al.
  2022): ``6 * batch * tokens * kernel_params + 12 * batch * pairs * width`` per train step,
  ``pairs`` being the query-key pairs of all attention layers of one example (XLA's
  ``cost_analysis`` counts a scanned layer once, whatever the depth);
- the compile time of the Transformer step at 2 and at 12 layers.
Timings are medians of interleaved rounds (ours, peer, matmul, ours, ...). For the
attention-kernel table, run ``python -m experiments.bench_attention``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from attn_research.command_flags import argparse_type, at_least
from attn_research.models.scan import REMAT_POLICIES
from attn_research.models.transformer_translator import TransformerTranslator
from attn_research.models.vit import ViT
from experiments.bench_models import TokenTransformer, flax_attention


@dataclasses.dataclass(frozen=True)
class Sizes:
    matmul: int
    transformer: dict  # TokenTransformer fields (without dtype) and batch/length
    translator: dict  # TransformerTranslator fields and batch/length (of source and target)
    vit: dict  # ViT fields and batch/image side
    compile_depths: tuple[int, int]
    rounds: int


FULL = Sizes(
    matmul=2048,
    transformer=dict(
        vocab=1024, embed_dim=512, num_layers=4, num_heads=8, mlp_dim=2048, batch=16, length=128
    ),
    translator=dict(
        vocab_size=1024,
        embed_dim=512,
        num_layers=2,
        num_heads=8,
        mlp_dim=2048,
        dropout_rate=0.0,
        batch=16,
        length=64,
    ),
    vit=dict(
        num_classes=10,
        patch=4,
        embed_dim=384,
        num_layers=4,
        num_heads=6,
        mlp_dim=1536,
        batch=64,
        side=32,
    ),
    compile_depths=(2, 12),
    rounds=7,
)
QUICK = Sizes(
    matmul=128,
    transformer=dict(
        vocab=64, embed_dim=32, num_layers=2, num_heads=2, mlp_dim=64, batch=2, length=16
    ),
    translator=dict(
        vocab_size=64,
        embed_dim=32,
        num_layers=1,
        num_heads=2,
        mlp_dim=64,
        dropout_rate=0.0,
        batch=2,
        length=8,
    ),
    vit=dict(
        num_classes=10,
        patch=4,
        embed_dim=32,
        num_layers=2,
        num_heads=2,
        mlp_dim=64,
        batch=4,
        side=16,
    ),
    compile_depths=(1, 3),
    rounds=2,
)


@dataclasses.dataclass(frozen=True)
class Work:
    """What one example costs: ``tokens`` through every kernel, ``pairs`` query-key pairs over
    all attention layers, of ``width`` features."""

    tokens: int
    pairs: int
    width: int


def model_flops(params: Any, batch: int, work: Work) -> float:
    """Train-step FLOPs: 3 x (2 per multiply-add of every kernel per token + attention's
    ``q k^T`` and ``a v``, ``4 width`` per query-key pair)."""
    kernels = sum(
        leaf.size
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if getattr(path[-1], "key", None) == "kernel"
    )
    return 3.0 * batch * (2.0 * work.tokens * kernels + 4.0 * work.pairs * work.width)


def make_step(
    model: nn.Module,
    inputs: tuple[jax.Array, ...],
    labels: jax.Array,
    work: Work,
    intercept: Callable | None = None,
):
    """A jitted adam train step with donated state: compiled step, state, FLOPs, compile time.

    ``intercept``: a flax method interceptor active while the step is traced (``flax_attention``
    builds the peer).
    """
    with nn.intercept_methods(intercept) if intercept else contextlib.nullcontext():
        return _make_step(model, inputs, labels, work)


def _make_step(model, inputs, labels, work):
    params = model.init(jax.random.key(0), *inputs)["params"]
    tx = optax.adam(1e-4)
    state = (params, tx.init(params))

    def step(state, inputs, labels):
        params, opt_state = state

        def loss_fn(p):
            logits = model.apply({"params": p}, *inputs)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(state, inputs, labels).compile()
    compile_s = time.perf_counter() - start
    flops = model_flops(params, labels.shape[0], work)
    return compiled, state, flops, compile_s


class Stepper:
    """One train step per call on fixed inputs, carrying the (donated) state between calls."""

    def __init__(
        self, compiled: Callable, state: Any, inputs: tuple[jax.Array, ...], labels: jax.Array
    ):
        self.compiled, self.state, self.inputs, self.labels = compiled, state, inputs, labels

    def __call__(self) -> None:
        self.state, loss = self.compiled(self.state, self.inputs, self.labels)
        jax.block_until_ready((self.state, loss))  # The whole step, the update included.


def matmul_call(n: int) -> tuple[Callable[[], None], float]:
    """A compiled f32 ``n x n @ n x n`` matmul as a call, and its FLOPs (``2 n^3``)."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32))
    compiled = jax.jit(jnp.matmul).lower(a, a).compile()
    return (lambda: jax.block_until_ready(compiled(a, a))), 2.0 * n**3


def time_interleaved(calls: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median seconds of each call over ``rounds`` interleaved rounds, after a warm-up call."""
    for call in calls.values():
        call()
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in seconds.items()}


def compare(
    family: str,
    build: Callable[[], nn.Module],
    inputs,
    labels,
    work: Work,
    items: int,
    unit: str,
    matmul: tuple[Callable[[], None], float],
    rounds: int,
) -> list[dict[str, Any]]:
    """Our model and its flax-attention peer: throughput and FLOP rate, one record each.

    ``inputs``: the model's positional inputs; ``items``: examples or tokens per step;
    ``matmul``: the peak's matmul call and FLOPs, timed in the same rounds as the two steps, so
    the fraction of the peak compares rates measured under the same machine load.
    """
    runs = {
        name: make_step(build(), inputs, labels, work, intercept)
        for name, intercept in (("ours", None), ("flax", flax_attention))
    }
    calls = {
        name: Stepper(compiled, state, inputs, labels)
        for name, (compiled, state, *_) in runs.items()
    }
    seconds = time_interleaved({**calls, "matmul": matmul[0]}, rounds)
    peak = matmul[1] / seconds["matmul"] / 1e9
    records = []
    for name, (_, _, flops, compile_s) in runs.items():
        gflops = flops / seconds[name] / 1e9
        records.append(
            {
                "name": f"{family}[{name}]",
                "step_ms": 1e3 * seconds[name],
                unit: items / seconds[name],
                "gflops": gflops,
                "peak_gflops": peak,
                "fraction_of_peak": gflops / peak,
                "compile_s": compile_s,
                "step_gflop": flops / 1e9,
            }
        )
    return records


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument(
        "--remat",
        default="dots",
        choices=tuple(REMAT_POLICIES),
        help="what the backward pass keeps of each scanned layer",
    )
    parser.add_argument(
        "--unroll",
        type=argparse_type(int, at_least(1)),
        default=1,
        help="layers per scanned-loop iteration (the models' scan_unroll)",
    )
    args = parser.parse_args(argv)
    sizes, dtype = (QUICK if args.quick else FULL), jnp.dtype(args.dtype)
    scan = dict(remat=args.remat, scan_unroll=args.unroll)
    rng = np.random.default_rng(0)
    matmul = matmul_call(sizes.matmul)
    records: list[dict[str, Any]] = []

    t = dict(sizes.transformer)
    batch, length = t.pop("batch"), t.pop("length")
    tokens = jnp.asarray(rng.integers(0, t["vocab"], (batch, length)), jnp.int32)
    encoder_work = Work(length, t["num_layers"] * length**2, t["embed_dim"])
    records += compare(
        "transformer",
        lambda: TokenTransformer(**t, dtype=dtype, **scan),
        (tokens,),
        tokens,
        encoder_work,
        batch * length,
        "tokens_per_s",
        matmul,
        sizes.rounds,
    )

    m = dict(sizes.translator)
    batch, length = m.pop("batch"), m.pop("length")
    source, target = (
        jnp.asarray(rng.integers(1, m["vocab_size"], (batch, length)), jnp.int32) for _ in range(2)
    )
    # Per layer: encoder self-, decoder self- and cross-attention, each length^2 pairs.
    translator_work = Work(length, 3 * m["num_layers"] * length**2, m["embed_dim"])
    records += compare(
        "translator",
        lambda: TransformerTranslator(**m, dtype=dtype, **scan),
        (source, target),
        target,
        translator_work,
        2 * batch * length,
        "tokens_per_s",
        matmul,
        sizes.rounds,
    )

    v = dict(sizes.vit)
    batch, side = v.pop("batch"), v.pop("side")
    images = jnp.asarray(rng.standard_normal((batch, side, side, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, v["num_classes"], (batch,)), jnp.int32)
    patches = (side // v["patch"]) ** 2 + 1  # and the class token
    vit_work = Work(patches, v["num_layers"] * patches**2, v["embed_dim"])
    records += compare(
        "vit",
        lambda: ViT(**v, dtype=dtype, **scan),
        (images,),
        labels,
        vit_work,
        batch,
        "images_per_s",
        matmul,
        sizes.rounds,
    )

    # The peak: the median of the matmul rate timed alongside each family's steps.
    peaks = [r["peak_gflops"] for r in records[::2]]
    records.insert(
        0,
        {
            "name": "matmul_f32",
            "gflops": statistics.median(peaks),
            "min_gflops": min(peaks),
            "max_gflops": max(peaks),
        },
    )
    for depth in sizes.compile_depths:
        model = TokenTransformer(**{**t, "num_layers": depth}, dtype=dtype, **scan)
        *_, compile_s = make_step(model, (tokens,), tokens, encoder_work)
        records.append({"name": f"compile[transformer, {depth} layers]", "compile_s": compile_s})

    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}, dtype {args.dtype}, "
        f"remat {args.remat}, unroll {args.unroll}, load average {os.getloadavg()[0]:.1f}"
    )
    for r in records:
        cells = ", ".join(f"{k} {v:.4g}" for k, v in r.items() if k != "name")
        print(f"{r['name']:<32} {cells}")
    shallow, deep = (r["compile_s"] for r in records[-2:])
    print(
        f"compile time {sizes.compile_depths[1]} / {sizes.compile_depths[0]} layers: "
        f"{deep / shallow:.2f}"
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(records, f, indent=1)
    return records


if __name__ == "__main__":
    main()
