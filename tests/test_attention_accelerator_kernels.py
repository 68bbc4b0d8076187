"""The accelerator kernels, run on the CPU: splash (TPU) and pallas_band (GPU) in the Pallas
interpreter, and cuDNN's sliding window by the arguments it is given.

Forward and gradients against the dense float64 references of ``attention_reference``
(gradients by central differences of the reference along random directions), with padding,
causal rules, grouped queries and lengths that blocks do not divide; what each kernel refuses;
and what ``choose`` picks on each backend, with the backend faked.
"""

import dataclasses

import attention_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.attention import attend, kernels, positions
from attn_research.attention.kernels.dense import ScaledDot

# (Tq, Tk, window (None: dot_product), causal, H, Hkv, batch, mask shape or None, options)
CASES = {
    "global_key_padding": (24, 24, None, False, 2, 2, 2, (2, 1, 1, 24), {}),
    "causal_query_padding_gqa": (21, 21, None, True, 4, 2, 2, (2, 1, 21, 1), {}),
    "window_mqa_key_padding": (19, 19, (5, 3), False, 4, 1, 1, (1, 1, 1, 19), {}),
    "causal_window_ragged": (23, 23, 6, True, 2, 2, 1, None, {}),
    "cross_attention": (12, 20, None, False, 2, 1, 1, None, {}),
}
# Several blocks, so that the band skips some: (Tq = Tk, window, H, Hkv, key padding, options).
# Splash's: whole blocks and no padding, so that it runs without segment ids.
SPLASH_BLOCKS = (256, (9, 4), 2, 2, False, {"block_q": 128, "block_kv": 128})
BAND_BLOCKS = (70, (9, 4), 2, 1, True, {"block_q": 16, "block_k": 32, "backward_block_q": 32})


def _inputs(tq, tk, heads, kv_heads, batch, mask_shape, depth=16, value_depth=8):
    rng = np.random.default_rng(tq + tk + heads)
    q = ref.normal(rng, batch, tq, heads, depth)
    k = ref.normal(rng, batch, tk, kv_heads, depth)
    v = ref.normal(rng, batch, tk, kv_heads, value_depth)
    mask = None if mask_shape is None else rng.random(mask_shape) < 0.7
    return q, k, v, mask


def _check(kernel, q, k, v, mask, window, causal, **options):
    """``kernel`` = the float64 reference for dot_product (``window`` None) or local."""
    if window is None:
        kind = {"kind": "dot_product"}
        reference = lambda q, k, v: ref.dot_product(q, k, v, mask=mask, is_causal=causal)[0]  # noqa: E731
    else:
        kind = {"kind": "local", "window": window}
        left, right = (window, window) if isinstance(window, int) else window
        right = 0 if causal else right
        reference = lambda q, k, v: ref.local(q, k, v, left=left, right=right, mask=mask)[0]  # noqa: E731
    _equals_reference(kernel, q, k, v, reference, mask=mask, causal=causal, **kind, **options)


def _equals_reference(kernel, q, k, v, reference, **options):
    """Output and directional derivatives of ``<out, probe>`` = the float64 ``reference``'s."""
    rng = np.random.default_rng(3)
    probe = ref.normal(rng, *q.shape[:-1], v.shape[-1])

    def loss(q, k, v):
        out = attend(q, k, v, kernel=kernel, **options)
        return jnp.vdot(out, probe), out

    (_, out), grads = jax.jit(jax.value_and_grad(loss, (0, 1, 2), has_aux=True))(q, k, v)
    np.testing.assert_allclose(out, reference(q, k, v), atol=2e-6, rtol=1e-5)
    inputs, eps = [ref.f64(x) for x in (q, k, v)], 1e-5
    for which, grad in enumerate(grads):
        direction = rng.normal(size=inputs[which].shape)
        ends = []
        for sign in (1, -1):
            moved = list(inputs)
            moved[which] = inputs[which] + sign * eps * direction
            ends.append(np.sum(reference(*moved) * probe))
        numeric = (ends[0] - ends[1]) / (2 * eps)
        analytic = np.sum(ref.f64(grad) * direction)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-4, err_msg=f"arg {which}")


@pytest.mark.parametrize("kernel", ["splash", "pallas_band"])
@pytest.mark.parametrize("case", list(CASES))
def test_kernel_equals_the_float64_reference(kernel, case):
    tq, tk, window, causal, heads, kv_heads, batch, mask_shape, options = CASES[case]
    q, k, v, mask = _inputs(tq, tk, heads, kv_heads, batch, mask_shape)
    _check(kernel, q, k, v, mask, window, causal, **options)


@pytest.mark.parametrize("kernel, case", [("splash", SPLASH_BLOCKS), ("pallas_band", BAND_BLOCKS)])
def test_kernel_skips_blocks_outside_the_band_and_stays_exact(kernel, case):
    tokens, window, heads, kv_heads, padding, options = case
    mask_shape = (1, 1, 1, tokens) if padding else None
    q, k, v, mask = _inputs(tokens, tokens, heads, kv_heads, 1, mask_shape, depth=8)
    _check(kernel, q, k, v, mask, window, False, **options)


def test_pallas_band_follows_a_2d_neighbourhood_within_its_span_on_the_grid():
    """local_2d, 3 x 5 on a 6 x 7 grid: the blocks within 1 * 7 + 2 positions of each query,
    the neighbours within them."""
    q, k, v, mask = _inputs(42, 42, 2, 1, 1, (1, 1, 1, 42))
    band = {"block_q": 16, "block_k": 16, "backward_block_q": 16, "backward_block_k": 16}
    _equals_reference(
        "pallas_band",
        q,
        k,
        v,
        lambda q, k, v: ref.local_2d(q, k, v, grid=(6, 7), window=(3, 5), mask=mask)[0],
        kind="local_2d",
        window=(3, 5),
        grid=(6, 7),
        mask=mask,
        **band,
    )


def test_pallas_band_takes_per_head_padding():
    q, k, v, mask = _inputs(17, 17, 2, 2, 2, (2, 2, 1, 17))
    _check("pallas_band", q, k, v, mask, (3, 2), False)


@pytest.mark.parametrize("kernel", ["splash", "pallas_band"])
def test_bfloat16_keeps_float32_statistics(kernel):
    """bf16 inputs, D = 16 (the scale 1/4 is exact): the float64 reference on the rounded
    inputs, to bf16's output rounding."""
    q, k, v, mask = _inputs(32, 32, 2, 2, 1, (1, 1, 1, 32))
    q, k, v = (jnp.asarray(x, jnp.bfloat16) for x in (q, k, v))
    out = attend(q, k, v, kind="local", window=(4, 2), mask=mask, kernel=kernel)
    assert out.dtype == jnp.bfloat16
    expected = ref.local(q, k, v, left=4, right=2, mask=mask)[0]
    np.testing.assert_allclose(ref.f64(out), expected, atol=1e-2, rtol=1e-2)


def test_weights_come_from_the_dense_kernel():
    q, k, v, mask = _inputs(16, 16, 2, 2, 1, None)
    out, weights = attend(q, k, v, kind="local", window=3, kernel="splash", return_weights=True)
    expected_out, expected_weights = ref.local(q, k, v, left=3, right=3)
    np.testing.assert_allclose(out, expected_out, atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(weights, expected_weights, atol=2e-6, rtol=1e-5)


QKV = tuple(np.ones((1, 8, 2, 8), np.float32) for _ in range(3))
REFUSED = {
    "bias": ({"bias": np.zeros((1, 1, 8, 8), np.float32)}, "takes no logits bias"),
    "dropout": ({"dropout_rate": 0.1, "rng": jax.random.key(0)}, "has no attention dropout"),
    "dense_mask": ({"mask": np.ones((1, 1, 8, 8), bool)}, "takes key-padding"),
    "query_positions": (
        {"query_positions": np.arange(8)[None]},
        "takes query positions 0 .. Tq - 1",
    ),
}


@pytest.mark.parametrize("kernel", ["splash", "pallas_band"])
@pytest.mark.parametrize("case", list(REFUSED))
def test_kernels_refuse_what_they_cannot_compute(kernel, case):
    options, message = REFUSED[case]
    options = {"kind": "local", "window": 2, **options}
    with pytest.raises(ValueError, match=f"kernel '{kernel}' {message}"):
        attend(*QKV, kernel=kernel, **options)


@pytest.mark.parametrize(
    "kernel, options, message",
    [
        ("splash", {"mask": np.ones((1, 2, 1, 8), bool)}, "per-head mask"),
        ("splash", {"block_kv": 100}, "block_kv must be a multiple of 128"),
        ("pallas_band", {"block_q": 24}, "block_q must be a power of two"),
    ],
)
def test_kernels_refuse_their_own_limits(kernel, options, message):
    with pytest.raises(ValueError, match=message):
        attend(*QKV, kind="local", window=2, kernel=kernel, **options)


def test_splash_refuses_a_2d_neighbourhood():
    with pytest.raises(ValueError, match="'splash' follows global, .* not 'window_2d'"):
        attend(*QKV, kind="local_2d", grid=(2, 4), window=3, kernel="splash")


@pytest.mark.parametrize(
    "pair, rule, message",
    [
        (lambda q, k, precision=None: None, positions.window(2), "computes dot-product scores"),
        (
            ScaledDot(0.5),
            positions.local_p(2),
            "follows rules whose keys lie within a span .* not 'local_p'",
        ),
    ],
    ids=["additive", "predicted_centre"],
)
def test_pallas_band_refuses_other_scores_and_moving_windows(pair, rule, message):
    with pytest.raises(ValueError, match=f"'pallas_band' {message}"):
        kernels.get("pallas_band")(*QKV, kernels.Problem(pair, rule))


def _capture_jax_nn(monkeypatch) -> dict:
    """Replaces ``jax.nn.dot_product_attention`` by a recorder of its arguments (zeros out)."""
    seen = {}

    def fake(query, key, value, bias=None, mask=None, **kwargs):
        seen.update(kwargs, bias=bias, mask=mask)
        return jnp.zeros(query.shape, query.dtype)

    monkeypatch.setattr(jax.nn, "dot_product_attention", fake)
    return seen


def test_cudnn_runs_a_causal_window_as_its_sliding_window(monkeypatch):
    seen = _capture_jax_nn(monkeypatch)
    q = jnp.ones((1, 16, 2, 16), jnp.bfloat16)
    attend(q, q, q, kind="local", window=5, causal=True, kernel="cudnn")
    assert seen["local_window_size"] == (5, 0) and seen["is_causal"] is True
    assert seen["implementation"] == "cudnn" and seen["mask"] is None


@pytest.mark.parametrize(
    "dtype, shape, window, message",
    [
        (jnp.float32, (1, 16, 2, 16), (5, 0), "runs bfloat16 or float16 only, got float32"),
        (
            jnp.bfloat16,
            (1, 16, 2, 12),
            (5, 0),
            "takes a head dimension that is a multiple of 8 and at most 256, got 12",
        ),
        (
            jnp.bfloat16,
            (1, 16, 2, 16),
            (5, 2),
            "has a sliding window that reaches back only .* window\\(5, 2\\)",
        ),
    ],
    ids=["float32", "head_dim", "two_sided"],
)
def test_cudnn_refuses_what_it_cannot_do(monkeypatch, dtype, shape, window, message):
    _capture_jax_nn(monkeypatch)
    q = jnp.ones(shape, dtype)
    with pytest.raises(ValueError, match=f"kernel 'cudnn' {message}"):
        attend(q, q, q, kind="local", window=window, kernel="cudnn")


def _choose(monkeypatch, backend, rule, dtype=jnp.float32, tokens=4096, pair=None, **problem):
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    x = jax.ShapeDtypeStruct((2, tokens, 8, 64), dtype)
    problem = kernels.Problem(pair or ScaledDot(0.125), rule, **problem)
    return kernels.choose(x, x, x, problem)


RULES = {
    "global": positions.Global(),
    "causal": positions.Causal(),
    "window": positions.window((64, 32)),
    "causal_window": positions.window((64, 0)),
}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("rule", list(RULES))
def test_auto_picks_splash_on_a_tpu(monkeypatch, rule, dtype):
    name, options, why = _choose(monkeypatch, "tpu", RULES[rule], dtype)
    assert (name, options) == ("splash", {}) and "splash attention" in why


def test_auto_on_a_tpu_keeps_the_band_kernels_for_what_splash_refuses(monkeypatch):
    grid = positions.window_2d(7, grid=(64, 64))
    assert _choose(monkeypatch, "tpu", grid)[0] == "band"
    additive = lambda q, k, precision=None: None  # noqa: E731
    assert _choose(monkeypatch, "tpu", RULES["window"], pair=additive)[0] == "band"
    per_head = np.ones((2, 8, 1, 4096), bool)
    assert _choose(monkeypatch, "tpu", RULES["causal"], mask=per_head)[0] != "splash"


@pytest.mark.parametrize(
    "rule, dtype, mask, kernel",
    [
        ("causal_window", jnp.bfloat16, None, "cudnn"),
        ("causal_window", jnp.float32, None, "pallas_band"),
        ("causal_window", jnp.bfloat16, np.ones((2, 1, 1, 4096), bool), "pallas_band"),
        ("window", jnp.bfloat16, None, "pallas_band"),
        ("window", jnp.float32, None, "pallas_band"),
        ("global", jnp.bfloat16, None, "cudnn"),
        ("causal", jnp.bfloat16, None, "cudnn"),
    ],
)
def test_auto_on_a_gpu(monkeypatch, rule, dtype, mask, kernel):
    name, _, why = _choose(monkeypatch, "gpu", RULES[rule], dtype, mask=mask)
    assert name == kernel, why


def test_auto_runs_additive_scores_by_the_naive_formula_on_a_gpu(monkeypatch):
    additive = lambda q, k, precision=None: None  # noqa: E731
    for dtype in (jnp.float32, jnp.bfloat16):
        name, options, why = _choose(monkeypatch, "gpu", RULES["global"], dtype, pair=additive)
        assert (name, options) == ("dense", {}) and "naive" in why
    cpu = _choose(monkeypatch, "cpu", RULES["global"], pair=additive)
    assert cpu[:2] == ("dense", {"query_chunk_size": kernels.AUTO_WIDE_QUERY_CHUNK})


def test_the_rules_say_how_far_they_reach():
    assert positions.Global().reach() == (None, None)
    assert positions.Causal().reach() == (None, 0)
    assert positions.window((3, 1)).reach() == (3, 1)
    assert positions.window_2d(3).reach() is None
    assert positions.local_p(4).reach() is None

    @dataclasses.dataclass(frozen=True)
    class EveryOther(positions.Rule):
        def allowed(self, q_pos, k_pos, *, grid, centre):
            return (q_pos - k_pos) % 2 == 0

    assert EveryOther().reach() is None  # it restricts keys without saying how far it reaches


@pytest.mark.parametrize(
    "kernel, platform, options",
    [
        ("pallas_band", "cuda", {"kind": "local", "window": (32, 16)}),
        ("pallas_band", "cuda", {"kind": "local_2d", "window": 7, "grid": (16, 16)}),
        ("splash", "tpu", {"kind": "local", "window": (128, 0)}),
    ],
    ids=["pallas_band", "pallas_band_2d", "splash"],
)
def test_kernel_lowers_for_its_accelerator(kernel, platform, options):
    """Forward and backward lower to Triton (GPU) or Mosaic (TPU) from this CPU: each kernel
    uses only operations its accelerator's Pallas back end takes (not compiled or run here)."""
    q = jax.ShapeDtypeStruct((2, 256, 4, 64), jnp.bfloat16)
    kv = jax.ShapeDtypeStruct((2, 256, 2, 64), jnp.bfloat16)
    mask = np.ones((2, 1, 1, 256), bool)

    def loss(q, k, v):
        out = attend(q, k, v, mask=mask, kernel=kernel, interpret=False, **options)
        return jnp.sum(out.astype(jnp.float32))

    for fn in (loss, jax.grad(loss, argnums=(0, 1, 2))):
        assert jax.jit(fn).trace(q, kv, kv).lower(lowering_platforms=(platform,)).as_text()
