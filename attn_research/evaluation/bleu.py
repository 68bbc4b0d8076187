"""Corpus BLEU (Papineni et al. 2002) and chrF (Popović 2015) with sacrebleu, on detokenized
text, overall and bucketed by source length in words (the figure of Bahdanau et al. 2014).
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu

# Source-length buckets in words: [low, high).
BUCKETS = ((0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 10_000))


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (13a tokenization) in [0, 100]."""
    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus chrF in [0, 100]."""
    return sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score


def bucket_name(low: int, high: int) -> str:
    return f"{low}+" if high >= 10_000 else f"{low}-{high - 1}"


def bleu_by_length(sources: Sequence[str], hypotheses: Sequence[str],
                   references: Sequence[str]) -> dict[str, tuple[float, int]]:
    """{bucket name: (BLEU, sentence count)} for the non-empty source-length buckets."""
    out = {}
    for low, high in BUCKETS:
        chosen = [i for i, s in enumerate(sources) if low <= len(s.split()) < high]
        if chosen:
            out[bucket_name(low, high)] = (bleu([hypotheses[i] for i in chosen],
                                                [references[i] for i in chosen]), len(chosen))
    return out
