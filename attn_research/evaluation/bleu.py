"""Corpus BLEU (Papineni et al. 2002) and chrF (Popović 2015) with sacrebleu, on detokenized
text, overall and bucketed by source length in words (the figure of Bahdanau et al. 2014).
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu

# Lower edges of the source-length buckets in words: [0, 10), [10, 20), ..., [50, inf).
EDGES = (0, 10, 20, 30, 40, 50)


# The metrics as computed here: sacrebleu's defaults (BLEU: 13a tokenization, exp smoothing).
_METRICS = {"bleu": sacrebleu.BLEU, "chrf": sacrebleu.CHRF}


def _score(name: str, hypotheses: Sequence[str], references: Sequence[str]) -> float:
    return _METRICS[name]().corpus_score(list(hypotheses), [list(references)]).score


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (13a tokenization) in [0, 100]."""
    return _score("bleu", hypotheses, references)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus chrF in [0, 100]."""
    return _score("chrf", hypotheses, references)


def signature(name: str = "bleu") -> str:
    """sacrebleu's signature of `bleu` or `chrf` as computed here, with one reference per
    sentence: ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:...`` for BLEU, the line
    that makes a BLEU comparable across papers (Post 2018)."""
    metric = _METRICS[name]()
    metric.corpus_score([""], [[""]])  # sacrebleu tells the reference count after a score.
    return str(metric.get_signature())


def check_edges(edges: Sequence[int]) -> None:
    """Raises ValueError unless ``edges`` start at 0 and strictly increase."""
    if not edges or edges[0] != 0 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(
            f"BLEU length buckets: edges must start at 0 and strictly increase, got {tuple(edges)}"
        )


def buckets_by_length(sources: Sequence[str], edges: Sequence[int] = EDGES) -> dict[str, list[int]]:
    """{bucket name: indices of its sources} for the non-empty source-length buckets.

    Bucket ``i`` holds the sources of ``edges[i] <= words < edges[i + 1]`` words, named
    ``"low-high"`` (inclusive), the last ``"low+"``.
    """
    check_edges(edges)
    words = [len(s.split()) for s in sources]
    out = {}
    for low, high in zip(edges, (*edges[1:], None)):
        chosen = [i for i, n in enumerate(words) if low <= n and (high is None or n < high)]
        if chosen:
            out[f"{low}+" if high is None else f"{low}-{high - 1}"] = chosen
    return out


def bleu_by_length(
    sources: Sequence[str],
    hypotheses: Sequence[str],
    references: Sequence[str],
    edges: Sequence[int] = EDGES,
) -> dict[str, tuple[float, int]]:
    """{bucket name: (BLEU, sentence count)} for the buckets of `buckets_by_length`."""
    return {
        name: (bleu([hypotheses[i] for i in chosen], [references[i] for i in chosen]), len(chosen))
        for name, chosen in buckets_by_length(sources, edges).items()
    }


def length_ratio_by_length(
    sources: Sequence[str],
    hypotheses: Sequence[str],
    references: Sequence[str],
    edges: Sequence[int] = EDGES,
) -> dict[str, float]:
    """{bucket name: output length / reference length} in sacrebleu's 13a tokens, per bucket.

    The ratio c / r behind BLEU's brevity penalty, BP = min(1, exp(1 - r / c)): under 1 the
    outputs are short (a search that stops early), over 1 they ramble.
    """
    out = {}
    for name, chosen in buckets_by_length(sources, edges).items():
        score = sacrebleu.corpus_bleu(
            [hypotheses[i] for i in chosen], [[references[i] for i in chosen]]
        )
        out[name] = score.sys_len / score.ref_len
    return out
