"""Attention kernels on an accelerator, against the device's own matmul peak, in one run.

    python -m experiments.bench_accelerator --json results/bench_accelerator.json
    python -m experiments.bench_accelerator --smoke --json /tmp/smoke.json   # any backend
    python -m experiments.bench_accelerator --lengths 8192 --json ...        # fewer lengths

For each positions rule, in bfloat16, at ``B1,H8,D128``:

- global and causal at T = 2k, 8k, 32k: ``auto``, cuDNN's and XLA's dense attention
  (``kernel`` cudnn, jax_nn) as peers, and the band kernel of the backend (pallas_band on a
  GPU, splash on a TPU);
- window (128, 128) and causal window (256, 0) at the same lengths: ``auto``, the backend's
  band kernel, ``band``, cuDNN's sliding window for the causal one, and XLA's dense-masked
  attention;
- the ViT's local_2d, a 7 x 7 neighbourhood on 64 x 64 tokens, ``B8,H6,D64``: ``auto``
  (band), ``band(loop=True)``, pallas_band (on a GPU), and XLA's dense-masked attention and
  cuDNN over every token as peers.

Each group of cases is timed in interleaved rounds with a ``8192^3`` matmul in the same dtype
(``attention_cases.measure_group``): ``peak_fraction`` is a case's useful FLOP rate over
forward+backward (``attention_cases.attention_flops``: the allowed pairs only) divided by that
matmul's rate. Cases whose compiled temporaries exceed ``--max-temp-gib`` are compiled, not run
(XLA's dense attention at 32k). Kernels that cannot run on the backend are left out: cuDNN
off a GPU, splash off a TPU, pallas_band off a GPU except in ``--smoke``, where tiny shapes run
it in the Pallas interpreter. Prints one table and writes ``{"device", "jax", "records"}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Any, Sequence

import jax
import numpy as np

from experiments.attention_cases import (
    FULL,
    Case,
    attend_by_label,
    attention_flops,
    band_pairs,
    bthd,
    measure_group,
    peak_case,
)

WINDOWS = {"window": (128, 128), "causal_window": (256, 0)}
GRID, GRID_WINDOW = (64, 64), 7


@dataclasses.dataclass(frozen=True)
class Plan:
    """The shapes of one run."""

    bhd: tuple[int, int, int]
    lengths: tuple[int, ...]
    windows: dict[str, tuple[int, int]]
    grid_bhd: tuple[int, int, int]
    grid: tuple[int, int]
    grid_window: int
    matmul: int


GPU_PLAN = Plan((1, 8, 128), (2048, 8192, 32768), WINDOWS, (8, 6, 64), GRID, GRID_WINDOW, 8192)
SMOKE_PLAN = Plan((1, 2, 16), (64,), {"window": (8, 8), "causal_window": (16, 0)}, (1, 2, 16),
                  (8, 8), 3, 64)  # fmt: skip


def band_kernel(smoke: bool) -> tuple[str, ...]:
    """The fused band kernel that runs on this backend (in the interpreter: only in --smoke)."""
    backend = jax.default_backend()
    if backend == "tpu":
        return ("splash",)
    return ("pallas_band",) if backend == "gpu" or smoke else ()


def _case(rule: str, kernel: str, dims, pairs: int, fn, *extra) -> Case:
    b, t, h, d = (size for _, size in dims)
    return Case(
        f"{rule}:{kernel}",
        rule,
        kernel,
        dims,
        ((b, t, h, d),) * 3,
        fn,
        tuple(extra),
        attention_flops(b, h, pairs, d),
    )


def sequence_cases(plan: Plan, length: int, smoke: bool) -> list[list[Case]]:
    """One group per rule at ``length``."""
    b, h, d = plan.bhd
    dims = bthd(b, length, h, d)
    gpu = jax.default_backend() == "gpu"
    groups = []
    for rule, causal in (("global", False), ("causal", True)):
        pairs = length * (length + 1) // 2 if causal else length * length
        kernels = ("auto", *(("cudnn",) if gpu else ()), "jax_nn", *band_kernel(smoke))
        groups.append(
            [
                _case(
                    rule, kernel, dims, pairs, attend_by_label(kernel, "dot_product", causal=causal)
                )
                for kernel in kernels
            ]
        )
    for rule, window in plan.windows.items():
        cudnn = ("cudnn",) if gpu and window[1] == 0 else ()
        kernels = ("auto", *band_kernel(smoke), "band", *cudnn, "jax_nn")
        groups.append(
            [
                _case(
                    rule,
                    kernel,
                    dims,
                    band_pairs(length, window),
                    attend_by_label(kernel, "local", window=window),
                    ("window", list(window)),
                )
                for kernel in kernels
            ]
        )
    return groups


def grid_cases(plan: Plan, smoke: bool) -> list[Case]:
    """The ViT's local_2d on its token grid, and dense peers over every token."""
    b, h, d = plan.grid_bhd
    tokens = plan.grid[0] * plan.grid[1]
    dims = bthd(b, tokens, h, d)
    rows, cols = (np.arange(n) for n in plan.grid)
    radius = plan.grid_window // 2
    per_axis = [np.minimum(x, radius) + np.minimum(x[::-1], radius) + 1 for x in (rows, cols)]
    pairs = int(per_axis[0].sum() * per_axis[1].sum())
    local = {"window": plan.grid_window, "grid": plan.grid}
    grid_band = [kernel for kernel in band_kernel(smoke) if kernel != "splash"]  # 1-D masks only
    cases = [
        _case("local_2d", kernel, dims, pairs, attend_by_label(kernel, "local_2d", **local))
        for kernel in ("auto", "band(loop=True)", *grid_band, "jax_nn")
    ]
    if jax.default_backend() == "gpu":
        cases.append(
            _case(
                "local_2d",
                "cudnn[global]",
                dims,
                tokens**2,
                attend_by_label("cudnn", "dot_product"),
            )
        )
    extra = ("grid", list(plan.grid)), ("window", plan.grid_window)
    return [dataclasses.replace(c, extra=extra) for c in cases]


_attend = attend_by_label


def table(records: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'case':32} {'shape':22} {'fwd ms':>9} {'fwd+bwd ms':>11} {'of peak':>8}"]
    for r in records:
        fwd = "-" if r["fwd_ms"] is None else f"{r['fwd_ms']:.3f}"
        both = "-" if r["fwd_bwd_ms"] is None else f"{r['fwd_bwd_ms']:.3f}"
        peak = r.get("peak_fraction")
        peak = f"{r['gflops']:.0f} GF/s" if r["kind"] == "matmul" else (
            "-" if peak is None else f"{100 * peak:.1f}%"
        )  # fmt: skip
        lines.append(f"{r['name']:32} {r['shape']:22} {fwd:>9} {both:>11} {peak:>8}")
        if r.get("note"):
            lines.append(f"    {r['note']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the records here")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, any backend")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-temp-gib", type=float, default=16.0)
    parser.add_argument("--lengths", type=int, nargs="+", help="sequence lengths (default: all)")
    args = parser.parse_args(argv)
    plan = SMOKE_PLAN if args.smoke else GPU_PLAN
    if args.lengths:
        plan = dataclasses.replace(plan, lengths=tuple(args.lengths))
    timing = dict(time_budget_s=0.01, min_repeats=2, max_repeats=3) if args.smoke else {}
    sizes = dataclasses.replace(
        FULL,
        matmul=plan.matmul,
        dtype=args.dtype,
        **(timing or dict(time_budget_s=1.0, min_repeats=3, max_repeats=20)),
    )
    groups = [g for length in plan.lengths for g in sequence_cases(plan, length, args.smoke)]
    groups.append(grid_cases(plan, args.smoke))
    records = []
    for i, group in enumerate(groups):
        cases = [peak_case(plan.matmul, i), *group]
        records += [
            r.to_json() for r in measure_group(cases, sizes, int(args.max_temp_gib * 2**30))
        ]
    device = jax.devices()[0]
    result = {"device": f"{device.platform}: {device.device_kind}", "jax": jax.__version__}
    result["records"] = records
    print(f"{result['device']}, jax {result['jax']}, {args.dtype}")
    print(table(records))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
