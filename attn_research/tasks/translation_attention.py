"""A translator's teacher-forced attention over the source, and its views in words.

The translation evaluator (AER, heatmaps, ``figures/explorer.html``) and the predictor
(``attn_research.predict``) read a translator's attention here, through its ``attention_maps``
(``models.maps``: one map per attention, ``[B, H, T, S]``), so that both give the same weights
and the same explorer.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from attn_research.evaluation import alignment, explorer
from attn_research.models import maps


@functools.partial(jax.jit, static_argnums=0)
def teacher_forced_maps(
    model: nn.Module, params: Any, source_BS: jax.Array, target_in_BT: jax.Array
) -> list[maps.AttentionMap]:
    """The model's attention maps over the source with the target fed in (``models.maps``):
    one per attention, ``[B, H, T, S]``, row t the attention with which target token t was
    written, with local-p's ``centre_fraction``. Compiled once per model and batch shape."""
    return model.attention_maps(params, source_BS, target_in_BT)


def cross_attention(
    model: nn.Module, params: Any, source_BS: jax.Array, target_in_BT: jax.Array
) -> tuple[np.ndarray, np.ndarray]:
    """`teacher_forced_maps`' weights, heads averaged ``[maps, B, T, S]`` and per head
    ``[maps, B, H, T, S]``."""
    heads_MBHTS = stacked_weights(teacher_forced_maps(model, params, source_BS, target_in_BT))
    return heads_MBHTS.mean(axis=2), heads_MBHTS


def stacked_weights(attention: list[maps.AttentionMap]) -> np.ndarray:
    """The maps' weights on the host, stacked ``[maps, B, H, T, S]``."""
    return np.stack([np.asarray(m.weights) for m in attention])


def map_names(model: nn.Module, params: Any, source_BS: jax.Array) -> tuple[str, ...]:
    """The names of the maps of `teacher_forced_maps`, in order (nothing is computed)."""
    shapes = jax.eval_shape(model.attention_maps, params, source_BS, source_BS)
    return tuple(m.name for m in shapes)


def word_views(
    names: tuple[str, ...],
    average_MTS: np.ndarray,
    heads_MHTS: np.ndarray,
    target_words_T: np.ndarray,
    source_words_S: np.ndarray,
) -> dict[str, dict[str, np.ndarray]]:
    """The explorer's views of one sentence pair (``evaluation.explorer.views``): per map, its
    head average and each of its heads as ``[target words, source words]`` attention
    (``evaluation.alignment.word_attention``; word ids as ``Tokenizer.word_ids`` gives)."""
    words = functools.partial(
        alignment.word_attention, target_words_T=target_words_T, source_words_S=source_words_S
    )
    return explorer.views(
        names,
        [words(w_TS) for w_TS in average_MTS],
        [np.stack([words(w_TS) for w_TS in w_HTS]) for w_HTS in heads_MHTS],
    )
