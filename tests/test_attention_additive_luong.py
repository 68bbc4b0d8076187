"""Additive (Bahdanau et al. 2014) and Luong (Luong et al. 2015) attention against dense
float64 references written from the papers' formulas, through their modules."""

import attention_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from attention_modules import AdditiveAttention, LuongAttention

from attn_research.attention import attend, kernels, positions, scores


def _qkv(seed, batch, tq, tk, heads, kv_heads, depth=8, value_depth=3):
    rng = np.random.default_rng(seed)
    return (
        ref.normal(rng, *batch, tq, heads, depth),
        ref.normal(rng, *batch, tk, kv_heads, depth),
        ref.normal(rng, *batch, tk, kv_heads, value_depth),
    )


def _init(module, seed, q, k, v):
    return jax.jit(module.init)(jax.random.key(seed), q, k, v)


def _apply(module, params, q, k, v, mask=None, **static):
    """``module.apply`` under jit, returning ``(out, weights)``."""
    return jax.jit(
        lambda params, q, k, v, mask: module.apply(
            {"params": params}, q, k, v, mask=mask, return_weights=True, **static
        )
    )(params, q, k, v, mask)


def _additive_params(module, q, k, v, seed):
    """The module's parameters, with the normalized form's g and b drawn away from their init."""
    params = dict(_init(module, 0, q, k, v)["params"])
    rng = np.random.default_rng(seed)
    if module.normalize:
        params["score_scale"] = ref.normal(rng, q.shape[-2])
        params["score_bias"] = ref.normal(rng, q.shape[-1], scale=0.5)
    return params


# (batch, Tq, Tk, H, Hkv, mask shape or None, causal)
ADDITIVE_CASES = {
    "plain": ((2,), 5, 7, 2, 2, None, False),
    "key_padding": ((2,), 7, 6, 2, 2, (2, 1, 1, 6), False),
    "dense_mask_gqa": ((2,), 7, 6, 4, 2, (2, 1, 7, 6), False),
    "causal_mqa": ((1,), 7, 7, 4, 1, None, True),
    "extra_batch_dims_causal_padding": ((2, 2), 5, 6, 2, 2, (2, 1, 1, 1, 6), True),
}


@pytest.mark.parametrize("normalize", [False, True], ids=["plain_w", "normalized_w"])
@pytest.mark.parametrize("case", list(ADDITIVE_CASES))
def test_additive_matches_reference_for_every_query_chunk(case, normalize):
    """e_ij = w^T tanh(q_i + k_j (+ b)), w or g w/||w||; query_chunk_size never changes it."""
    batch, tq, tk, heads, kv_heads, mask_shape, causal = ADDITIVE_CASES[case]
    q, k, v = _qkv(0, batch, tq, tk, heads, kv_heads)
    mask = None if mask_shape is None else np.random.default_rng(1).random(mask_shape) < 0.7
    params = _additive_params(AdditiveAttention(normalize=normalize), q, k, v, seed=2)
    expected, expected_weights = ref.additive(
        q,
        k,
        v,
        params["score_vector"],
        g=params.get("score_scale"),
        b=params.get("score_bias"),
        mask=mask,
        is_causal=causal,
    )
    outputs = []
    for chunk in (1, 3, tq):
        module = AdditiveAttention(normalize=normalize, query_chunk_size=chunk)
        out, weights = _apply(module, params, q, k, v, mask, causal=causal)
        assert out.shape == expected.shape and weights.shape == expected_weights.shape
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5, err_msg=f"chunk {chunk}")
        np.testing.assert_allclose(weights, expected_weights, atol=1e-6, err_msg=f"chunk {chunk}")
        outputs.append(np.asarray(out))
    for out in outputs[1:]:
        np.testing.assert_allclose(out, outputs[0], atol=1e-6, rtol=1e-6)


def test_dense_kernel_takes_any_pair_function_in_query_chunks():
    """The additive score's pair function, run by the dense kernel two query rows at a time."""
    q, k, v = _qkv(3, (2,), 5, 4, 2, 2)
    w = ref.normal(np.random.default_rng(4), 2, 8)
    expected, _ = ref.additive(q, k, v, w)
    problem = kernels.Problem(
        lambda q, k, precision=None: scores.additive_scores(q, k, w), positions.Global()
    )
    out = jax.jit(lambda q, k, v: kernels.get("dense")(q, k, v, problem, query_chunk_size=2))(
        q, k, v
    )
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


def test_additive_bfloat16_keeps_scores_and_softmax_in_float32():
    q, k, v = (
        jnp.asarray(x * s, jnp.bfloat16) for x, s in zip(_qkv(5, (2,), 8, 8, 2, 2), (3, 3, 1))
    )
    module = AdditiveAttention()
    params = {"score_vector": 10.0 * ref.normal(np.random.default_rng(6), 2, 8)}  # large scores
    out, weights = _apply(module, params, q, k, v)
    assert out.dtype == jnp.bfloat16 and weights.dtype == jnp.float32
    logits = ref.additive_logits(q, k, params["score_vector"])
    expected, expected_weights = ref.attention(logits, v)
    np.testing.assert_allclose(
        weights, expected_weights, atol=1e-5
    )  # logits up to ~50: f32 rounding
    err = np.abs(ref.f64(out) - expected)
    err_bf16 = np.abs(ref.bf16_everywhere(logits, v) - expected)
    assert err.max() < 2e-2
    assert err.mean() < err_bf16.mean() / 2, (err.mean(), err_bf16.mean())


LUONG_PARAMS = {
    "dot": set(),
    "general": {"w_general"},
    "concat": {"w_query", "w_key", "score_vector"},
}


@pytest.mark.parametrize("rule", ["global", "local_m", "local_p"])
@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_luong_matches_reference(score, rule):
    q, k, v = _qkv(7, (2,), 6, 9, 2, 2)
    key_padding = np.ones((2, 1, 1, 9), bool)
    key_padding[1, ..., 6:] = False  # The second source is 6 long: S = 6 for local_p.
    module = LuongAttention(score=score, positions=rule, window=2)
    params = _init(module, 1, q, k, v).get("params", {})
    expected_names = LUONG_PARAMS[score] | (
        {"w_position", "v_position"} if rule == "local_p" else set()
    )
    assert set(params) == expected_names
    for mask, causal in ((None, False), (key_padding, False), (key_padding, True)):
        expected, expected_weights = ref.luong(
            q,
            k,
            v,
            score=score,
            positions=rule,
            window=2,
            params=params,
            mask=mask,
            is_causal=causal,
        )
        out, weights = _apply(module, params, q, k, v, mask, causal=causal)
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5, err_msg=f"causal={causal}")
        np.testing.assert_allclose(weights, expected_weights, atol=1e-6, err_msg=f"causal={causal}")


def test_luong_local_m_query_positions():
    """One decoder step per example at target positions t: the window is [t - D, t + D]."""
    q, k, v = _qkv(8, (3,), 1, 10, 1, 1)
    positions = np.array([[0], [4], [9]])
    module = LuongAttention(score="general", positions="local_m", window=2)
    params = _init(module, 2, q, k, v)["params"]
    expected, expected_weights = ref.luong(
        q,
        k,
        v,
        score="general",
        positions="local_m",
        window=2,
        params=params,
        query_positions=positions,
    )
    out, weights = _apply(module, params, q, k, v, query_positions=jnp.asarray(positions))
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
    inside = np.abs(np.arange(10) - positions) <= 2  # [batch, Tk]
    weights = np.asarray(weights)[:, 0, 0]
    assert np.all(weights[~inside] == 0) and np.all(weights[inside] > 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)


def test_luong_local_p_source_length_with_a_query_padding_mask():
    """A query-padding mask ``[..., Tq, 1]`` pads no key: S (the row's allowed keys) stays Tk for
    the queries it keeps, exactly as without a mask."""
    q, k, v = _qkv(11, (2,), 6, 10, 1, 1)
    module = LuongAttention(positions="local_p", window=2)
    params = _init(module, 5, q, k, v)["params"]
    queries = np.ones((2, 1, 6, 1), bool)
    queries[0, 0, 5] = False
    expected, expected_weights = ref.luong(
        q, k, v, score="dot", positions="local_p", window=2, params=params, mask=queries
    )
    out, weights = _apply(module, params, q, k, v, queries)
    _, unmasked = _apply(module, params, q, k, v)
    np.testing.assert_array_equal(np.asarray(weights)[0, 0, 5], 0.0)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
    np.testing.assert_allclose(np.asarray(weights)[1], np.asarray(unmasked)[1], atol=1e-6)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


def test_luong_local_p_weights_are_window_softmax_times_gaussian():
    q, k, v = _qkv(9, (2,), 5, 12, 2, 2)
    window = 3
    module = LuongAttention(score="dot", positions="local_p", window=window)
    params = _init(module, 3, q, k, v)["params"]
    _, weights = _apply(module, params, q, k, v)
    weights = ref.f64(weights)
    p_t = ref.luong_position(q, params, source_len=12)  # [B, H, Tq, 1]
    s = np.arange(12)
    gaussian = np.exp(-((s - p_t) ** 2) / (2 * (window / 2) ** 2))
    inside = np.abs(s - p_t) <= window
    assert np.all(weights[~inside] == 0) and np.all(weights[inside] > 0)
    # Divided by the Gaussian, the weights are a softmax over the window: rows sum to 1 ...
    np.testing.assert_allclose(np.where(inside, weights / gaussian, 0).sum(-1), 1.0, rtol=1e-5)
    # ... of the dot scores: log-ratios of two keys are differences of their scores.
    scores = np.einsum("bqhd,bkhd->bhqk", ref.f64(q), ref.f64(k))
    log_w = np.log(np.where(inside, weights / gaussian, 1.0))
    centred = log_w - scores
    spread = np.where(inside, centred, -np.inf).max(-1) - np.where(inside, centred, np.inf).min(-1)
    assert spread.max() < 1e-4
    sums = weights.sum(-1)
    assert np.all(sums <= 1.0 + 1e-6) and np.all(sums < 1.0 - 1e-3)


def test_luong_bfloat16_keeps_scores_and_softmax_in_float32():
    q, k, v = (
        jnp.asarray(x * s, jnp.bfloat16) for x, s in zip(_qkv(10, (2,), 8, 8, 2, 2), (3, 3, 1))
    )
    module = LuongAttention(score="general")
    params = _init(module, 4, q, k, v)["params"]
    out, weights = _apply(module, params, q, k, v)
    assert out.dtype == jnp.bfloat16 and weights.dtype == jnp.float32
    logits = ref.luong_logits(q, k, score="general", params=params)
    expected, expected_weights = ref.attention(logits, v)
    np.testing.assert_allclose(weights, expected_weights, atol=5e-6)
    err = np.abs(ref.f64(out) - expected)
    err_bf16 = np.abs(ref.bf16_everywhere(logits, v) - expected)
    assert err.max() < 2e-2
    assert err.mean() < err_bf16.mean() / 2, (err.mean(), err_bf16.mean())


# Opt-in scales against training saturation (scores.Dot, scores.General, scores.Centre), each as
# ``(module options, reference options)``; the depth is 8 and the centre network 8 units wide.
SCALES = {
    "dot_by_sqrt_depth": (
        {"score": "dot", "divide_by_sqrt_depth": True},
        {"score": "dot", "score_scale": 8**-0.5},
    ),
    "general_by_sqrt_depth": (
        {"score": "general", "divide_by_sqrt_depth": True},
        {"score": "general", "score_scale": 8**-0.5},
    ),
    "local_p_general_by_sqrt_depth": (
        {"score": "general", "positions": "local_p", "divide_by_sqrt_depth": True},
        {"score": "general", "positions": "local_p", "score_scale": 8**-0.5},
    ),
    "local_p_position_by_sqrt_units": (
        {"score": "dot", "positions": "local_p", "divide_position_by_sqrt_units": True},
        {"score": "dot", "positions": "local_p", "position_scale": 8**-0.5},
    ),
    "local_p_both": (
        {
            "score": "general",
            "positions": "local_p",
            "divide_by_sqrt_depth": True,
            "divide_position_by_sqrt_units": True,
        },
        {
            "score": "general",
            "positions": "local_p",
            "score_scale": 8**-0.5,
            "position_scale": 8**-0.5,
        },
    ),
}


@pytest.mark.parametrize("case", list(SCALES))
def test_luong_scales_on_are_the_scaled_formula_and_off_is_the_paper_bit_for_bit(case):
    """On: the reference with the score times 1/sqrt(d), or local-p's pre-activation times
    1/sqrt(units). Off (False): the very arrays of the options' absence, the paper's formula."""
    options, reference = SCALES[case]
    q, k, v = _qkv(12, (2,), 6, 9, 1, 1)
    q = q * 4.0  # large enough scores and pre-activations that a missed scale shows
    key_padding = np.ones((2, 1, 1, 9), bool)
    key_padding[1, ..., 5:] = False
    module = LuongAttention(window=2, **options)
    params = _init(module, 6, q, k, v)["params"]
    expected, expected_weights = ref.luong(
        q, k, v, window=2, params=params, mask=key_padding, **reference
    )
    out, weights = _apply(module, params, q, k, v, key_padding)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    paper = {key: value for key, value in options.items() if key in ("score", "positions")}
    off = {key: (False if value is True else value) for key, value in options.items()}
    paper_out, paper_weights = _apply(
        LuongAttention(window=2, **paper), params, q, k, v, key_padding
    )
    off_out, off_weights = _apply(LuongAttention(window=2, **off), params, q, k, v, key_padding)
    np.testing.assert_array_equal(off_out, paper_out)
    np.testing.assert_array_equal(off_weights, paper_weights)
    assert np.abs(np.asarray(paper_weights) - np.asarray(weights)).max() > 1e-3


@pytest.mark.parametrize("score", ["dot", "general"])
@pytest.mark.parametrize("gain_init", [None, 2.0])
def test_learned_gain_starts_at_gain_init_and_multiplies_the_scaled_logits(score, gain_init):
    """``learned_gain``: one scalar ``gain`` initialized to ``gain_init`` (1 by default); the
    logits are gain / sqrt(d) times the score (TF's LuongAttention(scale=True)); dot with it
    has a parameter, so the parameter-free ``attend`` refuses it."""
    q, k, v = _qkv(13, (2,), 6, 9, 1, 1)
    options = {} if gain_init is None else {"gain_init": gain_init}
    module = LuongAttention(score=score, divide_by_sqrt_depth=True, learned_gain=True, **options)
    params = dict(_init(module, 6, q, k, v)["params"])
    assert float(params["gain"]) == (gain_init or 1.0)
    for gain in (float(params["gain"]), 1.7):
        params["gain"] = jnp.float32(gain)
        expected, expected_weights = ref.luong(
            q, k, v, score=score, params=params, score_scale=gain * 8**-0.5
        )
        out, weights = _apply(module, params, q, k, v)
        np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="has parameters of its own"):
        attend(q, k, v, kind="luong", score="dot", learned_gain=True)


@pytest.mark.parametrize("score", ["dot", "general"])
def test_a_gain_that_does_not_start_positive_is_refused(score):
    with pytest.raises(ValueError, match="gain_init: the starting gain must be > 0, got 0.0"):
        LuongAttention(score=score, learned_gain=True, gain_init=0.0)
