"""Where the image predictor reads a model's attention: the training-time evaluation's functions
(``evaluation.attention_maps``), so both give the same weights and explorer views."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from attn_research.evaluation import attention_maps


def image_maps(
    model: nn.Module, params: Any, images_BHWC: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The model's attention maps ``[B, M, h, w]`` over its grid (``map_names`` names them) and
    the heads ``[B, L, H, h, w]`` of the first L of them (``attention_maps.maps_and_heads``)."""
    return attention_maps.maps_and_heads(model, params, images_BHWC)


def map_names(model: nn.Module, params: Any, images_BHWC: jax.Array) -> tuple[str, ...]:
    """The names of the ``M`` maps of `image_maps`, in order."""
    return attention_maps.map_names(model, params, images_BHWC)
