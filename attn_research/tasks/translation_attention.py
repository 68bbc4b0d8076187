"""A translator's teacher-forced attention over the source, and its views in words, read
through ``attention_maps`` (``[B, H, T, S]`` per map) by both the evaluator and the predictor.
Words are the whitespace tokens, each encoded alone, so that a gold alignment lines up."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from attn_research.data import tokenizer as tokenizer_lib
from attn_research.data import translation_pipeline
from attn_research.evaluation import alignment, alignment_readouts, explorer
from attn_research.models import maps, saliency
from attn_research.tasks import translation_decoding


def has_attention(config: ml_collections.ConfigDict) -> bool:
    """Whether the run's translator has a map over its source (the RNN with
    ``attention=None`` has none, unless it has an aligner)."""
    return config.model.get("attention", "") is not None or config.model.get("aligner_units", 0) > 0


@functools.partial(jax.jit, static_argnums=0)
def teacher_forced_maps(
    model: nn.Module, params: Any, source_BS: jax.Array, target_in_BT: jax.Array
) -> list[maps.AttentionMap]:
    """The model's attention maps ``[B, H, T, S]`` with the target fed in, row t the one that
    wrote target token t (``models.maps``); compiled once per model and batch shape."""
    return model.attention_maps(params, source_BS, target_in_BT)


# The source saliency of the teacher-forced tokens (``models.saliency``), compiled once per model
# and batch shape.
teacher_forced_saliency = jax.jit(saliency.saliency_map, static_argnums=(0, 5))


def cross_attention(
    model: nn.Module,
    params: Any,
    source_BS: jax.Array,
    target_in_BT: jax.Array,
    target_out_BT: jax.Array | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`teacher_forced_maps`' weights per map, heads averaged ``[B, T, S]`` and per head
    ``[B, H, T, S]``; given the tokens the rows write, `target_out_BT`, the source saliency
    last."""
    found = teacher_forced_maps(model, params, source_BS, target_in_BT)
    if target_out_BT is not None:
        found = [
            *found,
            teacher_forced_saliency(model, params, source_BS, target_in_BT, target_out_BT),
        ]
    heads_MBHTS = host_weights(found)
    return [w.mean(axis=1) for w in heads_MBHTS], heads_MBHTS


def host_weights(attention: list[maps.AttentionMap]) -> list[np.ndarray]:
    """The maps' weights on the host, ``[B, H, T, S]`` each (maps differ in heads: an aligner
    has one)."""
    return [np.asarray(m.weights) for m in attention]


def map_heads(
    model: nn.Module, params: Any, source_BS: jax.Array, with_saliency: bool = False
) -> dict[str, int]:
    """``{name: heads}`` of the maps of `teacher_forced_maps`, in order, and the saliency's
    (one head) last if asked (nothing is computed)."""
    shapes = jax.eval_shape(model.attention_maps, params, source_BS, source_BS)
    return {m.name: m.weights.shape[1] for m in shapes} | (
        {saliency.NAME: 1} if with_saliency else {}
    )


def word_views(
    names: tuple[str, ...],
    average_MTS: Sequence[np.ndarray],
    heads_MHTS: Sequence[np.ndarray],
    target_words_T: np.ndarray,
    source_words_S: np.ndarray,
    shape: tuple[int, int] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """The explorer's views of one pair: per map, the head average and each head as
    ``[target words, source words]`` attention (``shape``: the word counts)."""
    words = functools.partial(
        alignment.word_attention,
        target_words_T=target_words_T,
        source_words_S=source_words_S,
        shape=shape,
    )
    return explorer.views(
        names,
        [words(w_TS) for w_TS in average_MTS],
        [np.stack([words(w_TS) for w_TS in w_HTS]) for w_HTS in heads_MHTS],
    )


@dataclasses.dataclass(frozen=True)
class Sentence:
    """A sentence in pieces: ids ``[N]`` ending in EOS, the word of each ``[N]`` (-1 at EOS),
    and its words (a word with no piece keeps its index, and reads as zero attention)."""

    ids: np.ndarray
    word_ids: np.ndarray
    words: tuple[str, ...]


def encode(tokenizer: tokenizer_lib.Tokenizer, text: str) -> Sentence:
    """`text`'s whitespace words, each encoded alone, and EOS."""
    words = tuple(text.split())
    pieces = [tokenizer.encode(word) for word in words]
    return Sentence(
        np.concatenate(pieces + [np.asarray([tokenizer_lib.EOS_ID], np.int32)]).astype(np.int32),
        np.concatenate(
            [np.full(p.size, i, np.int32) for i, p in enumerate(pieces)] + [[-1]]
        ).astype(np.int32),
        words,
    )


def check_lengths(
    model: nn.Module, sources: Sequence[Sentence], targets: Sequence[Sentence]
) -> None:
    """Raises ValueError naming the first pair (1-based) with a side longer than the model's
    ``length_limit`` (none for a model without one)."""
    limit = model.length_limit
    for i, (s, t) in enumerate(zip(sources, targets)):
        if limit is not None and max(s.ids.size, t.ids.size) > limit:
            raise ValueError(
                f"pair {i + 1}: its source has {s.ids.size} pieces and its target "
                f"{t.ids.size} (EOS included), but this model reads at most {limit} "
                "(its length_limit: config.model.max_len of learned positions)"
            )


def pair_views(
    model: nn.Module,
    params: Any,
    sources: Sequence[Sentence],
    targets: Sequence[Sentence],
    batch: int,
    *,
    shifted: bool = False,
    with_saliency: bool = False,
) -> list[alignment_readouts.PairAttention]:
    """The word-level attention views (`word_views`) of each pair, teacher-forced, in batches of
    `batch` padded to multiples of ``translation_decoding.BUCKET`` pieces; with `shifted`, also
    Shift-Att's rows from the same pass; `with_saliency`: the source saliency as a last map.
    Every pair needs a word on each side."""
    limit = model.length_limit
    names = tuple(map_heads(model, params, sources[0].ids[None], with_saliency))
    # Rounded up to a bucket, capped at the limit (a model without one: never capped).
    pad_to = lambda n: translation_decoding.bucket_width(
        n, limit or n + translation_decoding.BUCKET
    )
    out = []
    for start in range(0, len(sources), batch):
        part_s, part_t = sources[start : start + batch], targets[start : start + batch]
        source_BS = translation_pipeline.pad(
            [s.ids for s in part_s], pad_to(max(s.ids.size for s in part_s))
        )
        bos = [np.asarray([tokenizer_lib.BOS_ID], np.int32)]
        target_in_BT = translation_pipeline.pad(
            [np.concatenate(bos + [t.ids[:-1]]) for t in part_t],
            pad_to(max(t.ids.size for t in part_t)),
        )
        target_out_BT = (
            translation_pipeline.pad([t.ids for t in part_t], target_in_BT.shape[1])
            if with_saliency
            else None
        )
        average_MBTS, heads_MBHTS = cross_attention(
            model, params, source_BS, target_in_BT, target_out_BT
        )
        for b, (s, t) in enumerate(zip(part_s, part_t)):
            views = functools.partial(
                word_views,
                names,
                [w[b, : t.ids.size, : s.ids.size] for w in average_MBTS],
                [w[b, :, : t.ids.size, : s.ids.size] for w in heads_MBHTS],
                source_words_S=s.word_ids,
                shape=(len(t.words), len(s.words)),
            )
            out.append(
                alignment_readouts.PairAttention(
                    views(t.word_ids),
                    views(alignment_readouts.shift_rows(t.word_ids)) if shifted else {},
                )
            )
    return out
