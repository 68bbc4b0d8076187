"""Where the predictors read a model's attention: through the models' attention maps
(``models.maps``), by the same functions as the training-time evaluation, so that the two give
the same weights and the same explorer views.

Translation reads ``tasks.translation_attention`` (every map, heads averaged and per head),
images ``evaluation.attention_maps`` (the maps, and each head's); nothing else in
``attn_research.predict`` touches a model's attention.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import ml_collections

from attn_research.evaluation import attention_maps
from attn_research.tasks import translation_attention


def has_attention(config: ml_collections.ConfigDict) -> bool:
    """Whether the run's translator attends to its source (the RNN without attention does not)."""
    return config.model.get("attention") != "none"


def cross_attention(
    model: nn.Module, params: Any, source_BS: jax.Array, target_in_BT: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Teacher-forced attention over the source, heads averaged ``[maps, B, T, S]`` and per
    head ``[maps, B, H, T, S]`` (one map per decoder layer, one for an RNN): row t is the
    attention with which target token t was written. Jitted, on the host."""
    return translation_attention.cross_attention(model, params, source_BS, target_in_BT)


def cross_attention_names(model: nn.Module, params: Any, source_BS: jax.Array) -> tuple[str, ...]:
    """The names of the maps of `cross_attention`, e.g. ``decoder/cross/layer1``."""
    return translation_attention.map_names(model, params, source_BS)


def image_maps(
    model: nn.Module, params: Any, images_BHWC: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The model's attention maps ``[B, M, h, w]`` over its grid (``map_names`` names them) and
    the heads ``[B, L, H, h, w]`` of the first L of them (``attention_maps.maps_and_heads``)."""
    return attention_maps.maps_and_heads(model, params, images_BHWC)


def map_names(model: nn.Module, params: Any, images_BHWC: jax.Array) -> tuple[str, ...]:
    """The names of the ``M`` maps of `image_maps`, in order."""
    return attention_maps.map_names(model, params, images_BHWC)
