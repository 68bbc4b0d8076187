"""Attention rollout against a NumPy reference, pixel maps, mass in box and its box-cells
reference, maps of the models."""

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
    maps = np.asarray(
        attention_maps.readout_maps(
            jnp.asarray(weights, jnp.float32), jnp.asarray(readout, jnp.float32)
        )
    )
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


def _box_cells_reference(box, grid, height, width):
    """Marks the cell of every pixel inside the box, then spreads the mass evenly over them."""
    touched = np.zeros(grid)
    for y in range(box[0], box[2]):
        for x in range(box[1], box[3]):
            touched[y * grid[0] // height, x * grid[1] // width] = 1.0
    return touched / touched.sum()


@pytest.mark.parametrize("grid,height,width", [((8, 8), 32, 32), ((3, 5), 12, 16)])
def test_box_cells_spread_evenly_over_the_cells_a_box_touches(grid, height, width):
    rng = np.random.default_rng(2)
    tops, lefts = rng.integers(0, height - 2, 6), rng.integers(0, width - 2, 6)
    boxes = np.stack(
        [
            tops,
            lefts,
            tops + rng.integers(1, height - tops + 1),
            lefts + rng.integers(1, width - lefts + 1),
        ],
        axis=1,
    )
    maps = np.asarray(attention_maps.box_cells(jnp.asarray(boxes), grid, height, width))
    for box, cells in zip(boxes, maps):
        np.testing.assert_allclose(cells, _box_cells_reference(box, grid, height, width), rtol=1e-6)


def test_box_cells_score_one_on_a_box_of_whole_cells_and_less_on_a_misaligned_one():
    boxes = jnp.asarray([[4, 8, 12, 12], [2, 2, 10, 10]])  # 4-pixel cells of a 16 x 16 image.
    pixels = attention_maps.to_pixels(attention_maps.box_cells(boxes, (4, 4), 16, 16), 16, 16)
    # The second box touches 3 x 3 cells; per axis 2 + 4 + 2 of their 12 pixels are inside.
    np.testing.assert_allclose(
        attention_maps.mass_in_box(pixels, boxes), [1.0, (8 / 12) ** 2], rtol=1e-5
    )


@pytest.mark.parametrize(
    "kind,pool", [("dot_product", "token"), ("local_2d", "gap"), ("additive", "map")]
)
def test_vit_maps_are_distributions_on_the_patch_grid(kind, pool):
    options = FrozenDict(window=3) if kind == "local_2d" else FrozenDict()
    model = ViT(
        num_classes=3,
        patch=4,
        embed_dim=16,
        num_layers=2,
        num_heads=2,
        mlp_dim=16,
        attention=kind,
        attention_options=options,
        pool=pool,
    )
    images = jax.random.normal(jax.random.key(0), (2, 12, 16, 1))
    params = model.init(jax.random.key(1), images)["params"]
    maps = np.asarray(attention_maps.attention_maps(model, params, images))
    assert attention_maps.map_names(model, params, images) == ("layer1", "layer2", "rollout")
    assert maps.shape == (2, 3, 3, 4)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0, rtol=1e-5)


def test_cnn_map():
    model = AttentionCNN(num_classes=3, stages=(4, 8))
    images = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    params = model.init(jax.random.key(1), images)["params"]
    maps = np.asarray(attention_maps.attention_maps(model, params, images))
    assert attention_maps.map_names(model, params, images) == ("attention",)
    assert maps.shape == (2, 1, 4, 4)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0, rtol=1e-5)


def test_head_maps_are_each_heads_attention_of_the_readout_on_the_grid():
    model = ViT(
        num_classes=3, patch=4, embed_dim=16, num_layers=2, num_heads=2, mlp_dim=16, pool="token"
    )
    images = jax.random.normal(jax.random.key(0), (2, 8, 12, 1))
    params = model.init(jax.random.key(1), images)["params"]
    maps, heads = attention_maps.maps_and_heads(model, params, images)
    assert heads.shape == (2, 2, 2, 2, 3)  # [B, layers, heads, grid]
    # The class token's row of each head, patches only, renormalized.
    *layers, _ = model.attention_maps(params, images)
    for l, layer in enumerate(layers):
        row_BHT = np.asarray(layer.weights[:, :, 0, 1:])
        expected = row_BHT / row_BHT.sum(-1, keepdims=True)
        np.testing.assert_allclose(heads[:, l].reshape(2, 2, 6), expected, rtol=1e-5)
    view = attention_maps.views(("layer1", "layer2", "rollout"), maps[0], heads[0])
    assert list(view["layer2"]) == ["average", "head 1", "head 2"]
    assert list(view["rollout"]) == ["average"]


def test_cnn_head_maps_are_its_pooling_heads():
    model = AttentionCNN(num_classes=3, stages=(4, 8), num_heads=2)
    images = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    params = model.init(jax.random.key(1), images)["params"]
    maps, heads = attention_maps.maps_and_heads(model, params, images)
    (readout,) = model.attention_maps(params, images)
    np.testing.assert_allclose(heads[:, 0].reshape(2, 2, 16), readout.weights[:, :, 0], rtol=1e-6)
    np.testing.assert_allclose(heads[:, 0].mean(1), maps[:, 0], rtol=1e-5)


def _pointing_reference(cells, box, size, tolerance=1):
    """Hit of a ``[h, w]`` map on a ``size x size`` image of square cells, by pixel geometry: the
    maximal cells' pixels meet the box grown by ``tolerance`` cells a side (ties: the share)."""
    h = cells.shape[0]
    cell = size // h
    top, left, bottom, right = np.asarray(box) + np.array([-1, -1, 1, 1]) * tolerance * cell
    maxima = np.argwhere(cells == cells.max())
    hits = [
        r * cell < bottom and (r + 1) * cell > top and c * cell < right and (c + 1) * cell > left
        for r, c in maxima
    ]
    return np.mean(hits)


def _one_hot_maps(cells, grid=(6, 6)):
    maps = np.full((len(cells), *grid), 0.01, np.float32)
    for b, (r, c) in enumerate(cells):
        maps[b, r, c] = 1.0
    return maps / maps.sum(axis=(1, 2), keepdims=True)


def test_pointing_game_hits_within_one_cell_of_the_box():
    # 6 x 6 cells of 10 pixels; the box touches cells rows 2..3, cols 2..4.
    box = (20, 25, 40, 45)
    maximal = [(2, 2), (1, 1), (4, 5), (0, 2), (5, 3), (3, 0), (2, 4)]
    expected = [1, 1, 1, 0, 0, 0, 1]  # one cell off, diagonal included: a hit; two: a miss
    maps = _one_hot_maps(maximal)
    boxes = np.tile(box, (len(maps), 1)).astype(np.int32)
    hits = np.asarray(attention_maps.pointing_game(jnp.asarray(maps), jnp.asarray(boxes), 60, 60))
    np.testing.assert_array_equal(hits, expected)
    np.testing.assert_array_equal([_pointing_reference(m, box, 60) for m in maps], expected)
    zero = attention_maps.pointing_game(jnp.asarray(maps), jnp.asarray(boxes), 60, 60, tolerance=0)
    np.testing.assert_array_equal(zero, [1, 0, 0, 0, 0, 0, 1])


def test_pointing_game_of_tied_maxima_counts_the_share_that_hits():
    uniform = np.full((1, 6, 6), 1 / 36, np.float32)
    box = np.array([[20, 25, 40, 45]], np.int32)
    hits = attention_maps.pointing_game(jnp.asarray(uniform), jnp.asarray(box), 60, 60)
    np.testing.assert_allclose(hits, [_pointing_reference(uniform[0], box[0], 60)], rtol=1e-6)
    np.testing.assert_allclose(hits, [4 * 5 / 36], rtol=1e-6)


def _mass_reference(cells, box, size):
    """Mass inside the box of a map of square cells, each cell's mass spread over its pixels."""
    pixels = np.kron(cells, np.ones((size // cells.shape[0],) * 2)) / (size // cells.shape[0]) ** 2
    top, left, bottom, right = box
    return pixels[top:bottom, left:right].sum() / pixels.sum()


def test_localization_scores_maps_heads_and_references():
    boxes = np.array([[20, 25, 40, 45], [0, 0, 28, 28]], np.int32)
    on_box, off_box = _one_hot_maps([(3, 3), (1, 1)]), _one_hot_maps([(5, 0), (5, 5)])
    heads = np.stack([off_box, on_box], axis=1)  # [B, H=2, 6, 6]: head 1 looks at the object
    average = heads.mean(axis=1)
    metrics = attention_maps.localization(
        {"layer1": jnp.asarray(average), "rollout": jnp.asarray(on_box)},
        {"layer1": jnp.asarray(heads)},
        jnp.asarray(boxes),
        60,
        60,
    )

    def mass(maps):
        return np.mean([_mass_reference(m, b, 60) for m, b in zip(maps, boxes)])

    def points(maps):
        return np.mean([_pointing_reference(m, b, 60) for m, b in zip(maps, boxes)])

    expected = {
        "layer1": average,
        "rollout": on_box,
        "layer1/head0": off_box,
        "layer1/head1": on_box,
        "layer1/best_head": on_box,
        "best_map": on_box,  # the rollout scores best of the two maps
        "uniform": np.full((2, 6, 6), 1 / 36),
    }
    for name, maps in expected.items():
        np.testing.assert_allclose(metrics[f"mass_in_box/{name}"], mass(maps), rtol=1e-5)
        np.testing.assert_allclose(metrics[f"pointing_game/{name}"], points(maps), rtol=1e-6)
    assert metrics["pointing_game/layer1/best_head"] == 1.0
    assert metrics["pointing_game/box_cells"] == 1.0
    assert metrics["mass_in_box/uniform"] < metrics["mass_in_box/layer1/best_head"]


def test_head_maps_average_to_the_maps():
    model = ViT(
        num_classes=3, patch=4, embed_dim=16, num_layers=2, num_heads=4, mlp_dim=16, pool="gap"
    )
    images = jax.random.normal(jax.random.key(0), (2, 12, 16, 1))
    params = model.init(jax.random.key(1), images)["params"]
    heads = np.asarray(attention_maps.maps_and_heads(model, params, images)[1])
    maps = np.asarray(attention_maps.attention_maps(model, params, images))
    assert heads.shape == (2, 2, 4, 3, 4)
    np.testing.assert_allclose(heads.sum(axis=(3, 4)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(heads.mean(axis=2), maps[:, :2], rtol=1e-5, atol=1e-7)
    cnn = AttentionCNN(num_classes=3, stages=(4, 8), num_heads=2)
    params = cnn.init(jax.random.key(1), images)["params"]
    heads = np.asarray(attention_maps.maps_and_heads(cnn, params, images)[1])
    maps = np.asarray(attention_maps.attention_maps(cnn, params, images))
    assert heads.shape == (2, 1, 2, *maps.shape[2:])
    np.testing.assert_allclose(heads.mean(axis=2), maps, rtol=1e-5, atol=1e-7)
