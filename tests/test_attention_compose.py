"""Attention as positions x score x kernel: combinations that no preset names, against the
float64 references; the combinations that cannot work; the rolling decode cache of a window;
what ``auto`` picks; and a new positions rule or kernel that takes one registration line."""

import dataclasses
import logging

import attention_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from attention_modules import flat

from attn_research.attention import MultiHeadAttention, attend, kernels, positions, resolve

B, T, F, H = 2, 12, 16, 2


def _layer_case(kind, options, seed=0, tokens=T, **call):
    """``(params, q, k, v, out)`` of a self-attention layer of ``kind`` on random inputs."""
    x = ref.normal(np.random.default_rng(seed), B, tokens, F)
    layer = MultiHeadAttention(num_heads=H, attention=resolve(kind, options))
    params = jax.jit(lambda x: layer.init(jax.random.key(seed), x, **call))(x)["params"]
    out = jax.jit(lambda p, x: layer.apply({"params": p}, x, **call))(params, x)
    q, k, v = (
        ref.dense(x, params[n]["kernel"], params[n]["bias"]) for n in ("query", "key", "value")
    )
    return params, x, (q, k, v), out


def test_additive_scores_in_a_window():
    """local x additive: e_ij = w^T tanh(q_i + k_j) over |i - j| window, by the band kernel."""
    params, x, (q, k, v), out = _layer_case("local", {"window": (3, 1), "score": "additive"})
    w = flat(params["attention"])["score_vector"]
    band = ref.window_1d(T, T, 3, 1)
    expected = ref.multi_head(params, x, x, lambda q, k, v: ref.additive(q, k, v, w, mask=band)[0])
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


def test_general_scores_on_a_2d_neighbourhood():
    """window_2d x general: e_ij = q_i^T W_a k_j within a 3 x 3 neighbourhood of a 3 x 4 grid."""
    grid = (3, 4)
    params, x, _, out = _layer_case(
        "local_2d", {"window": 3, "score": "general"}, seed=1, grid=grid
    )
    p = flat(params["attention"])
    near = ref.window_2d(*grid, 3, 3)
    expected = ref.multi_head(
        params,
        x,
        x,
        lambda q, k, v: ref.attention(ref.luong_logits(q, k, score="general", params=p), v, near)[
            0
        ],
    )
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kernel, options",
    [
        ("dense", {}),
        ("chunked", {"key_chunk_size": 5, "query_chunk_size": 4}),
        ("band", {}),
        ("band", {"loop": True}),
        ("flash_band", {}),
        ("auto", {}),
    ],
)
def test_every_kernel_computes_a_causal_window(kernel, options):
    rng = np.random.default_rng(2)
    q, k, v = (ref.normal(rng, B, T, H, 8) for _ in range(3))
    out = attend(q, k, v, kind="local", window=(2, 3), causal=True, kernel=kernel, **options)
    expected, _ = ref.local(q, k, v, left=2, right=0)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


QKV = tuple(np.ones((1, 4, 2, 8), np.float32) for _ in range(3))

REFUSED = {
    "window_2d_decoded": (
        lambda: resolve("local_2d", {"window": 3}).positions.cache_size(10),
        "window_2d has no order",
    ),
    "window_ahead_decoded": (
        lambda: resolve("local", {"window": 2}).positions.cache_size(10),
        "decoding sees no future keys",
    ),
    "additive_on_cudnn": (
        lambda: MultiHeadAttention(2, attention=resolve("additive", {"kernel": "cudnn"})).init(
            jax.random.key(0), np.ones((1, 4, 8))
        ),
        "computes dot-product scores only",
    ),
    "global_on_band": (
        lambda: attend(*QKV, kernel="band"),
        "the band kernel needs a band of positions, and 'global' is none",
    ),
    "local_p_on_band": (
        lambda: MultiHeadAttention(
            2, attention=resolve("luong", {"positions": "local_p", "kernel": "band"})
        ).init(jax.random.key(0), np.ones((1, 4, 8))),
        "cannot follow positions 'local_p'",
    ),
    "query_positions_on_chunked": (
        lambda: attend(*QKV, kernel="chunked", query_positions=np.arange(4)[None]),
        "takes query positions 0 .. Tq - 1 only",
    ),
    "block_size_for_dense": (
        lambda: attend(*QKV, kernel="dense", block_size=4),
        r"\(global x dot x dense\) does not take option 'block_size'",
    ),
    "unknown_positions": (
        lambda: attend(*QKV, positions="dilated"),
        r"unknown positions rule 'dilated'; registered: \[",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_impossible_combinations_say_why(case):
    call, message = REFUSED[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_window_decode_cache_holds_left_plus_one_keys_and_equals_teacher_forcing():
    left, heads, steps = 3, 2, 11
    layer = MultiHeadAttention(heads, attention=resolve("local", {"window": left}), decode=True)
    x = ref.normal(np.random.default_rng(3), B, steps, F)
    variables = layer.init(jax.random.key(0), x, causal=True)
    assert variables["cache"]["cached_key"].shape == (B, left + 1, heads, F // heads)
    assert variables["cache"]["cached_value"].shape == (B, left + 1, heads, F // heads)
    full = layer.clone(decode=False).apply({"params": variables["params"]}, x, causal=True)
    cache = variables["cache"]

    @jax.jit
    def step(cache, x_t):
        return layer.apply(
            {"params": variables["params"], "cache": cache}, x_t, causal=True, mutable=["cache"]
        )

    for t in range(steps):  # the ring wraps around twice
        out, mutated = step(cache, x[:, t : t + 1])
        cache = mutated["cache"]
        np.testing.assert_allclose(out[:, 0], full[:, t], atol=1e-5, rtol=1e-5, err_msg=f"t={t}")


def test_global_decode_cache_keeps_every_position():
    layer = MultiHeadAttention(2, decode=True)
    variables = layer.init(jax.random.key(0), np.ones((B, 9, F)), causal=True)
    assert variables["cache"]["cached_key"].shape == (B, 9, 2, F // 2)


def _problem(rule, dot=True, **fields):
    pair = kernels.dense.ScaledDot(0.5) if dot else (lambda q, k, precision=None: q)
    return kernels.Problem(pair, rule, **fields)


@pytest.mark.parametrize(
    "shape, rule, dot, fields, expected",
    [
        ((1, 64, 2, 8), positions.window(4), True, {}, "band"),
        ((1, 64, 2, 8), positions.window(4), True, {"query_positions": np.zeros((1, 64))}, "dense"),
        ((1, 64, 2, 8), positions.Global(), False, {}, "dense"),
        ((1, 64, 2, 8), positions.Global(), True, {}, "dense"),
        ((1, 16384, 2, 8), positions.Causal(), True, {}, "chunked"),
        ((1, 64, 2, 8), positions.local_p(3), True, {}, "dense"),
    ],
    ids=["window", "decoding_window", "additive", "small_global", "long_causal", "local_p"],
)
def test_auto_picks_a_kernel_that_fits(shape, rule, dot, fields, expected):
    q = jax.ShapeDtypeStruct(shape, jnp.float32)
    name, options, why = kernels.choose(q, q, q, _problem(rule, dot, **fields))
    assert name == expected and why
    if not dot:
        assert options == {"query_chunk_size": kernels.AUTO_WIDE_QUERY_CHUNK}


def test_auto_says_in_the_log_which_kernel_it_picked(caplog):
    q = np.ones((1, 8, 2, 4), np.float32)
    with caplog.at_level(logging.INFO):
        attend(q, q, q, kind="local", window=2)
    assert "attention kernel auto -> band loop=False (window is a band)" in caplog.text


@dataclasses.dataclass(frozen=True)
class Dilated(positions.Rule):
    """A rule a researcher adds: every ``stride``-th key, ``(i - j) % stride == 0``."""

    stride: int
    name = "dilated"

    def allowed(self, q_pos, k_pos, *, grid, centre):
        return (q_pos - k_pos) % self.stride == 0


def test_a_new_positions_rule_is_one_registration_away():
    positions.register("dilated", Dilated, options=("stride",), required=("stride",))
    try:
        params, x, _, out = _layer_case("dot_product", {"positions": "dilated", "stride": 3})
        mask = (np.arange(T)[:, None] - np.arange(T)[None, :]) % 3 == 0
        expected = ref.multi_head(
            params, x, x, lambda q, k, v: ref.dot_product(q, k, v, mask=mask)[0]
        )
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    finally:
        positions.RULES.unregister("dilated")


@dataclasses.dataclass(frozen=True)
class Ahead(positions.Rule):
    """A band rule a researcher adds: ``i <= j <= i + n`` (the next ``n`` keys and itself)."""

    n: int
    name = "ahead"

    def allowed(self, q_pos, k_pos, *, grid, centre):
        return (k_pos >= q_pos) & (k_pos <= q_pos + self.n)

    def reach(self):
        return 0, self.n

    def band(self, tq, tk, grid):
        return positions.Band((tq,), (tk,), ((0, self.n),))


@pytest.mark.parametrize(
    "kernel, options",
    [("dense", {}), ("band", {"block_size": 4}), ("band", {"loop": True, "block_size": 4})],
)
def test_a_new_band_rule_runs_in_the_dense_and_band_kernels(kernel, options):
    positions.register("ahead", Ahead, options=("n",), required=("n",))
    try:
        rng = np.random.default_rng(6)
        q, k, v = (ref.normal(rng, B, T, H, 8) for _ in range(3))
        out = attend(q, k, v, positions="ahead", n=3, kernel=kernel, **options)
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        expected, _ = ref.dot_product(q, k, v, mask=(j >= i) & (j <= i + 3))
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    finally:
        positions.RULES.unregister("ahead")


def halves(q, k, v, problem, *, split=None):
    """A kernel a researcher adds: the dense kernel on each half of the queries."""
    half = split or q.shape[-3] // 2
    dense = kernels.get("dense")
    parts = [
        dense(q[..., rows, :, :], k, v, dataclasses.replace(problem, query_positions=at))
        for rows, at in (
            (slice(None, half), np.arange(half)[None]),
            (slice(half, None), np.arange(half, q.shape[-3])[None]),
        )
    ]
    return jnp.concatenate(parts, axis=-3)


def test_a_new_kernel_is_one_registration_away():
    kernels.register("halves", halves, options=("split",))
    try:
        rng = np.random.default_rng(7)
        q, k, v = (ref.normal(rng, 1, T, H, 8) for _ in range(3))
        out = attend(q, k, v, kind="local", window=(2, 1), kernel="halves", split=5)
        expected, _ = ref.local(q, k, v, left=2, right=1)
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
        assert "split" in kernels.options_of("auto")
    finally:
        kernels.KERNELS.unregister("halves")


def test_calls_arguments_are_those_of_attention():
    import inspect

    from attn_research.attention.compose import CALL_ARGS, Attention

    params = inspect.signature(Attention.__call__).parameters.values()
    assert CALL_ARGS == tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY)
