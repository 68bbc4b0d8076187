"""Where the predictors read a model's attention: the one adapter to switch when the model's
attention protocol changes.

Translation reads the translator family's teacher-forced ``alignment`` (heads averaged), images
read ``evaluation.attention_maps``; nothing else in ``attn_research.predict`` touches a model's
attention.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import ml_collections

from attn_research.evaluation import attention_maps


def has_attention(config: ml_collections.ConfigDict) -> bool:
    """Whether the run's translator attends to its source (the RNN without attention does not)."""
    return config.model.get("attention") != "none"


def cross_attention(
    family: Any, model: nn.Module, params: Any, source_BS: jax.Array, target_in_BT: jax.Array
) -> jax.Array:
    """Teacher-forced attention over the source ``[layers, B, T, S]`` (1 layer for an RNN):
    row t is the attention with which target token t was written."""
    weights = family.alignment(model, params, source_BS, target_in_BT)
    return weights if weights.ndim == 4 else weights[None]


def image_maps(model: nn.Module, params: Any, images_BHWC: jax.Array) -> jax.Array:
    """The model's attention maps ``[B, M, h, w]`` over its grid (``map_names`` names them)."""
    return attention_maps.attention_maps(model, params, images_BHWC)


def map_names(model: nn.Module, params: Any, images_BHWC: jax.Array) -> tuple[str, ...]:
    """The names of the ``M`` maps of `image_maps`, in order."""
    return attention_maps.map_names(model, params, images_BHWC)
