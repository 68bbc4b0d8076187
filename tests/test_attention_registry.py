"""The registry of attention kinds, MultiHeadAttention over every registered kind with golden
parameter counts and a NumPy reference, and the errors a bad call deserves."""

import ast
import dataclasses
import pathlib

import attention_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from attention_modules import AdditiveAttention, LuongAttention, flat

from attn_research import attention
from attn_research.attention import (
    KINDS,
    MultiHeadAttention,
    attend,
    get,
    kernels,
    positions,
    presets,
    register,
    resolve,
    scores,
)

FEATURES, HEADS, TOKENS = 32, 4, 6  # head_dim 8; 6 tokens = a 2 x 3 grid for local_2d

# Every layer below has query/key/value kernels [32, 4, 8] and biases [4, 8] (3 * (1024 + 32))
# and an out kernel [4, 8, 32] and bias [32] (1024 + 32): 4 * 1056 = 4224 parameters, plus the
# kind's own. Each entry: MultiHeadAttention options, golden count, reference attention.
KIND_CASES = {
    "dot_product": ({}, 4224, lambda p, q, k, v, m: ref.dot_product(q, k, v, mask=m)[0]),
    "local": (
        {"window": 1},
        4224,
        lambda p, q, k, v, m: ref.local(q, k, v, left=1, right=1, mask=m)[0],
    ),
    "local_2d": (
        {"grid": (2, 3), "window": 3},
        4224,
        lambda p, q, k, v, m: ref.local_2d(q, k, v, grid=(2, 3), window=(3, 3), mask=m)[0],
    ),
    # + score vector w [4, 8] = 32.
    "additive": (
        {},
        4256,
        lambda p, q, k, v, m: ref.additive(q, k, v, flat(p["attention"])["score_vector"], mask=m)[
            0
        ],
    ),
    # dot score, global alignment: no parameters of its own.
    "luong": ({}, 4224, lambda p, q, k, v, m: ref.luong(q, k, v, score="dot", mask=m)[0]),
}


def _count(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def _inputs(seed=0, kv_tokens=TOKENS):
    rng = np.random.default_rng(seed)
    x_q, x_kv = ref.normal(rng, 2, TOKENS, FEATURES), ref.normal(rng, 2, kv_tokens, FEATURES)
    mask = np.ones((2, 1, 1, kv_tokens), bool)
    mask[1, ..., kv_tokens - 2 :] = False  # the second example's last two keys are padding
    return x_q, x_kv, mask


def test_registry_lists_every_kind_as_positions_score_kernel():
    assert set(KINDS) == {"dot_product", "local", "local_2d", "additive", "luong"}
    for name, kind in KINDS.items():
        assert kind.name == name and kind.paper
        assert get(name) is kind
    axes = {name: (k.positions, k.score, k.kernel) for name, k in KINDS.items()}
    assert axes["local"] == ("window", "dot", "auto")
    assert axes["local_2d"] == ("window_2d", "dot", "auto")
    assert axes["additive"] == ("global", "additive", "auto")


def test_registries_refuse_duplicates():
    with pytest.raises(ValueError, match="'dot_product' is already registered"):
        register(dataclasses.replace(KINDS["dot_product"]))
    with pytest.raises(ValueError, match="'window' is already registered"):
        positions.register("window", positions.window)
    with pytest.raises(ValueError, match="'dot' is already registered"):
        scores.register("dot", scores.Dot)
    with pytest.raises(ValueError, match="'dense' is already registered"):
        kernels.register("dense", kernels.dense.dense)


def test_all_kinds_tested():
    untested = set(KINDS) - set(KIND_CASES)
    assert not untested, f"registered kinds without an entry in KIND_CASES: {sorted(untested)}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_multi_head_attention_for_every_kind(kind):
    options, golden_count, reference = KIND_CASES[kind]
    x, _, mask = _inputs()
    layer = MultiHeadAttention(num_heads=HEADS, attention=resolve(kind, options))
    params = jax.jit(layer.init)(jax.random.key(0), x, mask=mask)["params"]
    assert _count(params) == golden_count
    for name in ("query", "key", "value"):
        assert params[name]["kernel"].shape == (FEATURES, HEADS, FEATURES // HEADS)
    assert params["out"]["kernel"].shape == (HEADS, FEATURES // HEADS, FEATURES)
    out = jax.jit(lambda p, x, m: layer.apply({"params": p}, x, mask=m))(params, x, mask)
    assert out.shape == x.shape and out.dtype == jnp.float32
    expected = ref.multi_head(params, x, x, lambda q, k, v: reference(params, q, k, v, mask))
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


# (kind, options, layer fields, cross-attention key length, golden count, reference)
VARIANTS = {
    # + w [4, 8], g [4], b [8] = 44.
    "additive_normalized": (
        "additive",
        {"normalize": True},
        {},
        TOKENS,
        4268,
        lambda p, q, k, v, m: ref.additive(
            q,
            k,
            v,
            flat(p["attention"])["score_vector"],
            g=flat(p["attention"])["score_scale"],
            b=flat(p["attention"])["score_bias"],
            mask=m,
        )[0],
    ),
    # + W_a [4, 8, 8] = 256.
    "luong_general": (
        "luong",
        {"score": "general"},
        {},
        9,
        4480,
        lambda p, q, k, v, m: ref.luong(
            q, k, v, score="general", params=flat(p["attention"]), mask=m
        )[0],
    ),
    # + W_1, W_2 [4, 8, 8] and v_a [4, 8] = 544.
    "luong_concat": (
        "luong",
        {"score": "concat"},
        {},
        9,
        4768,
        lambda p, q, k, v, m: ref.luong(
            q, k, v, score="concat", params=flat(p["attention"]), mask=m
        )[0],
    ),
    # + W_p [4, 8, 8] and v_p [4, 8] = 288.
    "luong_local_p": (
        "luong",
        {"positions": "local_p", "window": 2},
        {},
        9,
        4512,
        lambda p, q, k, v, m: ref.luong(
            q, k, v, score="dot", positions="local_p", window=2, params=flat(p["attention"]), mask=m
        )[0],
    ),
    # units 5: W_1, W_2 [4, 8, 5], v_a [4, 5], W_p [4, 8, 5], v_p [4, 5] = 520.
    "luong_concat_local_p_units": (
        "luong",
        {"score": "concat", "positions": "local_p", "window": 2, "units": 5},
        {},
        9,
        4744,
        lambda p, q, k, v, m: ref.luong(
            q,
            k,
            v,
            score="concat",
            positions="local_p",
            window=2,
            params=flat(p["attention"]),
            mask=m,
        )[0],
    ),
    # key/value kernels [32, 2, 8] and biases [2, 8]: 2 * 528 + 2 * 1056 = 3168.
    "dot_product_gqa": (
        "dot_product",
        {"kernel": "chunked"},
        {"num_kv_heads": 2},
        9,
        3168,
        lambda p, q, k, v, m: ref.dot_product(q, k, v, mask=m)[0],
    ),
    # head_dim 4: q/k/v 3 * (32 * 16 + 16) = 1584, out 16 * 24 + 24 = 408.
    "dot_product_qkv_out_features": (
        "dot_product",
        {},
        {"qkv_features": 16, "out_features": 24},
        9,
        1992,
        lambda p, q, k, v, m: ref.dot_product(q, k, v, mask=m)[0],
    ),
    # no biases: 4 * 1024.
    "local_no_bias": (
        "local",
        {"window": (2, 0)},
        {"use_bias": False},
        TOKENS,
        4096,
        lambda p, q, k, v, m: ref.local(q, k, v, left=2, right=0, mask=m)[0],
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_multi_head_attention_variants(variant):
    kind, options, fields, kv_tokens, golden_count, reference = VARIANTS[variant]
    x_q, x_kv, mask = _inputs(1, kv_tokens)
    layer = MultiHeadAttention(num_heads=HEADS, attention=resolve(kind, options), **fields)
    params = jax.jit(layer.init)(jax.random.key(0), x_q, x_kv, mask=mask)["params"]
    assert _count(params) == golden_count
    out = jax.jit(lambda p, x_q, x_kv, m: layer.apply({"params": p}, x_q, x_kv, mask=m))(
        params, x_q, x_kv, mask
    )
    assert out.shape == (*x_q.shape[:-1], fields.get("out_features", FEATURES))
    expected = ref.multi_head(params, x_q, x_kv, lambda q, k, v: reference(params, q, k, v, mask))
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


def _qkv(heads=4, kv_heads=2, tq=6, tk=6, depth=8):
    rng = np.random.default_rng(2)
    return (
        ref.normal(rng, 2, tq, heads, depth),
        ref.normal(rng, 2, tk, kv_heads, depth),
        ref.normal(rng, 2, tk, kv_heads, depth),
    )


Q, K, V = _qkv()
X = np.zeros((2, 6, 32), np.float32)
KEY = jax.random.key(0)


def _init(kind="dot_product", options=None, **fields):
    return lambda: MultiHeadAttention(attention=resolve(kind, options or {}), **fields).init(KEY, X)


ERRORS = {
    "unknown_kind": (lambda: attend(Q, K, V, kind="linear"), r"unknown attention kind 'linear'"),
    "unknown_kind_layer": (_init(num_heads=4, kind="linear"), r"unknown attention kind 'linear'"),
    "kind_with_parameters_via_attend": (
        lambda: attend(Q, K, V, kind="additive"),
        r"'additive' .* has parameters of its own",
    ),
    "window_0": (
        lambda: attend(Q, K, V, kind="local", window=0),
        r"window must be an integer >= 1, got 0",
    ),
    "window_negative": (
        lambda: attend(Q, K, V, kind="local", window=-2),
        r"window must be an integer >= 1",
    ),
    "window_negative_left": (
        lambda: attend(Q, K, V, kind="local", window=(-1, 2)),
        r"window must be a pair of ints \(left, right\) >= 0",
    ),
    "window_negative_right": (
        lambda: attend(Q, K, V, kind="local", window=(1, -1)),
        r"window must be a pair of ints \(left, right\) >= 0",
    ),
    "window_missing": (
        lambda: attend(Q, K, V, positions="window"),
        r"positions 'window' needs window=",
    ),
    "local_2d_even_window": (
        lambda: attend(Q, K, V, kind="local_2d", grid=(2, 3), window=2),
        r"window_2d sides must be odd",
    ),
    "local_2d_even_window_pair": (
        lambda: attend(Q, K, V, kind="local_2d", grid=(2, 3), window=(3, 4)),
        r"window_2d sides must be odd",
    ),
    "local_2d_grid_mismatch": (
        lambda: attend(Q, K, V, kind="local_2d", grid=(2, 2), window=3),
        r"6 queries do not fill the token grid \(2, 2\)",
    ),
    "heads_do_not_divide_features": (
        _init(num_heads=5),
        r"num_heads 5 does not divide the features 32",
    ),
    "kv_heads_do_not_divide_heads": (
        _init(num_heads=4, num_kv_heads=3),
        r"num_kv_heads 3 does not divide num_heads 4",
    ),
    "kv_heads_do_not_divide_heads_attend": (
        lambda: attend(Q, *_qkv(4, 3)[1:]),
        r"query heads 4 must be a multiple of key/value heads 3",
    ),
    "depth_mismatch": (lambda: attend(Q, K[..., :7], V), r"q depth 8 != k depth 7"),
    "mask_rank_3": (
        lambda: attend(Q, K, V, mask=np.ones((2, 6, 6), bool)),
        r"mask has shape \(2, 6, 6\) \(rank 3\) but must have rank 4",
    ),
    "mask_wrong_query_size": (
        lambda: attend(Q, K, V, mask=np.ones((2, 1, 5, 6), bool)),
        r"axis 2 has size 5, expected 1 or 6",
    ),
    "mask_wrong_key_size_rank2": (
        lambda: attend(Q, K, V, mask=np.ones((6, 5), bool)),
        r"axis 3 has size 5, expected 1 or 6",
    ),
    "mask_wrong_batch_size": (
        lambda: attend(Q, K, V, mask=np.ones((3, 1, 6, 6), bool)),
        r"axis 0 has size 3, expected 1 or 2",
    ),
    "bias_wrong_rank": (
        lambda: attend(Q, K, V, bias=np.zeros((2, 6, 6), np.float32)),
        r"bias has shape \(2, 6, 6\) \(rank 3\)",
    ),
    "mask_not_boolean": (
        lambda: attend(Q, K, V, mask=np.ones((2, 1, 6, 6), np.float32)),
        r"mask must be boolean",
    ),
    "mask_int": (
        lambda: attend(Q, K, V, kind="local", window=1, mask=np.ones((1, 6), np.int32)),
        r"mask must be boolean",
    ),
    "window_for_dot_product": (
        lambda: attend(Q, K, V, window=3),
        r"attention 'dot_product' \(global x dot x auto\) does not take option 'window'",
    ),
    "window_for_dot_product_layer": (
        _init(num_heads=4, options={"window": 3}),
        r"attention 'dot_product' \(global x dot x auto\) does not take option 'window'",
    ),
    "causal_for_local_2d": (
        lambda: attend(Q, K, V, kind="local_2d", grid=(2, 3), window=3, causal=True),
        r"window_2d has no order on its grid: it cannot be causal",
    ),
    "grid_for_luong": (
        _init(num_heads=4, kind="luong", options={"grid": (2, 3)}),
        r"attention 'luong' .* does not take option 'grid'",
    ),
    "unknown_kernel": (
        lambda: attend(Q, K, V, kernel="flash"),
        r"unknown attention kernel 'flash'; registered",
    ),
    "dropout_without_rng": (
        lambda: attend(Q, K, V, dropout_rate=0.5),
        r"dropout_rate > 0 needs rng",
    ),
    "dropout_without_rng_local": (
        lambda: attend(Q, K, V, kind="local", window=1, dropout_rate=0.5),
        r"dropout_rate > 0 needs rng",
    ),
    "dropout_without_rng_additive": (
        lambda: AdditiveAttention().init(KEY, Q, K, V, dropout_rate=0.5),
        r"dropout_rate > 0 needs rng",
    ),
    "dropout_without_rng_luong": (
        lambda: LuongAttention().init(KEY, Q, Q, Q, dropout_rate=0.5),
        r"dropout_rate > 0 needs rng",
    ),
    "dropout_rate_1": (
        lambda: attend(Q, K, V, dropout_rate=1.0, rng=KEY),
        r"dropout_rate must be in \[0, 1\)",
    ),
    "value_depth_with_jax_nn": (
        lambda: attend(Q, K, V[..., :3], kernel="jax_nn"),
        r"needs values as deep as the queries, got 3 and 8",
    ),
    "dropout_with_jax_nn": (
        lambda: attend(Q, K, V, kernel="jax_nn", dropout_rate=0.1, rng=KEY),
        r"kernel 'jax_nn' has no attention dropout",
    ),
    "dense_mask_for_local": (
        lambda: attend(Q, K, V, kind="local", window=2, kernel="band", mask=np.ones((6, 6), bool)),
        r"got a dense mask of shape \(1, 1, 6, 6\)",
    ),
    "dense_mask_for_local_2d": (
        lambda: attend(
            Q,
            K,
            V,
            kind="local_2d",
            grid=(2, 3),
            window=3,
            kernel="band",
            mask=np.ones((2, 1, 6, 6), bool),
        ),
        r"got a dense mask of shape \(2, 1, 6, 6\)",
    ),
    "block_size_0": (
        lambda: attend(Q, K, V, kind="local", window=2, block_size=0),
        r"block_size must be an integer >= 1, got 0",
    ),
    "query_chunk_size_0": (
        lambda: AdditiveAttention(query_chunk_size=0).init(KEY, Q, K, V),
        r"query_chunk_size must be an integer >= 1, got 0",
    ),
    "luong_unknown_score": (
        lambda: LuongAttention(score="cosine").init(KEY, Q, Q, Q),
        r"unknown score 'cosine'; registered",
    ),
    "luong_unknown_positions": (
        lambda: LuongAttention(positions="monotonic").init(KEY, Q, Q, Q),
        r"unknown positions rule 'monotonic'",
    ),
    "luong_window_0": (
        lambda: LuongAttention(positions="local_m", window=0).init(KEY, Q, Q, Q),
        r"window must be an integer >= 1, got 0",
    ),
    "luong_concat_grouped_heads": (
        _init(num_heads=4, num_kv_heads=2, kind="luong", options={"score": "concat"}),
        r"concat scores need as many key heads as query heads",
    ),
    "qkv_rank_mismatch": (lambda: attend(Q, K[0], V[0]), r"q, k, v must have the same rank"),
    "qkv_batch_mismatch": (lambda: attend(Q, K[:1], V[:1]), r"must have the same batch dims"),
    "kv_length_mismatch": (
        lambda: attend(Q, K, V[:, :5]),
        r"must agree in \[batch..., kv_len, kv_heads\]",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_name_the_problem(case):
    call, message = ERRORS[case]
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(call)  # the checks run while tracing: nothing to compile


def test_a_spec_is_frozen_hashable_and_says_its_recurrence():
    spec = resolve("local", {"window": [3, 1], "block_size": 8})
    assert hash(spec) == hash(resolve("local", {"window": (3, 1), "block_size": 8}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.kernel = "dense"
    assert resolve("additive").recurrence == "bahdanau"
    assert {
        resolve(k, {"window": 3} if k.startswith("local") else {}).recurrence for k in KINDS
    } == {
        "bahdanau",
        "luong",
    }
    assert MultiHeadAttention(2, spec).attention is spec


def test_luong_takes_its_positions_by_the_ordinary_axis_replacement():
    spec = resolve("luong", {"score": "general", "positions": "local_p", "window": 10})
    assert (spec.positions.name, spec.positions.half_width, spec.score) == (
        "local_p",
        10,
        "general",
    )
    assert spec.score_options["scale"] == 1.0
    assert resolve("luong").positions == positions.Global()  # window=10 is not routed
    assert resolve("luong", {"positions": "local_m"}).positions == positions.window(10)
    with pytest.raises(ValueError, match="does not take option 'align'"):
        resolve("luong", {"align": "local_p"})


def test_options_are_those_their_registry_entries_declare():
    assert presets.takes("local") >= {"window", "block_size", "loop", "query_chunk_size"}
    assert "window" not in presets.takes("dot_product")
    assert "units" in presets.takes("luong", {"positions": "local_p"})
    assert kernels.options_of("band") == ("block_size", "loop")
    assert set(kernels.options_of("auto")) >= {"block_size", "loop", "key_chunk_size", "block_q"}


@pytest.mark.parametrize(
    "kind, old, new",
    [
        ("luong", {"align": "local_p", "window": 4}, {"positions": "local_p", "window": 4}),
        ("luong", {"positions": "luong_local_m"}, {"positions": "local_m"}),
        ("local", {"window": 3, "kernel": "blocked"}, {"window": 3, "kernel": "band"}),
        ("local", {"window": 3, "kernel": "looped"}, {"window": 3, "kernel": "band", "loop": True}),
        ("local", {"window": 3, "kernel": "band"}, {"window": 3, "kernel": "band"}),
    ],
)
def test_saved_configs_load_through_the_renames(kind, old, new):
    assert presets.renamed_options(kind, old) == (kind, new)
    resolve(*presets.renamed_options(kind, old))
    for name in presets.RENAMED:
        with pytest.raises(ValueError, match=f"'{name}'"):
            axis = "positions" if name.startswith("luong") else "kernel"
            resolve(kind, {**new, axis: name})


def test_the_library_imports_nothing_else_of_the_project_and_no_inspect():
    root = pathlib.Path(attention.__file__).parent
    modules = sorted(root.glob("*.py"))
    assert len(modules) <= 10, [m.name for m in modules]
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name != "inspect", path
                if name.startswith("attn_research"):
                    assert name.startswith("attn_research.attention"), (path, name)


def test_local_presets_have_default_windows():
    assert resolve("local").positions.reach() == (8, 8)
    assert resolve("local", {"window": 3}).positions.reach() == (3, 3)
    assert resolve("local_2d").positions.size == (3, 3)
    assert resolve("luong", {"positions": "local_m"}).positions.reach() == (10, 10)
