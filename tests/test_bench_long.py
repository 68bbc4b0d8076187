"""Smoke test of the long-sequence benchmark: ``--quick`` writes a record for every case.

Timings and memory are not asserted (the benchmark prints them against the issue's targets).
"""

import json

from experiments import bench_long


def test_quick_run_writes_records(tmp_path):
    path = tmp_path / "sub" / "bench_long.json"
    returned = bench_long.main(["--quick", "--repeats", "2", "--json", str(path)])
    records = json.loads(path.read_text())
    assert records == returned
    assert {(r["kind"], r["kernel"]) for r in records} == {
        (kind, kernel) for kind in ("local", "local_2d") for kernel in bench_long.KERNELS
    }
    assert len(records) == 2 * (len(bench_long.QUICK.lengths) + len(bench_long.QUICK.grids))
    for record in records:
        assert record["temp_bytes"] >= 0 and record["fwd_bwd_s"] > 0, record
        assert record["repeats"] == 2 and 0 < record["fwd_bwd_min_s"] <= record["fwd_bwd_s"]
