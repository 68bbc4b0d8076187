"""ViT and attention CNN: patches, locality of local_2d by gradients, parameter counts, maps."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import FrozenDict

from attn_research.models.attention_cnn import AttentionCNN
from attn_research.models.vit import ViT, patchify, sincos_2d_positions, unpatchify


def test_patchify_round_trip_and_layout():
    images = np.random.default_rng(0).normal(size=(2, 12, 8, 3)).astype(np.float32)
    patches = patchify(images, 4)
    assert patches.shape == (2, 6, 48)
    # Patch 3 is row 1, column 1 of the 3 x 2 grid; its pixels row-major, channels last.
    np.testing.assert_array_equal(patches[1, 3], images[1, 4:8, 4:8].reshape(-1))
    np.testing.assert_array_equal(unpatchify(patches, (3, 2), 3), images)


def test_patchify_refuses_indivisible_images():
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        patchify(jnp.zeros((1, 10, 12, 1)), 4)


def test_sincos_positions_is_distinct_per_position():
    pos = sincos_2d_positions(3, 4, 16)
    assert pos.shape == (12, 16)
    assert len({tuple(np.round(row, 5)) for row in pos}) == 12


def _tokens(model: nn.Module, params, images):
    """The encoder's output tokens, captured from the model's own forward pass."""
    _, state = model.apply(
        {"params": params}, images, capture_intermediates=True, mutable=["intermediates"]
    )
    return state["intermediates"]["encoder"]["__call__"][0]


def _probe(model: nn.Module, params, images, token: int):
    """A random projection of one output token. (Not its plain sum: the encoder ends in a
    LayerNorm, whose outputs sum to the same value whatever the input, so that sum has a zero
    gradient up to rounding.)"""
    weights = jax.random.normal(jax.random.key(2), (model.embed_dim,))
    return _tokens(model, params, images)[0, token] @ weights


def _local_2d_vit(patch: int, window: int, stem: tuple[int, ...] = ()) -> ViT:
    """A one-layer ViT whose tokens attend to a ``window x window`` neighbourhood of patches."""
    return ViT(
        num_classes=3,
        patch=patch,
        stem=stem,
        embed_dim=8,
        num_layers=1,
        num_heads=2,
        mlp_dim=16,
        attention="local_2d",
        attention_options=FrozenDict(window=window),
        pool="gap",
    )


def test_local_2d_vit_output_depends_only_on_patches_in_the_window():
    grid, patch, window = (5, 4), 2, 3
    model = _local_2d_vit(patch, window)
    images = jax.random.normal(jax.random.key(0), (1, grid[0] * patch, grid[1] * patch, 1))
    params = model.init(jax.random.key(1), images)["params"]
    for row, col in ((0, 0), (2, 1), (4, 3)):
        token = row * grid[1] + col
        grad = jax.grad(lambda x: _probe(model, params, x, token))(images)
        per_patch = np.abs(np.asarray(patchify(grad, patch)[0])).sum(-1).reshape(grid)
        rr, cc = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
        inside = (np.abs(rr - row) <= window // 2) & (np.abs(cc - col) <= window // 2)
        assert np.all(per_patch[~inside] == 0), (row, col)
        assert np.all(per_patch[inside] > 0), (row, col)


def test_dense_vit_output_depends_on_every_patch():
    model = ViT(
        num_classes=3, patch=2, embed_dim=8, num_layers=1, num_heads=2, mlp_dim=16, pool="gap"
    )
    images = jax.random.normal(jax.random.key(0), (1, 8, 8, 1))
    params = model.init(jax.random.key(1), images)["params"]
    grad = jax.grad(lambda x: _probe(model, params, x, 0))(images)
    assert np.all(np.abs(np.asarray(patchify(grad, 2)[0])).sum(-1) > 0)


@pytest.mark.parametrize("stem", [(), (16,), (16, 16)])
def test_stem_widens_each_token_by_one_pixel_a_layer(stem):
    """With a window of one patch, a token sees its own patch through the embedding, and the
    stem's 3 x 3 convolutions add one pixel of margin per layer (zero-padded at the border).
    16 channels: a margin pixel reaches the patch through one position per layer, and a ReLU
    layer of 16 channels is all off there with a chance of 2^-16."""
    grid, patch = (4, 4), 3
    model = _local_2d_vit(patch, window=1, stem=stem)
    images = jax.random.normal(jax.random.key(0), (1, grid[0] * patch, grid[1] * patch, 2))
    params = model.init(jax.random.key(1), images)["params"]
    margin = len(stem)
    rows, cols = np.meshgrid(np.arange(grid[0] * patch), np.arange(grid[1] * patch), indexing="ij")
    for row, col in ((0, 0), (1, 2), (3, 3)):
        grad = jax.grad(lambda x: _probe(model, params, x, row * grid[1] + col))(images)
        seen = np.abs(np.asarray(grad[0])).sum(-1) > 0
        inside = (
            (rows >= row * patch - margin)
            & (rows < (row + 1) * patch + margin)
            & (cols >= col * patch - margin)
            & (cols < (col + 1) * patch + margin)
        )
        np.testing.assert_array_equal(seen, inside, err_msg=str((row, col)))


def test_local_2d_with_a_class_token_is_refused():
    model = ViT(
        num_classes=3,
        patch=2,
        attention="local_2d",
        attention_options=FrozenDict(window=3),
        pool="token",
    )
    with pytest.raises(ValueError, match="class token.*gap or map"):
        model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


@pytest.mark.parametrize(
    "pool,registers,stem",
    [("token", 0, ()), ("gap", 0, ()), ("map", 0, ()), ("token", 3, ()), ("token", 0, (5, 6))],
)
def test_vit_parameter_count_matches_the_formula(pool, registers, stem):
    d, m, depth, heads, classes, patch, channels, n = 32, 64, 2, 4, 10, 4, 3, 16
    model = ViT(
        num_classes=classes,
        patch=patch,
        embed_dim=d,
        num_layers=depth,
        num_heads=heads,
        mlp_dim=m,
        pool=pool,
        num_registers=registers,
        stem=stem,
    )
    params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, channels)))["params"]
    attention = 4 * (d * d + d)  # q, k, v, out kernels and biases.
    block = 2 * 2 * d + attention + (d * m + m) + (m * d + d)
    stem_params, stem_channels = 0, channels
    for out in stem:
        stem_params += 3 * 3 * stem_channels * out + out
        stem_channels = out
    expected = stem_params + (patch * patch * stem_channels * d + d) + n * d + depth * block
    expected += 2 * d
    expected += d * classes + classes
    expected += {"token": d, "gap": 0, "map": d + attention}[pool] + registers * d
    assert sum(x.size for x in jax.tree.leaves(params)) == expected


@pytest.mark.parametrize("pool", ["token", "gap", "map"])
def test_registers_are_attended_but_never_read_out(pool):
    """Darcet et al. 2023: registers take attention in every layer and are discarded at the
    output, so the readout gives them no weight and the grid maps leave them out."""
    registers, grid = 2, (2, 3)
    model = ViT(
        num_classes=3,
        patch=2,
        embed_dim=8,
        num_layers=2,
        num_heads=2,
        mlp_dim=8,
        pool=pool,
        num_registers=registers,
    )
    images = jax.random.normal(jax.random.key(0), (2, 4, 6, 1))
    params = model.init(jax.random.key(1), images)["params"]
    *layers, readout = model.attention_maps(params, images)
    prefix = ("class",) * (pool == "token") + ("register",) * registers
    assert readout.keys.roles == prefix + ("patch",) * 6 and readout.keys.grid == grid
    t = len(readout.keys)
    assert all(m.weights.shape == (2, 2, t, t) for m in layers)
    on_registers = np.asarray(readout.keys.roles) == "register"
    # Every token attends to the registers, and the readout never reads them.
    assert np.all(np.asarray(layers[0].weights)[..., on_registers] > 0)
    np.testing.assert_array_equal(np.asarray(readout.weights)[..., on_registers], 0.0)
    np.testing.assert_allclose(np.asarray(readout.weights).sum(-1), 1.0, rtol=1e-6)
    # The logits depend on the registers through the attention (a head that is not zero).
    params["head"]["kernel"] = jax.random.normal(jax.random.key(2), params["head"]["kernel"].shape)
    grad = jax.grad(lambda p: model.apply({"params": p}, images).sum())(params)
    assert np.abs(np.asarray(grad["registers"])).sum() > 0


def test_local_2d_with_registers_is_refused():
    model = ViT(
        num_classes=3,
        patch=2,
        attention="local_2d",
        attention_options=FrozenDict(window=3),
        pool="gap",
        num_registers=1,
    )
    with pytest.raises(ValueError, match="a register.*with no registers"):
        model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


@pytest.mark.parametrize("kind", ["additive", "dot_product"])
def test_attention_cnn_map_is_a_distribution_over_the_feature_map(kind):
    model = AttentionCNN(num_classes=4, stages=(4, 8, 8), num_heads=2, attention=kind)
    images = jax.random.normal(jax.random.key(0), (3, 16, 12, 1))
    params = model.init(jax.random.key(1), images)["params"]
    logits = model.apply({"params": params}, images)
    (readout,) = model.attention_maps(params, images)
    assert logits.shape == (3, 4) and logits.dtype == jnp.float32
    assert readout.name == "readout" and readout.queries.roles == ("probe",)
    assert readout.keys.grid == (4, 3) and readout.weights.shape == (3, 2, 1, 12)
    np.testing.assert_allclose(readout.weights.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(readout.weights >= 0)
