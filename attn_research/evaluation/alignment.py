"""Word alignments from attention, and the alignment error rate against gold links.

Attention ``a [T, S]`` between subword pieces becomes word-level by summing over the pieces
of each source word and averaging over the pieces of each target word; the hard alignment
links each target word to its argmax source word. Against sure links S and possible links P
(Och & Ney 2003),

    AER = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|),

with S = P = the gold links here (so AER = 1 - 2 |A ∩ G| / (|A| + |G|)).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Links = set[tuple[int, int]]


def word_attention(
    weights_TS: np.ndarray, target_words_T: np.ndarray, source_words_S: np.ndarray
) -> np.ndarray:
    """``[target words, source words]`` attention from piece-level ``[T, S]``.

    ``target_words_T`` / ``source_words_S`` give each piece's word index (-1: special or
    padding, ignored), as `Tokenizer.word_ids` returns.
    """
    n_t, n_s = int(target_words_T.max()) + 1, int(source_words_S.max()) + 1
    t_onehot = (target_words_T[:, None] == np.arange(n_t)).astype(np.float64)  # [T, Wt]
    s_onehot = (source_words_S[:, None] == np.arange(n_s)).astype(np.float64)  # [S, Ws]
    summed = t_onehot.T @ np.asarray(weights_TS, np.float64) @ s_onehot
    return summed / np.maximum(t_onehot.sum(0), 1)[:, None]


def hard_alignment(word_weights: np.ndarray) -> Links:
    """Each target word linked to its argmax source word: {(source, target)}."""
    return {(int(s), t) for t, s in enumerate(np.argmax(word_weights, axis=1))}


def aer(
    predicted: Iterable[Links], sure: Iterable[Links], possible: Iterable[Links] | None = None
) -> float:
    """Corpus AER of predicted links against sure (and possible, default = sure) links."""
    predicted, sure = list(predicted), list(sure)
    possible = sure if possible is None else list(possible)
    hits_sure = sum(len(a & s) for a, s in zip(predicted, sure))
    hits_possible = sum(len(a & (p | s)) for a, s, p in zip(predicted, sure, possible))
    total = sum(len(a) for a in predicted) + sum(len(s) for s in sure)
    if total == 0:
        raise ValueError("AER of empty alignments")
    return 1.0 - (hits_sure + hits_possible) / total
