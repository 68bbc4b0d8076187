"""Figures of predictions (PNG, one per input, numbered in input order), drawn by the training
figure functions."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from attn_research.evaluation import alignment_figures, image_figures
from attn_research.predict.classifier import Classification
from attn_research.predict.translator import Translation


def translation_heatmaps(
    translations: Sequence[Translation], directory: str, title: str
) -> list[str]:
    """Writes ``<directory>/attention_<i>.png`` for each translation with attention; returns
    the paths."""
    paths = []
    for i, t in enumerate(translations):
        if t.attention is None or not t.target_words:
            continue
        path = os.path.join(directory, f"attention_{i}.png")
        alignment_figures.attention_heatmap(
            t.attention, t.source_words, t.target_words, title, path
        )
        paths.append(path)
    return paths


def image_overlays(results: Sequence[Classification], directory: str, title: str) -> list[str]:
    """Writes ``<directory>/attention_<i>.png``, the image and each attention map over it, for
    each result; returns the paths."""
    paths = []
    for i, r in enumerate(results):
        path = os.path.join(directory, f"attention_{i}.png")
        name, probability = r.top[0]
        image_figures.save_attention_figure(
            path,
            r.image[None],
            r.maps[None],
            r.map_names,
            labels=np.asarray([os.path.basename(r.name)]),
            predictions=np.asarray([f"{name} ({probability:.2f})"]),
            title=title,
        )
        paths.append(path)
    return paths
