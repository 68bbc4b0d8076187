"""Dot-product attention (Vaswani et al. 2017): every kernel against a dense float64 reference.

The kernels dense, chunked and jax_nn must agree with ``attention_reference`` and with
each other on odd lengths that the chunk sizes do not divide, Tq != Tk, grouped-query heads,
extra batch dims, biases, causal and padding masks of every broadcast shape.
"""

import functools

import attention_reference as ref
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.attention import MultiHeadAttention, attend, resolve

KERNELS = ("dense", "chunked", "jax_nn")
# Chunk sizes that divide none of the lengths below, so the chunked kernel pads both axes.
CHUNKS = {"key_chunk_size": 3, "query_chunk_size": 2}


def _case(
    seed,
    batch,
    tq,
    tk,
    heads,
    kv_heads,
    depth=4,
    value_depth=None,
    mask=None,
    bias=None,
    causal=False,
):
    """Inputs and options of one case; ``mask``/``bias`` are shapes (random contents) or None."""
    rng = np.random.default_rng(seed)
    q = ref.normal(rng, *batch, tq, heads, depth)
    k = ref.normal(rng, *batch, tk, kv_heads, depth)
    v = ref.normal(rng, *batch, tk, kv_heads, value_depth or depth)
    options = {"causal": causal}
    if mask is not None:
        options["mask"] = rng.random(mask) < 0.7
    if bias is not None:
        options["bias"] = ref.normal(rng, *bias)
    return q, k, v, options


CASES = {
    "plain": dict(batch=(2,), tq=6, tk=6, heads=2, kv_heads=2),
    "odd_lengths_tq_ne_tk": dict(batch=(2,), tq=7, tk=5, heads=2, kv_heads=2, mask=(2, 1, 7, 5)),
    "tq_lt_tk_key_padding": dict(batch=(2,), tq=3, tk=8, heads=2, kv_heads=2, mask=(2, 1, 1, 8)),
    "gqa_4_over_2": dict(batch=(2,), tq=5, tk=7, heads=4, kv_heads=2, mask=(2, 1, 1, 7)),
    "mqa_4_over_1": dict(batch=(1,), tq=7, tk=5, heads=4, kv_heads=1, mask=(1, 4, 7, 5)),
    "extra_batch_dims": dict(
        batch=(2, 3), tq=5, tk=6, heads=4, kv_heads=2, mask=(2, 1, 1, 5, 6), bias=(1, 3, 4, 1, 6)
    ),
    "bias": dict(batch=(2,), tq=5, tk=5, heads=4, kv_heads=4, bias=(2, 4, 5, 5)),
    "bias_rank2_mask_per_head": dict(
        batch=(2,), tq=5, tk=7, heads=4, kv_heads=2, mask=(1, 4, 5, 7), bias=(5, 7)
    ),
    "whole_example_mask": dict(batch=(2,), tq=5, tk=6, heads=2, kv_heads=2, mask=(2, 1, 1, 1)),
    "query_padding": dict(batch=(2,), tq=7, tk=5, heads=2, kv_heads=1, mask=(2, 1, 7, 1)),
    "mask_rank2": dict(batch=(2,), tq=5, tk=7, heads=2, kv_heads=2, mask=(5, 7)),
    "causal": dict(batch=(2,), tq=7, tk=7, heads=4, kv_heads=2, causal=True),
    "causal_tq_ne_tk_masked": dict(
        batch=(2,), tq=5, tk=8, heads=2, kv_heads=2, causal=True, mask=(2, 1, 1, 8)
    ),
    "causal_tq_gt_tk_bias": dict(
        batch=(1,), tq=8, tk=5, heads=2, kv_heads=1, causal=True, bias=(1, 2, 8, 5)
    ),
    "value_depth_differs": dict(
        batch=(2,), tq=5, tk=6, heads=2, kv_heads=2, depth=4, value_depth=3
    ),
}
# jax.nn needs values as deep as the queries: a ValueError (test_attention_registry.ERRORS).
UNSUPPORTED = {("value_depth_differs", "jax_nn")}


def _impls(case):
    return [kernel for kernel in KERNELS if (case, kernel) not in UNSUPPORTED]


def _attend(q, k, v, options, **static):
    """``attend`` under jit: arrays in ``options`` are traced, everything else is static."""
    arrays = {name: x for name, x in options.items() if isinstance(x, np.ndarray)}
    static = {**static, **{name: x for name, x in options.items() if name not in arrays}}
    return jax.jit(lambda q, k, v, arrays: attend(q, k, v, **static, **arrays))(q, k, v, arrays)


def _chunks(kernel: str, sizes=None) -> dict[str, int]:
    """The chunk sizes ``kernel`` takes: both for chunked, query chunks for dense."""
    sizes = CHUNKS if sizes is None else sizes
    return {"chunked": sizes, "dense": {"query_chunk_size": sizes["query_chunk_size"]}}.get(
        kernel, {}
    )


@functools.lru_cache(maxsize=None)
def _output(case: str, kernel: str) -> np.ndarray:
    q, k, v, options = _case(0, **CASES[case])
    return np.asarray(_attend(q, k, v, options, kernel=kernel, **_chunks(kernel)))


@pytest.mark.parametrize(
    "case, kernel", [(case, kernel) for case in CASES for kernel in _impls(case)]
)
def test_kernel_matches_reference(case, kernel):
    q, k, v, options = _case(0, **CASES[case])
    expected, _ = ref.dot_product(
        q, k, v, mask=options.get("mask"), bias=options.get("bias"), is_causal=options["causal"]
    )
    out = _output(case, kernel)
    assert out.shape == expected.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_kernels_agree_with_each_other(case):
    outputs = {kernel: _output(case, kernel) for kernel in _impls(case)}
    for kernel in _impls(case)[1:]:
        np.testing.assert_allclose(
            outputs[kernel],
            outputs["dense"],
            atol=2e-6,
            rtol=1e-6,
            err_msg=f"kernel={kernel} vs kernel=dense",
        )


def test_function_and_options_match_reference():
    """An explicit scale and chunk sizes of 1, through every kernel."""
    q, k, v, options = _case(1, (2,), 5, 4, 2, 1, mask=(2, 1, 5, 4))
    expected, weights = ref.dot_product(q, k, v, mask=options["mask"], scale=0.3)

    @jax.jit
    def outputs(q, k, v, mask):
        return [
            attend(
                q,
                k,
                v,
                mask=mask,
                scale=0.3,
                kernel=kernel,
                return_weights=True,
                **_chunks(kernel, {"key_chunk_size": 1, "query_chunk_size": 1}),
            )
            for kernel in KERNELS
        ]

    for kernel, (out, w) in zip(KERNELS, outputs(q, k, v, options["mask"])):
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5, err_msg=kernel)
        np.testing.assert_allclose(w, weights, atol=1e-6, err_msg=kernel)


@pytest.mark.parametrize("kernel", KERNELS)
def test_bfloat16_keeps_logits_and_softmax_in_float32(kernel):
    rng = np.random.default_rng(2)
    # Large logits (std ~ 36) make the bf16 rounding of logits and weights visible; 1024 output
    # rows average the errors.
    q, k, v = (
        jnp.asarray(ref.normal(rng, 4, 32, 4, 8, scale=s), jnp.bfloat16) for s in (6.0, 6.0, 1.0)
    )
    k, v = k[:, :, :2], v[:, :, :2]
    mask = np.ones((4, 1, 1, 32), bool)
    mask[1, ..., 20:] = False
    out, weights = _attend(
        q, k, v, {"mask": mask}, kernel=kernel, return_weights=True, **_chunks(kernel)
    )
    assert out.dtype == jnp.bfloat16 and weights.dtype == jnp.float32
    # The reference sees the same (bf16-representable) inputs, in float64.
    expected, expected_weights = ref.dot_product(q, k, v, mask=mask)
    err = np.abs(ref.f64(out) - expected)
    err_bf16 = np.abs(ref.bf16_everywhere(ref.dot_product_logits(q, k), v, mask) - expected)
    assert err.max() < 2e-2
    assert err.mean() < err_bf16.mean() / 2, (err.mean(), err_bf16.mean())
    # Weights come back in float32, computed from the bf16 inputs without rounding to bf16.
    np.testing.assert_allclose(weights, expected_weights, atol=2e-6)


@pytest.mark.parametrize("kernel", KERNELS)
def test_causality_by_gradients(kernel):
    """d out_i / d k_j and d out_i / d v_j are exactly 0 for j > i and nonzero for j <= i."""
    rng = np.random.default_rng(3)
    tq, tk = 6, 8
    q, k, v = (
        ref.normal(rng, 1, tq, 2, 4),
        ref.normal(rng, 1, tk, 1, 4),
        ref.normal(rng, 1, tk, 1, 4),
    )
    probe = ref.normal(rng, tq, 2, 4)  # a random functional of each output row

    def rows(q, k, v):
        out = attend(q, k, v, causal=True, kernel=kernel, **_chunks(kernel))[0]
        return jnp.einsum("qhd,qhd->q", out, probe)

    jac_k, jac_v = jax.jit(jax.jacrev(rows, argnums=(1, 2)))(q, k, v)  # [Tq, 1, Tk, Hkv, D]
    depends_k = np.abs(jac_k).sum(axis=(1, 3, 4)) > 0
    depends_v = np.abs(jac_v).sum(axis=(1, 3, 4)) > 0
    allowed = ref.causal(tq, tk)
    np.testing.assert_array_equal(depends_v, allowed)
    assert not np.any(depends_k & ~allowed)
    # A row with a single key has weight 1 whatever that key is (its gradient is 0 up to rounding).
    several = allowed.sum(-1, keepdims=True) > 1
    np.testing.assert_array_equal(depends_k & several, allowed & several)


@pytest.mark.parametrize("kernel", KERNELS)
def test_equals_flax_dot_product_attention(kernel):
    """Where the semantics coincide (every row has a key), flax's function gives the same."""
    q, k, v, options = _case(4, (2,), 5, 7, 4, 4, mask=(2, 1, 5, 7), bias=(2, 4, 5, 7))
    mask = options["mask"]
    mask[..., 0] = True  # No fully masked rows (flax averages those, we give zeros).
    expected, out = jax.jit(
        lambda q, k, v, bias, mask: (
            nn.dot_product_attention(q, k, v, bias=bias, mask=mask),
            attend(q, k, v, mask=mask, bias=bias, kernel=kernel, **_chunks(kernel)),
        )
    )(q, k, v, options["bias"], mask)
    np.testing.assert_allclose(out, expected, atol=2e-6, rtol=1e-5)


def test_multi_head_equals_flax_multi_head_dot_product_attention():
    """Same parameter layout as flax.linen.MultiHeadDotProductAttention, same output."""
    rng = np.random.default_rng(5)
    x_q, x_kv = ref.normal(rng, 2, 5, 32), ref.normal(rng, 2, 7, 32)
    mask = rng.random((2, 1, 5, 7)) < 0.7
    mask[..., 0] = True
    theirs = nn.MultiHeadDotProductAttention(num_heads=4)
    params = jax.jit(theirs.init)(jax.random.key(0), x_q, x_kv, mask=mask)
    expected = jax.jit(lambda p, x_q, x_kv, m: theirs.apply(p, x_q, x_kv, mask=m))(
        params, x_q, x_kv, mask
    )
    for kernel in KERNELS:
        ours = MultiHeadAttention(num_heads=4, attention=resolve("dot_product", {"kernel": kernel}))
        our_shapes = jax.eval_shape(ours.init, jax.random.key(1), x_q, x_kv)
        assert jax.tree.map(np.shape, our_shapes) == jax.tree.map(np.shape, params)
        out = jax.jit(lambda p, x_q, x_kv, m: ours.apply(p, x_q, x_kv, mask=m))(
            params, x_q, x_kv, mask
        )
        np.testing.assert_allclose(out, expected, atol=2e-5, rtol=1e-5, err_msg=kernel)


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN attention needs a GPU")
def test_cudnn_matches_reference():
    rng = np.random.default_rng(6)
    q, k, v = (jnp.asarray(ref.normal(rng, 2, 64, 4, 64), jnp.bfloat16) for _ in range(3))
    mask = rng.random((2, 1, 1, 64)) < 0.8
    mask[..., 0] = True
    for causal in (False, True):
        expected, _ = ref.dot_product(q, k, v, mask=mask, is_causal=causal)
        out = attend(q, k, v, mask=mask, causal=causal, kernel="cudnn")
        assert out.dtype == jnp.bfloat16
        np.testing.assert_allclose(ref.f64(out), expected, atol=2e-2, rtol=2e-2)
