"""Predictions as an attention explorer page (``evaluation.explorer``): `--html FILE`."""

from __future__ import annotations

from collections.abc import Sequence

from attn_research.evaluation import explorer
from attn_research.predict.classifier import Classification
from attn_research.predict.translator import Translation


def translation_page(translations: Sequence[Translation], title: str) -> str:
    """The explorer of the translations with attention, every layer selectable."""
    pairs = [
        (t.source_words, t.target_words, {f"layer {i + 1}": w for i, w in enumerate(t.layers)})
        for t in translations
        if t.layers is not None and t.target_words
    ]
    return explorer.translation_page(pairs, title)


def image_page(results: Sequence[Classification], title: str) -> str:
    """The explorer of the classified images, each map (layer, rollout) selectable."""
    items = [
        (
            f"{r.name}: " + ", ".join(f"{name} {p:.2f}" for name, p in r.top[:3]),
            r.image,
            dict(zip(r.map_names, r.maps)),
        )
        for r in results
    ]
    return explorer.image_page(items, title)
