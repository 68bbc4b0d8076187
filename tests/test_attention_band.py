"""The band kernels that run one query block at a time: band with loop=True (local and
local_2d, any score) and flash_band (local with dot-product scores, a hand-written backward).

Forward and gradients against the dense masked float64 references (gradients by central
differences along random directions) and against the vectorized band kernel (loop=False), at
lengths that blocks divide and lengths that they do not, with padding and causal windows; other
scores; bfloat16; the looping kernel's compiled memory, which must not grow with the length;
what each refuses; and what ``auto`` picks.
"""

import dataclasses

import attention_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from attention_modules import flat

from attn_research.attention import MultiHeadAttention, attend, kernels, positions, resolve


def _qkv(seed, batch, tq, tk, heads, kv_heads, depth=4, value_depth=3):
    rng = np.random.default_rng(seed)
    return (
        ref.normal(rng, *batch, tq, heads, depth),
        ref.normal(rng, *batch, tk, kv_heads, depth),
        ref.normal(rng, *batch, tk, kv_heads, value_depth),
    )


def _out_and_grads(kernel, q, k, v, mask, probe, **options):
    """The output and the gradients of ``<out, probe>`` w.r.t. ``q``, ``k``, ``v``."""

    def loss(q, k, v):
        out = attend(q, k, v, mask=mask, kernel=kernel, **options)
        return jnp.vdot(out, probe), out

    (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(q, k, v)
    return out, grads


LOOP = ("band", {"loop": True})


def _check(q, k, v, mask, reference, kernel=LOOP, **options):
    """``kernel`` (name, options) = the float64 reference (forward, directional derivatives) =
    the band kernel with loop=False (both)."""
    probe = ref.normal(np.random.default_rng(9), *q.shape[:-1], v.shape[-1])
    name, kernel_options = kernel
    out, grads = _out_and_grads(name, q, k, v, mask, probe, **kernel_options, **options)
    expected = reference(q, k, v)
    assert out.shape == expected.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    all_blocks_out, all_blocks_grads = _out_and_grads("band", q, k, v, mask, probe, **options)
    np.testing.assert_allclose(out, all_blocks_out, atol=1e-6, rtol=1e-5)
    for which, (grad, all_blocks_grad) in enumerate(zip(grads, all_blocks_grads)):
        np.testing.assert_allclose(
            grad, all_blocks_grad, atol=1e-5, rtol=1e-4, err_msg=f"arg {which}"
        )
    inputs = [ref.f64(x) for x in (q, k, v)]
    rng, eps = np.random.default_rng(10), 1e-5
    for which, grad in enumerate(grads):
        for _ in range(2):
            direction = rng.normal(size=inputs[which].shape)
            moved = [[x + s * eps * direction if i == which else x for i, x in enumerate(inputs)]
                     for s in (1, -1)]  # fmt: skip
            up, down = (np.sum(reference(*m) * probe) for m in moved)
            numeric = (up - down) / (2 * eps)
            analytic = np.sum(ref.f64(grad) * direction)
            np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-4, err_msg=f"{which}")


# (Tq, Tk, window, causal, block_size, H, Hkv, batch, mask shape or None)
LOCAL_CASES = {
    "blocks_divide_the_length": (24, 24, (5, 3), False, 4, 2, 2, (1,), None),
    "ragged_last_block": (23, 23, (4, 4), False, 5, 2, 2, (2,), None),
    "causal_key_padding": (19, 19, 6, True, 4, 2, 2, (2,), (2, 1, 1, 19)),
    "query_padding_gqa": (17, 17, (3, 2), False, 3, 4, 2, (2,), (2, 1, 17, 1)),
    "per_head_key_padding": (14, 14, (2, 2), False, 4, 2, 2, (2,), (2, 2, 1, 14)),
    "block_wider_than_window": (13, 13, (1, 1), False, 8, 2, 1, (1,), None),
    "window_beyond_length": (9, 9, 20, False, None, 2, 2, (2,), None),
    "default_block": (40, 40, (16, 16), False, None, 2, 2, (1,), None),
    "more_queries_than_keys": (11, 7, (2, 3), False, 3, 2, 2, (2,), None),
    "fewer_queries_than_keys": (6, 13, (1, 5), False, 4, 2, 2, (1,), None),
    "extra_batch_dims": (10, 10, (1, 2), False, 3, 2, 1, (2, 2), (2, 1, 1, 1, 10)),
}


@pytest.mark.parametrize("kernel", [LOOP, ("flash_band", {})], ids=["loop", "flash_band"])
@pytest.mark.parametrize("case", list(LOCAL_CASES))
def test_band_kernels_local_equal_reference_and_unlooped(case, kernel):
    tq, tk, window, causal, block_size, heads, kv_heads, batch, mask_shape = LOCAL_CASES[case]
    q, k, v = _qkv(0, batch, tq, tk, heads, kv_heads)
    mask = None if mask_shape is None else np.random.default_rng(1).random(mask_shape) < 0.7
    left, right = (window, window) if isinstance(window, int) else window
    right = 0 if causal else right

    def reference(q, k, v):
        return ref.local(q, k, v, left=left, right=right, mask=mask)[0]

    options = {"kind": "local", "window": window, "causal": causal, "block_size": block_size}
    _check(q, k, v, mask, reference, kernel, **options)


def test_flash_band_in_bfloat16_keeps_float32_logits():
    """bf16 q, k, v: the output is the float64 reference on the rounded inputs, to bf16's
    precision, and the gradients are those of the float32 band kernel on the same inputs."""
    q, k, v = (x.astype(jnp.bfloat16) for x in _qkv(5, (2,), 40, 40, 2, 2, depth=16))
    options = {"kind": "local", "window": (6, 3), "block_size": 8}
    probe = ref.normal(np.random.default_rng(6), 2, 40, 2, 3)
    out, grads = _out_and_grads("flash_band", q, k, v, None, probe, **options)
    assert out.dtype == jnp.bfloat16 and all(g.dtype == jnp.bfloat16 for g in grads)
    wide = [np.asarray(x, np.float32) for x in (q, k, v)]
    expected = ref.local(*wide, left=6, right=3)[0]
    np.testing.assert_allclose(np.asarray(out, np.float32), expected, atol=2e-2, rtol=2e-2)
    _, wide_grads = _out_and_grads("band", *wide, None, probe, **options)
    for grad, wide_grad in zip(grads, wide_grads):
        np.testing.assert_allclose(np.asarray(grad, np.float32), wide_grad, atol=3e-2, rtol=3e-2)


# (grid, window, block_size, H, Hkv, batch, mask shape or None)
LOCAL_2D_CASES = {
    "3x3_rows_not_divided": ((5, 6), 3, (2, 4), 2, 2, (1,), None),
    "5x3_key_padding": ((7, 4), (5, 3), (3, 2), 2, 1, (2,), (2, 1, 1, 28)),
    "query_padding_default_block": ((4, 4), 3, None, 2, 2, (2,), (2, 1, 16, 1)),
    "window_beyond_grid": ((2, 3), 7, 1, 2, 2, (1,), None),
}


@pytest.mark.parametrize("case", list(LOCAL_2D_CASES))
def test_loop_local_2d_equals_reference_and_unlooped(case):
    grid, window, block_size, heads, kv_heads, batch, mask_shape = LOCAL_2D_CASES[case]
    tokens = grid[0] * grid[1]
    q, k, v = _qkv(2, batch, tokens, tokens, heads, kv_heads)
    mask = None if mask_shape is None else np.random.default_rng(3).random(mask_shape) < 0.7
    sizes = (window, window) if isinstance(window, int) else window

    def reference(q, k, v):
        return ref.local_2d(q, k, v, grid=grid, window=sizes, mask=mask)[0]

    options = {"kind": "local_2d", "grid": grid, "window": window, "block_size": block_size}
    _check(q, k, v, mask, reference, **options)


@pytest.mark.parametrize("score", ["additive", "general"])
def test_loop_takes_any_score(score):
    """e_ij = w^T tanh(q_i + k_j) or q_i^T W_a k_j in a (3, 2) window, 2 query blocks of 8."""
    batch, tokens, features, heads = 2, 13, 8, 2
    x = ref.normal(np.random.default_rng(4), batch, tokens, features)
    options = {"window": (3, 2), "score": score, "kernel": "band", "loop": True, "block_size": 8}
    layer = MultiHeadAttention(num_heads=heads, attention=resolve("local", options))
    params = jax.jit(layer.init)(jax.random.key(0), x)["params"]
    out = jax.jit(layer.apply)({"params": params}, x)
    p = flat(params["attention"])
    band = ref.window_1d(tokens, tokens, 3, 2)

    def reference(q, k, v):
        if score == "additive":
            return ref.additive(q, k, v, p["score_vector"], mask=band)[0]
        return ref.attention(ref.luong_logits(q, k, score="general", params=p), v, band)[0]

    np.testing.assert_allclose(out, ref.multi_head(params, x, x, reference), atol=1e-5, rtol=1e-5)


def _temp_bytes(tokens, kind, **options):
    """XLA's temporary bytes of the compiled fwd+bwd of ``<attention, c>``."""
    x = jax.ShapeDtypeStruct((1, tokens, 2, 16), jnp.float32)

    def loss(q, k, v, c):
        return jnp.vdot(attend(q, k, v, kind=kind, kernel="band", **options), c)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(x, x, x, x).compile()
    return grad.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize(
    "kind, short, long, options",
    [("local", 1024, 8192, {"window": (32, 32)}), ("local_2d", 16 * 16, 48 * 48, {"window": 5})],
)
def test_loop_temporaries_do_not_grow_with_the_length(kind, short, long, options):
    def grid(tokens):
        return {"grid": (int(tokens**0.5),) * 2} if kind == "local_2d" else {}

    one_block = [_temp_bytes(t, kind, loop=True, **options, **grid(t)) for t in (short, long)]
    all_blocks = [_temp_bytes(t, kind, **options, **grid(t)) for t in (short, long)]
    assert all_blocks[1] > 4 * all_blocks[0], (
        all_blocks
    )  # the vectorized band grows with the length
    assert one_block[1] < all_blocks[1] / 10, (one_block, all_blocks)
    # A step holds a block of positions, or of whole rows of a grid (3 times as long here).
    growth = 1 if kind == "local" else (long / short) ** 0.5
    assert one_block[1] <= 1.1 * growth * one_block[0], one_block


def test_auto_runs_long_bands_one_block_at_a_time_on_a_cpu():
    """Dot products in a 1-D window: flash_band, or band with loop=True where its layout copies would be
    large (1 GiB of queries) or where it cannot go (dropout, other scores, a 2-D window)."""
    long = jax.ShapeDtypeStruct((1, 16384, 4, 64), jnp.float32)
    problem = kernels.Problem(kernels.dense.ScaledDot(0.125), positions.window(128))
    name, options, why = kernels.choose(long, long, long, problem)
    assert (name, options) == ("flash_band", {}) and "flash backward" in why
    huge = jax.ShapeDtypeStruct((1, 1 << 20, 4, 64), jnp.float32)
    name, options, why = kernels.choose(huge, huge, huge, problem)
    assert (name, options) == ("band", {"loop": True}) and "one block at a time" in why
    dropout = dataclasses.replace(problem, dropout_rate=0.1)
    assert kernels.choose(long, long, long, dropout)[:2] == LOOP
    additive = dataclasses.replace(problem, pair=lambda q, k, precision=None: None)
    assert kernels.choose(long, long, long, additive)[:2] == LOOP
    grid = kernels.Problem(problem.pair, positions.Window2D((7, 7)), grid=(128, 128))
    assert kernels.choose(long, long, long, grid)[:2] == LOOP
    small = jax.ShapeDtypeStruct((1, 64, 2, 8), jnp.float32)
    assert kernels.choose(small, small, small, problem)[:2] == ("band", {"loop": False})


QKV = tuple(np.ones((1, 8, 2, 4), np.float32) for _ in range(3))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mask": np.ones((1, 1, 8, 8), bool)}, "the band kernel takes key-padding"),
        ({"bias": np.zeros((1, 1, 8, 8), np.float32)}, "'band' takes no logits bias"),
        ({"kind": "dot_product"}, "the band kernel needs a band of positions"),
    ],
    ids=["dense_mask", "bias", "global"],
)
def test_loop_refuses_what_it_cannot_compute(options, message):
    options = {"kind": "local", "window": 2, **options}
    if options["kind"] == "dot_product":
        del options["window"]
    with pytest.raises(ValueError, match=message):
        attend(*QKV, kernel="band", loop=True, **options)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"kind": "local_2d", "grid": (2, 4), "window": 3}, "follows a band on a sequence only"),
        ({"dropout_rate": 0.1, "rng": jax.random.key(0)}, "'flash_band' has no attention dropout"),
        ({"mask": np.ones((1, 1, 8, 8), bool)}, "the flash_band kernel takes key-padding"),
    ],
    ids=["window_2d", "dropout", "dense_mask"],
)
def test_flash_band_refuses_what_it_cannot_compute(options, message):
    options = {"kind": "local", "window": 2, **options}
    with pytest.raises(ValueError, match=message):
        attend(*QKV, kernel="flash_band", **options)


def test_flash_band_refuses_scores_other_than_dot_products():
    options = {"window": 2, "score": "additive", "kernel": "flash_band"}
    layer = MultiHeadAttention(num_heads=2, attention=resolve("local", options))
    with pytest.raises(ValueError, match="'flash_band' computes dot-product scores only"):
        layer.init(jax.random.key(0), np.ones((1, 8, 8), np.float32))
