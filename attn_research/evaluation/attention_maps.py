"""Where image models look: attention maps, attention rollout, and how well they find the object.

Attention rollout (Abnar & Zuidema 2020; ViT paper, Figure 6), with ``A_l`` layer ``l``'s
attention averaged over heads:

    Â_l = (A_l + I) / rowsum(A_l + I),      R = Â_L Â_{L-1} ... Â_1.

A model's readout ``r [T]`` is the distribution over final tokens its classifier reads (class
token, mean of the tokens, or the MAP probe's attention); its maps are ``r A_l`` per layer and
``r R`` for rollout over the patch tokens, renormalized, on the patch grid. A cell's mass is
spread evenly over its pixels.

Localization (``localization``), per map and per head:

- energy-based pointing game (Wang et al. 2020, "Score-CAM"): the map's mass inside the box,
  ``mass_in_box/<map>``;
- pointing game (Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop"): a hit
  when the map's maximal cell is at most one cell from a cell the box touches (tied maxima
  count the fraction that hit), ``pointing_game/<map>``.

References: ``uniform`` (chance) and ``box_cells`` (uniform over the cells the box touches).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from attn_research.evaluation import explorer


def rollout(weights_LBHTT: jax.Array) -> jax.Array:
    """Attention rollout ``[L, B, H, T, T]`` -> ``R [B, T, T]`` (rows sum to 1)."""
    a_LBTT = weights_LBHTT.astype(jnp.float32).mean(axis=2)
    a_LBTT = a_LBTT + jnp.eye(a_LBTT.shape[-1], dtype=jnp.float32)
    a_LBTT = a_LBTT / a_LBTT.sum(axis=-1, keepdims=True)
    r_BTT = a_LBTT[0]
    for a_BTT in a_LBTT[1:]:
        r_BTT = a_BTT @ r_BTT
    return r_BTT


def readout_maps(weights_LBHTT: jax.Array, readout_BT: jax.Array) -> jax.Array:
    """Per-layer maps ``r A_l`` and the rollout map ``r R``: ``[B, L + 1, T]``."""
    layers_BLT = jnp.einsum("bq,lbqk->blk", readout_BT, weights_LBHTT.mean(axis=2))
    rollout_B1T = jnp.einsum("bq,bqk->bk", readout_BT, rollout(weights_LBHTT))[:, None]
    return jnp.concatenate([layers_BLT, rollout_B1T], axis=1)


def to_pixels(cells_Bhw: jax.Array, height: int, width: int) -> jax.Array:
    """``[B, h, w]`` cell masses -> ``[B, height, width]``, each cell spread over its pixels.

    Pixel ``(y, x)`` lies in cell ``(y h // height, x w // width)``.
    """
    h, w = cells_Bhw.shape[1:]
    rows, cols = jnp.arange(height) * h // height, jnp.arange(width) * w // width
    pixels_per_cell = jnp.bincount(rows, length=h)[:, None] * jnp.bincount(cols, length=w)
    return (cells_Bhw / pixels_per_cell)[:, rows][:, :, cols]


def mass_in_box(pixels_BHW: jax.Array, boxes_B4: jax.Array) -> jax.Array:
    """Fraction ``[B]`` of each map's mass inside its box ``(top, left, bottom, right)``.

    Boxes are in pixels, bottom and right exclusive.
    """
    y = jnp.arange(pixels_BHW.shape[1])[None, :, None]
    x = jnp.arange(pixels_BHW.shape[2])[None, None, :]
    top, left, bottom, right = (boxes_B4[:, i, None, None] for i in range(4))
    inside = (y >= top) & (y < bottom) & (x >= left) & (x < right)
    return (pixels_BHW * inside).sum(axis=(1, 2)) / pixels_BHW.sum(axis=(1, 2))


def _near_box(
    boxes_B4: jax.Array, grid: tuple[int, int], height: int, width: int, tolerance: int = 0
) -> jax.Array:
    """bool ``[B, h, w]``: the ``grid`` cells at most ``tolerance`` cells (in rows and in columns)
    from a cell the box touches; cells are as in ``to_pixels``."""
    h, w = grid
    top, left, bottom, right = (boxes_B4[:, i, None] for i in range(4))
    rows, cols = jnp.arange(h)[None], jnp.arange(w)[None]
    in_rows = (rows >= top * h // height - tolerance) & (
        rows <= (bottom - 1) * h // height + tolerance
    )
    in_cols = (cols >= left * w // width - tolerance) & (
        cols <= (right - 1) * w // width + tolerance
    )
    return in_rows[:, :, None] & in_cols[:, None, :]


def box_cells(boxes_B4: jax.Array, grid: tuple[int, int], height: int, width: int) -> jax.Array:
    """Reference maps ``[B, h, w]``: uniform over the ``grid`` cells each box touches.

    Boxes ``(top, left, bottom, right)`` are in pixels of a ``height x width`` image, bottom and
    right exclusive; cells are as in ``to_pixels``.
    """
    touched_Bhw = _near_box(boxes_B4, grid, height, width).astype(jnp.float32)
    return touched_Bhw / touched_Bhw.sum(axis=(1, 2), keepdims=True)


def pointing_game(
    cells_Bhw: jax.Array, boxes_B4: jax.Array, height: int, width: int, tolerance: int = 1
) -> jax.Array:
    """Pointing-game hits ``[B]`` in ``[0, 1]`` of cell maps on a ``height x width`` image.

    A hit (1) when the map's maximal cell is at most ``tolerance`` cells from a cell the box
    touches, else a miss (0); with tied maxima, the fraction of them that hit.
    """
    top_Bhw = cells_Bhw == cells_Bhw.max(axis=(1, 2), keepdims=True)
    near_Bhw = _near_box(boxes_B4, cells_Bhw.shape[1:], height, width, tolerance)
    return (top_Bhw & near_Bhw).sum(axis=(1, 2)) / top_Bhw.sum(axis=(1, 2))


def _scores(cells_Bhw: jax.Array, boxes_B4: jax.Array, height: int, width: int) -> dict:
    """Mean energy-based pointing game and pointing game of cell maps ``[B, h, w]``."""
    mass_B = mass_in_box(to_pixels(cells_Bhw, height, width), boxes_B4)
    hits_B = pointing_game(cells_Bhw, boxes_B4, height, width)
    return {"mass_in_box": float(np.mean(mass_B)), "pointing_game": float(np.mean(hits_B))}


def localization(
    maps: Mapping[str, jax.Array],
    heads: Mapping[str, jax.Array],
    boxes_B4: jax.Array,
    height: int,
    width: int,
) -> dict[str, float]:
    """Localization metrics of maps against boxes on ``height x width`` images.

    Args:
      maps: name -> cell maps ``[B, h, w]`` (head averages, rollout).
      heads: name -> per-head cell maps ``[B, H, h, w]``.
      boxes_B4: ``(top, left, bottom, right)`` in pixels, bottom and right exclusive.

    Returns:
      The means over ``B`` of ``<score>/<name>`` for each map and reference, ``<score>/best_map``
      (over the maps), and ``<score>/<name>/head<i>`` and ``<score>/<name>/best_head`` for each
      entry of ``heads``; ``<score>`` is ``mass_in_box`` or ``pointing_game``.
    """
    grid = next(iter(maps.values())).shape[1:]
    references = {
        "uniform": jnp.full((len(boxes_B4), *grid), 1.0 / (grid[0] * grid[1])),
        "box_cells": box_cells(boxes_B4, grid, height, width),
    }
    metrics = {}
    for name, cells_Bhw in {**maps, **references}.items():
        for score, value in _scores(cells_Bhw, boxes_B4, height, width).items():
            metrics[f"{score}/{name}"] = value
    for score in ("mass_in_box", "pointing_game"):
        metrics[f"{score}/best_map"] = max(metrics[f"{score}/{name}"] for name in maps)
    for name, cells_BHhw in heads.items():
        per_head = [
            _scores(cells_Bhw, boxes_B4, height, width) for cells_Bhw in cells_BHhw.swapaxes(0, 1)
        ]
        for score in per_head[0]:
            for i, scores in enumerate(per_head):
                metrics[f"{score}/{name}/head{i}"] = scores[score]
            metrics[f"{score}/{name}/best_head"] = max(scores[score] for scores in per_head)
    return metrics


def _names(layers: list) -> tuple[str, ...]:
    if not layers:
        return ("attention",)
    return tuple(m.name.rsplit("/", 1)[-1] for m in layers) + ("rollout",)


def map_names(model: nn.Module, params: Any, images_BHWC: jax.Array) -> tuple[str, ...]:
    """Names of the maps ``attention_maps`` returns, in order (nothing is computed)."""
    *layers, _ = jax.eval_shape(model.attention_maps, params, images_BHWC)
    return _names(layers)


def maps_and_heads(
    model: nn.Module, params: Any, images_BHWC: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The model's maps ``[B, M, h, w]`` over its grid (``attention_maps``) and the maps of
    each head ``[B, L, H, h, w]`` of the first ``L`` of them: ``r A_l^h`` for a layer ``l``
    (the rollout, last, has no heads), the readout's head ``h`` for an attention CNN."""
    *layers, readout = model.attention_maps(params, images_BHWC)
    readout_BT = readout.weights.mean(axis=(1, 2))
    if layers:
        weights_LBHTT = jnp.stack([m.weights for m in layers])
        maps_BMT = readout_maps(weights_LBHTT, readout_BT)
        heads_BLHT = jnp.einsum("bq,lbhqk->blhk", readout_BT, weights_LBHTT)
    else:
        maps_BMT = readout_BT[:, None]
        heads_BLHT = readout.weights.mean(axis=2)[:, None]
    keys = readout.keys
    patches = keys.on_grid()

    def on_grid(maps_BXT):
        if len(patches) < len(keys):
            maps_BXT = maps_BXT[..., patches]
            maps_BXT = maps_BXT / maps_BXT.sum(axis=-1, keepdims=True)
        return maps_BXT.reshape(*maps_BXT.shape[:-1], *keys.grid)

    return on_grid(maps_BMT), on_grid(heads_BLHT)


def attention_maps(model: nn.Module, params: Any, images_BHWC: jax.Array) -> jax.Array:
    """The model's maps ``[B, len(map_names), h, w]`` over its grid, rows summing to 1: per layer
    (``layer<i>``) and ``rollout`` with self-attention, else the readout (``attention``); heads
    averaged, keys off the grid dropped.
    """
    return maps_and_heads(model, params, images_BHWC)[0]


def views(
    names: Sequence[str], maps_Mhw: np.ndarray, heads_LHhw: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """The explorer's views of one image (``evaluation.explorer.views``) from its maps and
    heads as `maps_and_heads` gives them."""
    no_heads = [heads_LHhw[0, :0]] * (len(maps_Mhw) - len(heads_LHhw))
    return explorer.views(names, list(maps_Mhw), list(heads_LHhw) + no_heads)
