"""The train-step benchmark runs (tiny sizes) and writes one record per measurement."""

import json

from experiments import bench


def test_quick_bench_writes_records(tmp_path):
    path = tmp_path / "bench.json"
    records = bench.main(["--quick", "--json", str(path)])
    assert json.loads(path.read_text()) == records
    names = [r["name"] for r in records]
    assert names[:5] == ["matmul_f32", "transformer[ours]", "transformer[flax]", "vit[ours]", "vit[flax]"]
    for r in records[1:5]:
        assert r["step_gflop"] > 0 and r["gflops"] > 0 and 0 < r["fraction_of_peak"]
    # Both builds of a family do the same work: only the attention layer differs.
    assert records[1]["step_gflop"] == records[2]["step_gflop"]
    assert records[3]["step_gflop"] == records[4]["step_gflop"]
    assert [r["name"] for r in records[5:]] == ["compile[transformer, 1 layers]",
                                                "compile[transformer, 3 layers]"]
