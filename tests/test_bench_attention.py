"""Smoke test of the attention benchmark: ``--quick`` runs and writes well-formed records.

Timings are not asserted (benchmarks print them; see STYLE.md): only the JSON schema, that
every case ran, and that the records match the file.
"""

import json

import numpy as np
import pytest

from experiments import bench_attention

REQUIRED = {
    "name": str,
    "kind": str,
    "kernel": str,
    "shape": str,
    "fwd_ms": float,
    "fwd_bwd_ms": float,
    "temp_bytes": int,
}


def test_quick_run_writes_records(tmp_path, capsys):
    path = tmp_path / "sub" / "bench.json"
    returned = bench_attention.main(["--quick", "--json", str(path)])

    records = json.loads(path.read_text())
    assert records == returned
    for record in records:
        for key, kind in REQUIRED.items():
            assert isinstance(record[key], kind), (key, record)
        assert record["fwd_ms"] > 0 and record["fwd_bwd_ms"] > 0
        assert record["temp_bytes"] >= 0
    kinds = {"matmul", "dot_product", "dot_product_parts", "local", "local_parts", "additive"}
    assert {r["kind"] for r in records} == kinds
    keys = [(r["kind"], r["name"], r["shape"]) for r in records]
    assert len(set(keys)) == len(keys)
    assert {"flax", "dense", "chunked", "jax_nn"} <= {
        r["kernel"] for r in records if r["kind"] == "dot_product"
    }
    assert {"auto", "band(loop=True)", "jax_nn_dense"} == {
        r["kernel"] for r in records if r["kind"] == "local"
    }
    assert {"naive", "query_chunked"} == {r["kernel"] for r in records if r["kind"] == "additive"}
    assert all(r["gflops"] > 0 for r in records if r["kind"] == "matmul")
    # Useful FLOPs: 12 B H pairs D, with the pairs counted on the dense mask.
    (b, t, h, d), window = bench_attention.QUICK.dot_shapes[0], bench_attention.QUICK.local_window
    for r in records:
        if r["kind"] == "dot_product":
            assert r["useful_gflop"] == pytest.approx(12 * b * h * t * t * d / 1e9)
        if r["kind"] == "local":
            batch, length, heads, depth = (int(x[1:]) for x in r["shape"].split(","))
            i, j = np.indices((length, length))
            pairs = np.sum((j >= i - window[0]) & (j <= i + window[1]))
            assert r["useful_gflop"] == pytest.approx(12 * batch * heads * pairs * depth / 1e9)
        if "useful_gflop" in r:
            rate = r["useful_gflop"] / (r["fwd_bwd_ms"] / 1e3)
            assert r["gflops"] == pytest.approx(rate, abs=0.06)
            assert 0 < r["peak_fraction"]

    printed = capsys.readouterr().out
    assert "fwd+bwd ms" in printed
    for record in records:  # the table has a row for every record
        assert record["name"] in printed, record["name"]
    assert "not measured" not in printed


def test_too_big_cases_are_compiled_not_run_and_kinds_pick_groups(tmp_path):
    records = bench_attention.main(
        ["--quick", "--max-temp-gib", "0", "--kinds", "local", "--json", str(tmp_path / "b.json")]
    )
    assert {r["kind"] for r in records} == {"matmul", "local"}
    assert all(
        r["fwd_ms"] is None and "not run" in r["note"] for r in records if r["temp_bytes"] > 0
    )
