"""Predictions as an attention explorer page (``evaluation.explorer``): `--html FILE`."""

from __future__ import annotations

from collections.abc import Sequence

from attn_research.evaluation import attention_maps, explorer, gold_alignments
from attn_research.predict.classifier import Classification
from attn_research.predict.translator import ForcedAlignment, Translation


def translation_page(translations: Sequence[Translation], title: str) -> str:
    """The explorer of the translations with attention, every layer and head selectable."""
    pairs = [
        (t.source_words, t.target_words, t.views)
        for t in translations
        if t.views is not None and t.target_words
    ]
    return explorer.translation_page(pairs, title)


def alignment_page(
    alignments: Sequence[ForcedAlignment], title: str, gold: gold_alignments.Gold | None = None
) -> str:
    """The explorer of the aligned pairs (those with words on both sides), every layer and
    head selectable, with each pair's `gold` Sure and Possible links marked."""
    shown = [i for i, a in enumerate(alignments) if a.attention is not None]
    pairs = [
        (alignments[i].source_words, alignments[i].target_words, alignments[i].attention.views)
        for i in shown
    ]
    marks = None if gold is None else [(gold.sure[i], gold.possible[i]) for i in shown]
    return explorer.translation_page(pairs, title, marks)


def image_page(results: Sequence[Classification], title: str) -> str:
    """The explorer of the classified images, each map (layer, rollout) and head selectable."""
    items = [
        (
            f"{r.name}: " + ", ".join(f"{name} {p:.2f}" for name, p in r.top[:3]),
            r.image,
            attention_maps.views(r.map_names, r.maps, r.head_maps),
        )
        for r in results
    ]
    return explorer.image_page(items, title)
