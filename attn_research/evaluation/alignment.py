"""Word alignments from attention, and the alignment error rate against gold links.

Attention ``a [T, S]`` between subword pieces becomes word-level by summing over the pieces
of each source word and averaging over the pieces of each target word; the hard alignment
links each target word to its argmax source word (``evaluation.alignment_readouts`` has the
other read-outs). Against sure links S and possible links P ⊇ S (Och & Ney 2003), summed over
the corpus,

    precision = |A ∩ P| / |A|,    recall = |A ∩ S| / |S|,
    AER = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|),

with S = P = the gold links of a generated corpus (AER = 1 - 2 |A ∩ G| / (|A| + |G|)).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from attn_research.data.symmetrize import Links


def word_attention(
    weights_TS: np.ndarray,
    target_words_T: np.ndarray,
    source_words_S: np.ndarray,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """``[target words, source words]`` attention from piece-level ``[T, S]``: summed over each
    source word's pieces, averaged over each target word's. ``*_words`` give each piece's word
    (-1: ignored; `Tokenizer.word_ids`); `shape` the word counts (default: largest index + 1).
    """
    n_t, n_s = shape or (int(target_words_T.max()) + 1, int(source_words_S.max()) + 1)
    t_onehot = (target_words_T[:, None] == np.arange(n_t)).astype(np.float64)  # [T, Wt]
    s_onehot = (source_words_S[:, None] == np.arange(n_s)).astype(np.float64)  # [S, Ws]
    summed = t_onehot.T @ np.asarray(weights_TS, np.float64) @ s_onehot
    return summed / np.maximum(t_onehot.sum(0), 1)[:, None]


def hard_alignment(word_weights: np.ndarray) -> Links:
    """Each target word linked to its argmax source word: {(source, target)}."""
    return {(int(s), t) for t, s in enumerate(np.argmax(word_weights, axis=1))}


@dataclasses.dataclass(frozen=True)
class Scores:
    """Corpus counts of predicted links A against sure S and possible P links, and the rates
    of the module doc (precision 0 when nothing is predicted, recall 0 without sure links)."""

    predicted: int  # |A|
    sure: int  # |S|
    hits_sure: int  # |A ∩ S|
    hits_possible: int  # |A ∩ P|

    @property
    def precision(self) -> float:
        return self.hits_possible / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.hits_sure / self.sure if self.sure else 0.0

    @property
    def aer(self) -> float:
        return 1.0 - (self.hits_sure + self.hits_possible) / (self.predicted + self.sure)

    def as_dict(self) -> dict[str, float]:
        return {"aer": self.aer, "precision": self.precision, "recall": self.recall}


def score(
    predicted: Iterable[Links], sure: Iterable[Links], possible: Iterable[Links] | None = None
) -> Scores:
    """Counts of predicted links against sure and possible ones (P = possible ∪ sure; default
    P = S), summed over the zipped pairs.

    Raises:
      ValueError: if the lists differ in length, or there are neither predicted nor sure links.
    """
    predicted, sure = list(predicted), list(sure)
    possible = sure if possible is None else list(possible)
    if not len(predicted) == len(sure) == len(possible):
        raise ValueError(
            f"{len(predicted)} predicted alignments against {len(sure)} gold ones "
            f"({len(possible)} possible)"
        )
    scores = Scores(
        sum(len(a) for a in predicted),
        sum(len(s) for s in sure),
        sum(len(a & s) for a, s in zip(predicted, sure)),
        sum(len(a & (p | s)) for a, s, p in zip(predicted, sure, possible)),
    )
    if scores.predicted + scores.sure == 0:
        raise ValueError("AER of empty alignments")
    return scores


def aer(
    predicted: Iterable[Links], sure: Iterable[Links], possible: Iterable[Links] | None = None
) -> float:
    """Corpus AER of predicted links against sure (and possible, default = sure) links."""
    return score(predicted, sure, possible).aer


def length_buckets(edges: Sequence[int]) -> list[tuple[int, int | None]]:
    """``[(low, high)]`` of word-count edges, the last open (None); ValueError unless they
    increase from 0 or more."""
    if not edges or edges[0] < 0 or any(a >= b for a, b in zip(edges, edges[1:])):
        raise ValueError(f"length buckets {list(edges)}: want increasing word counts from 0 up")
    return list(zip(edges, [*edges[1:], None]))


def score_by_length(
    predicted: Sequence[Links],
    sure: Sequence[Links],
    possible: Sequence[Links],
    source_words: Sequence[int],
    edges: Sequence[int],
) -> list[dict]:
    """``[{"words": "4-7" | "12+", "pairs", "aer", "precision", "recall"}]``: `score` of the
    pairs with ``edges[k] <= words < edges[k + 1]`` source words (the last bucket open), as BLEU
    by source length. Empty buckets are left out; one without any link has rates None.

    Raises:
      ValueError: if the edges are not increasing from 0 or more, or the lists differ in length.
    """
    buckets = length_buckets(edges)
    if not len(predicted) == len(sure) == len(possible) == len(source_words):
        raise ValueError(
            f"{len(predicted)} predicted alignments, {len(sure)} gold ones and "
            f"{len(source_words)} source lengths"
        )
    rows = []
    for low, high in buckets:
        chosen = [i for i, n in enumerate(source_words) if low <= n and (high is None or n < high)]
        if not chosen:
            continue
        row = {"words": f"{low}+" if high is None else f"{low}-{high - 1}", "pairs": len(chosen)}
        try:
            pick = [[links[i] for i in chosen] for links in (predicted, sure, possible)]
            row.update(score(*pick).as_dict())
        except ValueError:  # neither predicted nor gold links in the bucket
            row.update(aer=None, precision=None, recall=None)
        rows.append(row)
    return rows
