"""`scan_layers`: same function as an unrolled stack, compiled once whatever the depth."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.models.scan import REMAT_POLICIES, scan_layers
from attn_research.models.transformer_translator import TransformerTranslator


class Block(nn.Module):
    """x + tanh(x @ W + b) * scale, with dropout."""

    dim: int
    deterministic: bool = True

    @nn.compact
    def __call__(self, x, scale):
        y = jnp.tanh(nn.Dense(self.dim)(x)) * scale
        return x + nn.Dropout(0.5, deterministic=self.deterministic)(y), None


class Stack(nn.Module):
    num_layers: int
    deterministic: bool = True
    remat: str = "none"
    unroll: int = 1

    @nn.compact
    def __call__(self, x):
        x, _ = scan_layers(
            Block,
            self.num_layers,
            remat=self.remat,
            unroll=self.unroll,
            name="blocks",
            dim=x.shape[-1],
            deterministic=self.deterministic,
        )(x, 0.5)
        return x


@pytest.mark.parametrize("unroll", [1, 2, 3])
def test_scan_matches_an_unrolled_loop(unroll):
    x = jax.random.normal(jax.random.key(0), (3, 4))
    params = Stack(3, unroll=unroll).init(jax.random.key(1), x)["params"]
    layer = params["blocks"]["Dense_0"]
    assert layer["kernel"].shape == (3, 4, 4) and layer["bias"].shape == (3, 4)
    assert not np.allclose(layer["kernel"][0], layer["kernel"][1])  # Each layer its own init.
    expected = x
    for i in range(3):  # Independent reference: the formula, layer by layer.
        expected = expected + jnp.tanh(expected @ layer["kernel"][i] + layer["bias"][i]) * 0.5
    np.testing.assert_allclose(
        Stack(3, unroll=unroll).apply({"params": params}, x), expected, rtol=1e-5
    )


def test_dropout_differs_between_layers():
    x = jnp.ones((1, 64))
    params = Stack(2).init(jax.random.key(1), x)["params"]
    # Zero the Dense layers: each layer then adds dropout(tanh(b)*0.5) with its own mask.
    params = jax.tree.map(jnp.zeros_like, params)
    params["blocks"]["Dense_0"]["bias"] = jnp.ones((2, 64))
    out = Stack(2, deterministic=False).apply(
        {"params": params}, x, rngs={"dropout": jax.random.key(3)}
    )
    kept = (np.asarray(out[0]) - 1.0) / (np.tanh(1.0) * 0.5 * 2)  # Kept-by-layer count per unit.
    assert set(np.round(kept).astype(int)) == {0, 1, 2}  # Masks are not shared by the layers.


def _lowered(num_layers):
    x = jnp.ones((2, 16))
    params = Stack(num_layers).init(jax.random.key(0), x)
    return jax.jit(lambda p: Stack(num_layers).apply(p, x)).lower(params).as_text()


def test_compile_time_does_not_grow_with_depth():
    # The program is the same size: one loop body, whatever the depth. (Compile times are
    # measured by the benchmark, not asserted in tests.)
    assert abs(len(_lowered(12).splitlines()) - len(_lowered(2).splitlines())) <= 2


@pytest.mark.parametrize("remat", sorted(REMAT_POLICIES))
def test_every_remat_policy_gives_the_gradient_of_the_formula(remat):
    x = jax.random.normal(jax.random.key(0), (3, 4))
    params = Stack(3).init(jax.random.key(1), x)["params"]
    layer = params["blocks"]["Dense_0"]

    def formula(kernel, bias):  # Independent reference: the layers written out, no scan.
        y = x
        for i in range(3):
            y = y + jnp.tanh(y @ kernel[i] + bias[i]) * 0.5
        return jnp.sum(y**2)

    expected = jax.grad(formula, argnums=(0, 1))(layer["kernel"], layer["bias"])
    loss = lambda p: jnp.sum(Stack(3, remat=remat).apply({"params": p}, x) ** 2)
    got = jax.grad(loss)(params)["blocks"]["Dense_0"]
    np.testing.assert_allclose(got["kernel"], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["bias"], expected[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("unroll", [0, 1.5, True])
def test_bad_unroll_is_a_clear_error(unroll):
    with pytest.raises(ValueError, match="unroll: layers per loop iteration"):
        Stack(2, unroll=unroll).init(jax.random.key(0), jnp.ones((1, 4)))


def test_unknown_remat_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="remat: unknown 'everything'"):
        Stack(2, remat="everything").init(jax.random.key(0), jnp.ones((1, 4)))


@pytest.mark.parametrize("remat", ["dots", "full"])
def test_remat_with_dropout_in_training_gives_the_same_gradients(remat):
    # The translator scans an encoder and a decoder whose `deterministic` flag is a call argument
    # (static under remat); remat must replay the same dropout masks.
    source, target = jnp.array([[5, 6, 7, 2, 0]]), jnp.array([[1, 8, 9, 10]])
    grads = {}
    for policy in ("none", remat):
        model = TransformerTranslator(
            32, embed_dim=32, num_heads=2, num_layers=2, mlp_dim=64, dropout_rate=0.3, remat=policy
        )
        params = model.init(jax.random.key(0), source, target)["params"]
        loss = lambda p, model=model: jnp.sum(
            model.apply({"params": p}, source, target, True, rngs={"dropout": jax.random.key(1)})
            ** 2
        )
        grads[policy] = jax.jit(jax.grad(loss))(params)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
        grads["none"],
        grads[remat],
    )
