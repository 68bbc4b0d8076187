"""Attention rollout against a NumPy reference, pixel maps, mass in box, maps of the models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import FrozenDict

from attn_research.evaluation import attention_maps
from attn_research.models.attention_cnn import AttentionCNN
from attn_research.models.vit import ViT


def _random_attention(rng, layers, batch, heads, tokens):
    logits = rng.normal(size=(layers, batch, heads, tokens, tokens))
    weights = np.exp(logits)
    return weights / weights.sum(-1, keepdims=True)


def _rollout_reference(weights):
    """Abnar & Zuidema 2020, written out per example and layer."""
    layers, batch, _, tokens, _ = weights.shape
    out = np.zeros((batch, tokens, tokens))
    for b in range(batch):
        joint = np.eye(tokens)
        for layer in range(layers):
            a = weights[layer, b].mean(axis=0) + np.eye(tokens)
            a = a / a.sum(axis=1, keepdims=True)
            joint = a @ joint
        out[b] = joint
    return out


def test_rollout_matches_the_formula_and_rows_sum_to_one():
    weights = _random_attention(np.random.default_rng(0), 3, 2, 4, 5)
    rollout = np.asarray(attention_maps.rollout(jnp.asarray(weights, jnp.float32)))
    np.testing.assert_allclose(rollout, _rollout_reference(weights), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rollout.sum(-1), 1.0, rtol=1e-5)


def test_readout_maps_read_layers_then_rollout():
    weights = _random_attention(np.random.default_rng(1), 2, 1, 3, 4)
    readout = np.array([[0.0, 1.0, 0.0, 0.0]])
    maps = np.asarray(attention_maps.readout_maps(jnp.asarray(weights, jnp.float32),
                                                  jnp.asarray(readout, jnp.float32)))
    np.testing.assert_allclose(maps[0, 0], weights[0, 0].mean(0)[1], rtol=1e-5)
    np.testing.assert_allclose(maps[0, 1], weights[1, 0].mean(0)[1], rtol=1e-5)
    np.testing.assert_allclose(maps[0, 2], _rollout_reference(weights)[0, 1], rtol=1e-5)


def test_pixel_maps_keep_the_mass_and_score_boxes_by_overlap():
    cells = np.zeros((2, 2, 3), np.float32)
    cells[0, 0, 0] = 1.0  # All mass on the top-left cell (pixels 0..2 x 0..2 of 6 x 9).
    cells[1] = 1.0 / 6
    pixels = np.asarray(attention_maps.to_pixels(jnp.asarray(cells), 6, 9))
    np.testing.assert_allclose(pixels.sum(axis=(1, 2)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(pixels[0, :3, :3], 1.0 / 9, rtol=1e-6)
    boxes = np.array([[1, 1, 3, 3], [0, 0, 3, 9]])
    mass = np.asarray(attention_maps.mass_in_box(jnp.asarray(pixels), jnp.asarray(boxes)))
    np.testing.assert_allclose(mass, [4 / 9, 0.5], rtol=1e-6)


def test_pixel_maps_of_uneven_cells():
    pixels = np.asarray(attention_maps.to_pixels(jnp.full((1, 2, 2), 0.25), 5, 5))
    np.testing.assert_allclose(pixels.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(pixels[0, :3, :3].sum(), 0.25, rtol=1e-6)


@pytest.mark.parametrize("kind,pool", [("dot_product", "token"), ("local_2d", "gap"),
                                       ("additive", "map")])
def test_vit_maps_are_distributions_on_the_patch_grid(kind, pool):
    options = FrozenDict(window=3) if kind == "local_2d" else FrozenDict()
    model = ViT(num_classes=3, patch=4, width=16, depth=2, num_heads=2, mlp_dim=16,
                attention=kind, attention_options=options, pool=pool)
    images = jax.random.normal(jax.random.key(0), (2, 12, 16, 1))
    params = model.init(jax.random.key(1), images)["params"]
    maps = np.asarray(attention_maps.attention_maps(model, params, images))
    assert attention_maps.map_names(model) == ("layer1", "layer2", "rollout")
    assert maps.shape == (2, 3, 3, 4)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0, rtol=1e-5)


def test_cnn_map():
    model = AttentionCNN(num_classes=3, stages=(4, 8))
    images = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    params = model.init(jax.random.key(1), images)["params"]
    maps = np.asarray(attention_maps.attention_maps(model, params, images))
    assert attention_maps.map_names(model) == ("attention",) and maps.shape == (2, 1, 4, 4)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0, rtol=1e-5)
