"""Local attention: the 1-D sliding window (i - left ... i + right) and the 2-D k x k
neighbourhood on a row-major grid, against dense float64 references; locality by gradients.

The band kernels never see a dense [T, T] mask, so the block size is varied too: it is a
speed knob that must never change the result.
"""

import attention_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.attention import attend


def _attend(q, k, v, mask=None, **static):
    return jax.jit(lambda q, k, v, mask: attend(q, k, v, mask=mask, **static))(q, k, v, mask)


def _qkv(seed, batch, tq, tk, heads, kv_heads, depth=4, value_depth=3):
    rng = np.random.default_rng(seed)
    return (
        ref.normal(rng, *batch, tq, heads, depth),
        ref.normal(rng, *batch, tk, kv_heads, depth),
        ref.normal(rng, *batch, tk, kv_heads, value_depth),
    )


def _padding(seed, shape, valid=0.7):
    """A random key- or query-padding mask of ``shape`` (one axis of the last two is 1)."""
    return np.random.default_rng(seed).random(shape) < valid


# (window, causal, Tq, Tk, H, Hkv, batch, mask shape or None)
LOCAL_CASES = {
    "symmetric": (2, False, 11, 11, 2, 2, (2,), None),
    "left_right": ((3, 1), False, 10, 10, 2, 2, (2,), None),
    "left_only": ((2, 0), False, 9, 9, 2, 1, (1,), None),
    "right_only": ((0, 3), False, 9, 9, 2, 2, (1,), None),
    "self_only": ((0, 0), False, 7, 7, 1, 1, (2,), None),
    "causal_window": ((3, 0), False, 10, 10, 2, 2, (2,), None),
    "causal_flag": (3, True, 10, 10, 2, 2, (2,), None),
    "window_beyond_length": (20, False, 7, 7, 2, 2, (2,), None),
    "tq_gt_tk": ((2, 3), False, 11, 6, 2, 2, (2,), None),
    "tq_lt_tk": ((1, 4), False, 5, 12, 2, 2, (2,), None),
    "gqa_key_padding": (2, False, 9, 9, 4, 2, (2,), (2, 1, 1, 9)),
    "mqa_query_padding": ((2, 1), False, 9, 9, 4, 1, (2,), (2, 1, 9, 1)),
    "per_head_key_padding": (2, False, 8, 8, 2, 2, (2,), (2, 2, 1, 8)),
    "rank2_key_padding": (1, True, 8, 8, 2, 2, (2,), (1, 8)),
    "extra_batch_dims": ((1, 2), False, 7, 7, 4, 2, (2, 3), (2, 1, 1, 1, 7)),
}


@pytest.mark.parametrize("case", list(LOCAL_CASES))
def test_local_matches_reference_for_every_block_size(case):
    window, causal, tq, tk, heads, kv_heads, batch, mask_shape = LOCAL_CASES[case]
    q, k, v = _qkv(0, batch, tq, tk, heads, kv_heads)
    mask = None if mask_shape is None else _padding(1, mask_shape)
    left, right = (window, window) if isinstance(window, int) else window
    if causal:
        right = 0
    expected, _ = ref.local(q, k, v, left=left, right=right, mask=mask)
    for block_size in (None, 1, 3, 4):
        out = _attend(
            q, k, v, mask, kind="local", window=window, causal=causal, block_size=block_size
        )
        assert out.shape == expected.shape and out.dtype == np.float32
        np.testing.assert_allclose(
            out, expected, atol=1e-5, rtol=1e-5, err_msg=f"block_size={block_size}"
        )


# (grid, window, H, Hkv, batch, mask shape or None, block sizes)
LOCAL_2D_CASES = {
    "3x3_on_4x5": ((4, 5), 3, 2, 2, (2,), None, (None, 1, 2, (2, 3))),
    "3x5_on_4x3": ((4, 3), (3, 5), 2, 1, (1,), None, (None, 1, (3, 2))),
    "1x3_rows_only": ((3, 4), (1, 3), 2, 2, (2,), None, (None, 2)),
    "5x1_cols_only": ((5, 3), (5, 1), 2, 2, (1,), None, (None, 2)),
    "window_beyond_grid": ((2, 3), 7, 2, 2, (2,), None, (None, 1)),
    "single_row": ((1, 7), 3, 2, 2, (2,), None, (None, 2)),
    "gqa_key_padding": ((3, 4), 3, 4, 2, (2,), (2, 1, 1, 12), (None, 2)),
    "query_padding": ((3, 4), 3, 2, 2, (2,), (2, 1, 12, 1), (None, 2)),
    "extra_batch_dims": ((3, 3), 3, 2, 1, (2, 2), (2, 1, 1, 1, 9), (None, 2)),
}


@pytest.mark.parametrize("case", list(LOCAL_2D_CASES))
def test_local_2d_matches_reference_for_every_block_size(case):
    grid, window, heads, kv_heads, batch, mask_shape, block_sizes = LOCAL_2D_CASES[case]
    tokens = grid[0] * grid[1]
    q, k, v = _qkv(2, batch, tokens, tokens, heads, kv_heads)
    mask = None if mask_shape is None else _padding(3, mask_shape)
    sizes = (window, window) if isinstance(window, int) else window
    expected, _ = ref.local_2d(q, k, v, grid=grid, window=sizes, mask=mask)
    for block_size in block_sizes:
        out = _attend(
            q, k, v, mask, kind="local_2d", grid=grid, window=window, block_size=block_size
        )
        assert out.shape == expected.shape and out.dtype == np.float32
        np.testing.assert_allclose(
            out, expected, atol=1e-5, rtol=1e-5, err_msg=f"block_size={block_size}"
        )


@pytest.mark.parametrize("kind", ["local", "local_2d"])
def test_bfloat16_keeps_logits_and_softmax_in_float32(kind):
    rng = np.random.default_rng(8)
    # Large logits (std ~ 36) make the bf16 rounding of logits and weights visible; 1024 output
    # rows average the errors.
    q, k, v = (
        jnp.asarray(ref.normal(rng, 4, 32, 4, 8, scale=s), jnp.bfloat16) for s in (6.0, 6.0, 1.0)
    )
    k, v = k[:, :, :2], v[:, :, :2]
    if kind == "local":
        options, window = {"window": (3, 2), "block_size": 4}, ref.window_1d(32, 32, 3, 2)
    else:
        options, window = {"grid": (4, 8), "window": 3}, ref.window_2d(4, 8, 3, 3)
    out, weights = _attend(q, k, v, kind=kind, return_weights=True, **options)
    assert out.dtype == jnp.bfloat16 and weights.dtype == jnp.float32
    logits = ref.dot_product_logits(q, k)  # of the same bf16 inputs, in float64
    expected, expected_weights = ref.attention(logits, v, window)
    err = np.abs(ref.f64(out) - expected)
    err_bf16 = np.abs(ref.bf16_everywhere(logits, v, window) - expected)
    assert err.max() < 2e-2
    assert err.mean() < err_bf16.mean() / 2, (err.mean(), err_bf16.mean())
    # Weights come back in float32, computed from the bf16 inputs without rounding to bf16.
    np.testing.assert_allclose(weights, expected_weights, atol=2e-6)


def _dependence(q, k, v, **options):
    """``[Tq, Tk]`` bools: does output row i depend on key j, on value j (batch of 1)?"""
    probe = ref.normal(np.random.default_rng(4), q.shape[1], q.shape[2], v.shape[-1])

    def rows(k, v):
        return jnp.einsum("qhd,qhd->q", attend(q, k, v, **options)[0], probe)

    jac_k, jac_v = jax.jit(jax.jacrev(rows, argnums=(0, 1)))(k, v)  # [Tq, 1, Tk, Hkv, D]
    return np.abs(jac_k).sum(axis=(1, 3, 4)) > 0, np.abs(jac_v).sum(axis=(1, 3, 4)) > 0


def _check_dependence(depends_k, depends_v, allowed):
    np.testing.assert_array_equal(depends_v, allowed)  # exactly zero outside, nonzero inside
    assert not np.any(depends_k & ~allowed)
    # A row with a single key has weight 1 whatever that key is: only v reaches it.
    several = allowed.sum(-1, keepdims=True) > 1
    np.testing.assert_array_equal(depends_k & several, allowed & several)


@pytest.mark.parametrize("window, causal", [((3, 1), False), (2, True)])
def test_local_locality_by_gradients(window, causal):
    q, k, v = _qkv(5, (1,), 12, 12, 2, 1)
    depends_k, depends_v = _dependence(
        q, k, v, kind="local", window=window, causal=causal, block_size=4
    )
    left, right = (window, window) if isinstance(window, int) else window
    _check_dependence(depends_k, depends_v, ref.window_1d(12, 12, left, 0 if causal else right))


@pytest.mark.parametrize("window", [3, (5, 1)])
def test_local_2d_locality_by_gradients(window):
    grid = (4, 5)
    q, k, v = _qkv(6, (1,), 20, 20, 2, 2)
    depends_k, depends_v = _dependence(
        q, k, v, kind="local_2d", grid=grid, window=window, block_size=2
    )
    sizes = (window, window) if isinstance(window, int) else window
    _check_dependence(depends_k, depends_v, ref.window_2d(*grid, *sizes))


def test_local_with_window_covering_everything_is_dot_product():
    q, k, v = _qkv(7, (2,), 6, 6, 2, 2)
    expected, _ = ref.dot_product(q, k, v, is_causal=True)
    out = _attend(q, k, v, kind="local", window=(6, 0), block_size=2)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
