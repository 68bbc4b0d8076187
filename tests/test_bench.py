"""The train-step benchmark runs (tiny sizes) and writes one record per measurement; its flax
peers compute the same functions as our models, so the comparison is like for like."""

import json

import flax.linen as nn
import jax
import numpy as np

from attn_research.models.transformer_translator import TransformerTranslator
from experiments import bench, bench_models


def test_quick_bench_writes_records(tmp_path):
    path = tmp_path / "bench.json"
    records = bench.main(["--quick", "--json", str(path)])
    assert json.loads(path.read_text()) == records
    names = [r["name"] for r in records]
    families = ["transformer", "translator", "vit"]
    assert names[:7] == ["matmul_f32"] + [f"{f}[{b}]" for f in families for b in ("ours", "flax")]
    for r in records[1:7]:
        assert r["step_gflop"] > 0 and r["gflops"] > 0
        assert r["fraction_of_peak"] == r["gflops"] / r["peak_gflops"]
    # The peak is timed alongside each family's steps; the run's peak is their median.
    peaks = sorted(r["peak_gflops"] for r in records[1:7:2])
    assert (records[0]["min_gflops"], records[0]["gflops"], records[0]["max_gflops"]) == (
        peaks[0],
        peaks[1],
        peaks[2],
    )
    # Both builds of a family do the same work: only the attention layer differs.
    for ours, peer in zip(records[1:7:2], records[2:7:2]):
        assert ours["step_gflop"] == peer["step_gflop"]
    assert [r["name"] for r in records[7:]] == [
        "compile[transformer, 1 layers]",
        "compile[transformer, 3 layers]",
    ]


def _nest_attention(params):
    """Our attention params -> the flax peer's: each layer's q/k/v/out one level deeper."""
    if isinstance(params, dict):
        if set(params) == {"query", "key", "value", "out"}:
            return {"MultiHeadDotProductAttention_0": params}
        return {k: _nest_attention(v) for k, v in params.items()}
    return params


def test_flax_peer_translator_computes_the_same_function():
    rng = np.random.default_rng(0)
    source = rng.integers(1, 50, (2, 7))
    source[1, 4:] = 0  # padding reaches the peer's cross-attention mask too
    target = rng.integers(1, 50, (2, 5))
    fields = dict(
        vocab_size=50, embed_dim=16, num_layers=2, num_heads=2, mlp_dim=32, dropout_rate=0.0
    )
    model = TransformerTranslator(**fields)
    params = model.init(jax.random.key(0), source, target)["params"]
    expected = model.apply({"params": params}, source, target)
    with nn.intercept_methods(bench_models.flax_attention):
        peer_params = model.init(jax.random.key(0), source, target)["params"]
        got = model.apply({"params": _nest_attention(params)}, source, target)
    assert jax.tree.structure(peer_params) == jax.tree.structure(_nest_attention(params))
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=2e-5)
