"""Smoke test of the accelerator benchmark: ``--smoke`` runs every group on tiny shapes (the
Pallas band kernel in the interpreter) and writes the device, the jax version and the records.

Timings are not asserted (STYLE.md): only that every case ran and that the file holds them.
"""

import json

import jax

from experiments import bench_accelerator


def test_smoke_run_measures_every_rule_and_writes_json(tmp_path):
    path = tmp_path / "out" / "accelerator.json"
    result = bench_accelerator.main(["--smoke", "--json", str(path)])

    assert json.loads(path.read_text()) == result
    assert result["jax"] == jax.__version__ and result["device"].startswith("cpu")
    records = result["records"]
    kinds = {"matmul", "global", "causal", "window", "causal_window", "local_2d"}
    assert {r["kind"] for r in records} == kinds
    assert all(r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 for r in records)
    attention = [r for r in records if r["kind"] != "matmul"]
    assert all(r["peak_fraction"] > 0 for r in attention)
    kernels = {(r["kind"], r["kernel"]) for r in records}
    assert {("window", "pallas_band"), ("causal", "jax_nn"), ("local_2d", "pallas_band")} <= kernels
