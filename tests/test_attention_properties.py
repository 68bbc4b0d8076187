"""Properties every attention kind shares: fully masked rows, attention weights, jit / vmap /
grad, sharded inputs and dropout, each checked against the float64 references."""

import attention_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from attention_modules import AdditiveAttention, LuongAttention, flat
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from attn_research.attention import KINDS, MultiHeadAttention, attend, resolve

B, T, H, D = 2, 6, 2, 4
GRID = (2, 3)  # T tokens as a grid for local_2d


def _module_case(module, reference):
    """A kind with parameters: ``f(q, k, v, mask=..., **kw)`` applying ``module`` with parameters
    initialized once (on float32 inputs of the test shapes), and its reference."""
    init = np.zeros((B, T, H, D), np.float32)
    params = jax.jit(module.init)(jax.random.key(0), init, init, init)

    def call(q, k, v, **kw):
        return module.apply(params, q, k, v, **kw)

    return call, lambda q, k, v, mask: reference(params.get("params", {}), q, k, v, mask)


def _attend_case(reference, **options):
    return (lambda q, k, v, **kw: attend(q, k, v, **options, **kw)), reference


def _cases():
    def dot_product(q, k, v, m):
        return ref.dot_product(q, k, v, mask=m)

    chunks = {"key_chunk_size": 4, "query_chunk_size": 4}
    return {
        "dot_product_xla": _attend_case(dot_product, kernel="dense"),
        "dot_product_chunked": _attend_case(dot_product, kernel="chunked", **chunks),
        "dot_product_jax_nn": _attend_case(dot_product, kernel="jax_nn"),
        "local": _attend_case(
            lambda q, k, v, m: ref.local(q, k, v, left=2, right=1, mask=m),
            kind="local",
            window=(2, 1),
            block_size=2,
        ),
        "local_2d": _attend_case(
            lambda q, k, v, m: ref.local_2d(q, k, v, grid=GRID, window=(3, 3), mask=m),
            kind="local_2d",
            grid=GRID,
            window=3,
        ),
        "additive": _module_case(
            AdditiveAttention(normalize=True, query_chunk_size=4),
            lambda p, q, k, v, m: ref.additive(
                q, k, v, p["score_vector"], g=p["score_scale"], b=p["score_bias"], mask=m
            ),
        ),
        "luong": _module_case(
            LuongAttention(score="concat"),
            lambda p, q, k, v, m: ref.luong(q, k, v, score="concat", params=p, mask=m),
        ),
        "luong_local_p": _module_case(
            LuongAttention(score="general", positions="local_p", window=2),
            lambda p, q, k, v, m: ref.luong(
                q, k, v, score="general", positions="local_p", window=2, params=p, mask=m
            ),
        ),
    }


CASES = _cases()


def _qkv(seed=0, dtype=np.float32, scale=1.0):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(ref.normal(rng, B, T, H, D, scale=scale), dtype) for _ in range(3))


def _masks():
    """(key padding: example 1 has no key at all, query padding: example 0's query 2 is padding)."""
    keys = np.ones((B, 1, 1, T), bool)
    keys[0, ..., 4:] = False
    keys[1] = False
    queries = np.ones((B, 1, T, 1), bool)
    queries[0, 0, 2] = False
    return keys, queries


@pytest.mark.parametrize("case", list(CASES))
def test_fully_masked_rows_are_zero_with_finite_gradients(case):
    call, reference = CASES[case]
    q, k, v = _qkv(1)
    probe = ref.normal(np.random.default_rng(2), B, T, H, D)
    for mask, empty in zip(_masks(), (np.s_[1], np.s_[0, 2])):

        def loss(q, k, v):
            out = call(q, k, v, mask=mask)
            return jnp.sum(out * probe), out

        (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(
            q, k, v
        )
        assert np.all(np.asarray(out)[empty] == 0.0)  # exactly zero, not the mean of the values
        for g in grads:
            assert np.all(np.isfinite(g))
        assert np.all(np.asarray(grads[0])[empty] == 0.0)  # a constant row has no gradient
        expected, _ = reference(q, k, v, mask)
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


# Per kind: MultiHeadAttention options and the reference ``(p, q, k, v, mask) -> (out, weights)``
# with ``p`` the kind's own parameters.
MULTI_HEAD = {
    "dot_product": [
        ({"kernel": kernel}, lambda p, q, k, v, m: ref.dot_product(q, k, v, mask=m))
        for kernel in ("dense", "chunked", "jax_nn")
    ],
    "local": [
        (
            {"window": 2, "block_size": 2},
            lambda p, q, k, v, m: ref.local(q, k, v, left=2, right=2, mask=m),
        )
    ],
    "local_2d": [
        (
            {"grid": GRID, "window": 3},
            lambda p, q, k, v, m: ref.local_2d(q, k, v, grid=GRID, window=(3, 3), mask=m),
        )
    ],
    "additive": [
        (
            {"normalize": True},
            lambda p, q, k, v, m: ref.additive(
                q, k, v, p["score_vector"], g=p["score_scale"], b=p["score_bias"], mask=m
            ),
        )
    ],
    "luong": [
        (
            {"score": "general"},
            lambda p, q, k, v, m: ref.luong(q, k, v, score="general", params=p, mask=m),
        ),
        (
            {"positions": "local_p", "window": 2},
            lambda p, q, k, v, m: ref.luong(
                q, k, v, score="dot", positions="local_p", window=2, params=p, mask=m
            ),
        ),
    ],
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_fully_masked_rows_in_multi_head_attention(kind):
    """A row without keys gets a zero context: the layer's output there is its out bias."""
    x = ref.normal(np.random.default_rng(3), B, T, 8)
    mask = _masks()[0]  # example 1 has no key (padded query rows: see the test above)
    for options, _ in MULTI_HEAD[kind]:
        layer = MultiHeadAttention(num_heads=2, attention=resolve(kind, options))
        params = jax.jit(layer.init)(jax.random.key(1), x)

        def loss(params, x):
            out = layer.apply(params, x, mask=mask)
            return jnp.sum(out**2), out

        (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params, x)
        np.testing.assert_array_equal(
            out[1], np.broadcast_to(params["params"]["out"]["bias"], out[1].shape)
        )
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads)), options


@pytest.mark.parametrize("dtype", [np.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("case", list(CASES))
def test_return_weights_match_reference_and_leave_output_unchanged(case, dtype):
    call, reference = CASES[case]
    q, k, v = _qkv(4, dtype, scale=2.0)
    mask = _masks()[0]
    out, (out_too, weights) = jax.jit(
        lambda q, k, v: (call(q, k, v, mask=mask), call(q, k, v, mask=mask, return_weights=True))
    )(q, k, v)
    assert np.array_equal(out, out_too)  # bit for bit
    assert out.dtype == dtype and weights.dtype == jnp.float32 and weights.shape == (B, H, T, T)
    _, expected = reference(q, k, v, mask)  # from the same (bf16-representable) inputs, in float64
    np.testing.assert_allclose(weights, expected, atol=2e-6)
    sums = np.asarray(weights).sum(-1)
    np.testing.assert_array_equal(sums[1], 0.0)  # no keys
    if case == "luong_local_p":  # window softmax times a Gaussian
        assert np.all(sums[0] <= 1 + 1e-6) and np.all(sums[0] > 0)
    else:
        np.testing.assert_allclose(sums[0], 1.0, rtol=1e-5)


@pytest.mark.parametrize("kind", list(KINDS))
def test_sow_weights(kind):
    """MultiHeadAttention(sow_weights=True) stores the reference weights (dense view for local
    kinds); the output is bit-identical without them, in float32 and bfloat16."""
    x = ref.normal(np.random.default_rng(5), B, T, 8)
    mask = _masks()[0]
    for options, reference in MULTI_HEAD[kind]:
        layer = MultiHeadAttention(num_heads=2, attention=resolve(kind, options))
        params = jax.jit(layer.init)(jax.random.key(2), x)
        p = params["params"]
        q, k, v = (ref.dense(x, p[n]["kernel"], p[n]["bias"]) for n in ("query", "key", "value"))
        _, expected = reference(flat(p.get("attention", {})), q, k, v, mask)
        for dtype in (jnp.float32, jnp.bfloat16):
            plain = layer.clone(dtype=dtype)
            sowing = layer.clone(dtype=dtype, sow_weights=True)
            out, (out_too, state) = jax.jit(
                lambda p, x: (
                    plain.apply(p, x, mask=mask),
                    sowing.apply(p, x, mask=mask, mutable="intermediates"),
                )
            )(params, x)
            assert np.array_equal(out, out_too), (options, dtype)
            (weights,) = state["intermediates"]["attention_weights"]
            assert weights.dtype == jnp.float32 and weights.shape == (B, 2, T, T)
            # In bf16 the projections (so q, k) are rounded: looser.
            atol = 1e-5 if dtype == jnp.float32 else 3e-2
            np.testing.assert_allclose(weights, expected, atol=atol, err_msg=f"{options} {dtype}")


def _partial_masks():
    mask = np.ones((B, 1, 1, T), bool)
    mask[0, ..., 4:] = False
    return mask


@pytest.mark.parametrize("case", list(CASES))
def test_jit_vmap_and_grad(case):
    """Under jit: the output matches the reference, vmap over examples gives the batched result,
    and the gradients match central finite differences of the reference."""
    call, reference = CASES[case]
    q, k, v = (np.asarray(x) for x in _qkv(6))
    mask = _partial_masks()
    probe = ref.normal(np.random.default_rng(7), B, T, H, D)

    def loss(q, k, v):
        out = call(q, k, v, mask=mask)
        return jnp.sum(out * probe), out

    @jax.jit
    def everything(q, k, v, mask):
        per_example = jax.vmap(lambda q, k, v, m: call(q, k, v, mask=m))(q, k, v, mask)
        return jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(q, k, v), per_example

    (grads, out), mapped = everything(q, k, v, mask)
    np.testing.assert_allclose(out, reference(q, k, v, mask)[0], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(mapped, out, atol=1e-6, rtol=1e-6)
    inputs = [ref.f64(x) for x in (q, k, v)]

    def reference_loss(*inputs):
        return np.sum(reference(*inputs, mask)[0] * probe)

    eps = 1e-6
    for which, grad in enumerate(grads):
        numeric = np.zeros(inputs[which].shape)
        for index in np.ndindex(*numeric.shape):
            shifted = [x.copy() for x in inputs]
            shifted[which][index] += eps
            up = reference_loss(*shifted)
            shifted[which][index] -= 2 * eps
            numeric[index] = (up - reference_loss(*shifted)) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, atol=2e-4, rtol=1e-3, err_msg=f"argument {which}")


@pytest.mark.parametrize("case", ["dot_product_xla", "dot_product_chunked", "local", "additive"])
def test_batch_sharded_inputs_give_the_unsharded_result(case):
    call, reference = CASES[case]
    devices = jax.devices("cpu")  # the 8 forced host devices, also beside a GPU
    assert len(devices) == 8
    mesh = Mesh(np.array(devices), ("data",))
    sharding = NamedSharding(mesh, P("data"))
    rng = np.random.default_rng(8)
    q, k, v = (ref.normal(rng, 8, T, H, D) for _ in range(3))
    mask = rng.random((8, 1, 1, T)) < 0.8
    f = jax.jit(lambda q, k, v, m: call(q, k, v, mask=m))
    unsharded = f(q, k, v, mask)
    sharded = f(*(jax.device_put(x, sharding) for x in (q, k, v, mask)))
    assert len(sharded.sharding.device_set) == 8
    np.testing.assert_allclose(sharded, unsharded, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(sharded, reference(q, k, v, mask)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", [c for c in CASES if c != "dot_product_jax_nn"])
def test_dropout_keeps_each_weight_scaled_or_zeroes_it(case):
    """With one-hot values, output row i is the dropped weights of row i: each is 0 or
    w / (1 - rate); the same rng gives the same mask, another rng another, and the average over
    many rngs approaches the weights."""
    call, _ = CASES[case]
    rate = 0.5
    q, k, _ = _qkv(9)
    v = jnp.broadcast_to(jnp.eye(T)[None, :, None, :], (B, T, H, T))

    def dropped(key):  # [B, H, Tq, Tk]
        return jnp.moveaxis(call(q, k, v, dropout_rate=rate, rng=key), -2, -3)

    # RBG keys: vmapped threefry takes seconds to compile on CPU; the library takes any key
    # (test_multi_head_dropout uses the default ones).
    keys = jax.random.split(jax.random.key(0, impl="rbg"), 400)
    single = jax.jit(dropped)
    first, again, other = single(keys[0]), single(keys[0]), single(keys[1])
    assert np.array_equal(first, again)  # same rng, same result
    assert not np.array_equal(first, other)
    weights, many = jax.jit(
        lambda keys: (call(q, k, v, return_weights=True)[1], jax.vmap(dropped)(keys))
    )(keys)
    weights, many = np.asarray(weights), np.asarray(many)
    kept = many != 0
    np.testing.assert_allclose(
        np.where(kept, many, 0), np.where(kept, weights / (1 - rate), 0), rtol=1e-5, atol=1e-7
    )
    assert not np.any(kept & (weights == 0))
    assert 0.45 < kept[:, weights > 0].mean() < 0.55
    # Mean of 400 draws: standard deviation w * sqrt(rate / (1 - rate) / 400) = w / 20.
    np.testing.assert_allclose(many.mean(0), weights, atol=1e-6 + 5 * weights.max() / 20)


@pytest.mark.parametrize("kind", list(KINDS))
def test_multi_head_dropout(kind):
    x = ref.normal(np.random.default_rng(10), B, T, 8)
    options = MULTI_HEAD[kind][0][0]
    layer = MultiHeadAttention(num_heads=2, attention=resolve(kind, options), dropout_rate=0.5)
    params = jax.jit(layer.init)(jax.random.key(3), x)
    plain = MultiHeadAttention(num_heads=2, attention=resolve(kind, options))

    @jax.jit
    def outputs(params, x):
        def apply(seed, deterministic):
            return layer.apply(
                params, x, deterministic=deterministic, rngs={"dropout": jax.random.key(seed)}
            )

        return (
            plain.apply(params, x),
            apply(4, True),
            apply(4, False),
            apply(4, False),
            apply(5, False),
        )

    no_dropout, deterministic, first, again, other = outputs(params, x)
    np.testing.assert_array_equal(deterministic, no_dropout)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other) and not np.allclose(first, no_dropout)
