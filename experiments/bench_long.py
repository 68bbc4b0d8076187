"""Long-sequence benchmark: compiled memory and fwd+bwd time of local attention up to 1M tokens.

    python -m experiments.bench_long --json results/bench_long.json [--quick]

For ``local`` (window (128, 128), ``B1,H4,D64``) at T = 16384 ... 1048576 and ``local_2d``
(a 7 x 7 neighbourhood; ``B1,H2,D16``, small enough for a 2-core CPU) on grids of 128 x 128 ...
1024 x 1024 tokens, float32, the band kernel with all query blocks at once (``band``) beside
the one that loops over them (``band(loop=True)``, a block at a time): XLA's temporary bytes of the compiled fwd+bwd
(``memory_analysis().temp_size_in_bytes``, compile only) and the median wall time of
``--repeats`` fwd+bwd calls after a warm-up call (``jax.grad`` of ``<out, c>`` w.r.t. q, k, v,
with ``block_until_ready``; ``fwd_bwd_min_s`` the fastest).
``band`` (loop=False) is compiled only up to ``--max-blocked-tokens`` (its compile time and static
band mask grow with T) and run only where its temporaries are under ``--max-temp-gib``.
It prints one table and the issue's targets, and writes the records as a JSON list.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from typing import Any, Sequence

import jax

from attn_research.command_flags import argparse_type, at_least, creatable_file, finite_at_least
from experiments.attention_cases import attend_by_label, fwd_bwd, random_inputs, temp_bytes

MiB, GiB = 2**20, 2**30


@dataclasses.dataclass(frozen=True)
class Sizes:
    window: tuple[int, int]  # local's (left, right)
    local_hd: tuple[int, int]
    lengths: tuple[int, ...]  # [0]: against the dense logits; time from [1] to [-1]
    neighbourhood: int  # local_2d's side
    grid_hd: tuple[int, int]
    grids: tuple[int, ...]  # square grids' sides, read like ``lengths``


# The band kernel with all query blocks at once, and looping over them.
KERNELS = ("band", "band(loop=True)")
FULL = Sizes((128, 128), (4, 64), (16384, 65536, 262144, 1048576), 7, (2, 16), (128, 256, 1024))
QUICK = Sizes((8, 8), (2, 8), (256, 512, 1024), 3, (1, 4), (8, 16, 32))


@dataclasses.dataclass(frozen=True)
class Case:
    kind: str
    kernel: str
    tokens: int
    heads: int
    depth: int
    options: tuple[tuple[str, Any], ...]

    def fn(self):
        return attend_by_label(self.kernel, self.kind, **dict(self.options))


def cases(sizes: Sizes) -> list[Case]:
    out = []
    for t in sizes.lengths:
        for kernel in KERNELS:
            out.append(Case("local", kernel, t, *sizes.local_hd, (("window", sizes.window),)))
    for side in sizes.grids:
        options = (("window", sizes.neighbourhood), ("grid", (side, side)))
        for kernel in KERNELS:
            out.append(Case("local_2d", kernel, side * side, *sizes.grid_hd, options))
    return out


def measure(
    case: Case, max_blocked_tokens: int, max_temp_bytes: int, repeats: int
) -> dict[str, Any]:
    """Compiles the case's fwd+bwd and times ``repeats`` calls, unless it is too big."""
    record = {
        "kind": case.kind,
        "kernel": case.kernel,
        "shape": f"B1,T{case.tokens},H{case.heads},D{case.depth}",
        **{k: list(v) if isinstance(v, tuple) else v for k, v in case.options},
        "temp_bytes": None,
        "fwd_bwd_s": None,
        "note": "",
    }
    if case.kernel == "band" and case.tokens > max_blocked_tokens:
        record["note"] = f"not compiled: T > --max-blocked-tokens {max_blocked_tokens}"
        return record
    shape = (1, case.tokens, case.heads, case.depth)
    inputs = random_inputs([shape] * 4, "float32")
    start = time.perf_counter()
    grad = jax.jit(fwd_bwd(case.fn(), 3)).lower(*inputs).compile()
    record["compile_s"] = round(time.perf_counter() - start, 1)
    record["temp_bytes"] = temp_bytes(grad)
    if record["temp_bytes"] > max_temp_bytes:
        record["note"] = f"not run: temp > --max-temp-gib {max_temp_bytes / GiB:g}"
        return record
    jax.block_until_ready(grad(*inputs))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(grad(*inputs))
        seconds.append(time.perf_counter() - start)
    record["fwd_bwd_s"] = round(statistics.median(seconds), 6)
    record["fwd_bwd_min_s"] = round(min(seconds), 6)
    record["repeats"] = repeats
    record["loadavg"] = round(os.getloadavg()[0], 2)
    return record


def targets(records: Sequence[dict[str, Any]], sizes: Sizes) -> list[tuple[str, str, str]]:
    """``(what, value, goal)`` rows of the issue's targets, for ``band(loop=True)``."""

    def get(kind, tokens, field):
        (r,) = [r for r in records if (r["kind"], r["kernel"], r["shape"].split(",")[1]) == (
            kind, "band(loop=True)", f"T{tokens}")]  # fmt: skip
        return r[field]

    rows = []
    for kind, (heads, _), tokens in (
        ("local", sizes.local_hd, sizes.lengths),
        ("local_2d", sizes.grid_hd, [s * s for s in sizes.grids]),
    ):
        longest = get(kind, tokens[-1], "temp_bytes")
        rows.append((f"{kind} T{tokens[-1]} fwd+bwd temp", f"{longest / MiB:.2f} MiB", "< 1 GiB"))
        dense = 4 * heads * tokens[0] ** 2
        share = get(kind, tokens[0], "temp_bytes") / dense
        rows.append(
            (f"{kind} T{tokens[0]} temp / dense T^2 f32 logits", f"{100 * share:.3f}%", "< 1%")
        )
        times = [get(kind, t, "fwd_bwd_s") for t in (tokens[1], tokens[-1])]
        if None not in times:
            more = tokens[-1] // tokens[1]  # the issue: 17x for 16x the tokens
            growth = f"{times[1] / times[0]:.1f}x (tokens x{more})"
            rows.append(
                (f"{kind} time T{tokens[-1]} / T{tokens[1]}", growth, f"<= {17 * more / 16:g}x")
            )
    return rows


def table(records: Sequence[dict[str, Any]], rows: Sequence[tuple[str, str, str]]) -> str:
    lines = [f"{'kind':9} {'kernel':8} {'shape':24} {'temp MiB':>10} {'fwd+bwd s':>10}  note"]
    for r in records:
        temp = "-" if r["temp_bytes"] is None else f"{r['temp_bytes'] / MiB:.2f}"
        secs = "-" if r["fwd_bwd_s"] is None else f"{r['fwd_bwd_s']:.2f}"
        lines.append(
            f"{r['kind']:9} {r['kernel']:8} {r['shape']:24} {temp:>10} {secs:>10}  {r['note']}"
        )
    lines += ["", f"{'target':48} {'value':>22}  goal"]
    lines += [f"{what:48} {value:>22}  {goal}" for what, value, goal in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--json",
        required=True,
        type=argparse_type(str, creatable_file),
        help="where to write the JSON list of records",
    )
    parser.add_argument("--quick", action="store_true", help="small T (smoke test)")
    parser.add_argument("--max-blocked-tokens", type=argparse_type(int, at_least(1)), default=65536)
    parser.add_argument(
        "--max-temp-gib", type=argparse_type(float, finite_at_least(0.0)), default=4.0
    )
    parser.add_argument(
        "--repeats",
        type=argparse_type(int, at_least(1)),
        default=3,
        help="timed calls after a warm-up",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    records = []
    for case in cases(sizes):
        records.append(
            measure(case, args.max_blocked_tokens, int(args.max_temp_gib * GiB), args.repeats)
        )
        print(json.dumps(records[-1]), flush=True)
    print(table(records, targets(records, sizes)))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(records, f, indent=1)
    return records


if __name__ == "__main__":
    main()
