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
import jax.numpy as jnp
import numpy as np

from attn_research.evaluation import alignment, explorer


@functools.partial(jax.jit, static_argnums=(0, 4))
def cross_attention(
    model: nn.Module, params: Any, source_BS: jax.Array, target_in_BT: jax.Array, heads: bool
) -> tuple[jax.Array, jax.Array | None]:
    """Each attention's weights: heads averaged ``[maps, B, T, S]``, and with `heads` the
    heads themselves ``[maps, B, H, T, S]`` (else None). Row t is the attention with which
    target token t was written. Compiled once per model, batch shape and `heads`."""
    weights_MBHTS = jnp.stack(
        [m.weights for m in model.attention_maps(params, source_BS, target_in_BT)]
    )
    return weights_MBHTS.mean(axis=2), weights_MBHTS if heads else None


def map_names(model: nn.Module, params: Any, source_BS: jax.Array) -> tuple[str, ...]:
    """The names of the ``maps`` of `cross_attention`, in order (nothing is computed)."""
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
