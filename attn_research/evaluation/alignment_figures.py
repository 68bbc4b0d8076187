"""Figures: word-level attention heatmaps (source words x target words, labelled) and BLEU
by source length, written as PNG with matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position


def attention_heatmap(
    weights: np.ndarray,
    source_words: Sequence[str],
    target_words: Sequence[str],
    title: str,
    path: str,
) -> None:
    """Saves ``weights [target words, source words]`` as a labelled heatmap at `path`."""
    n_t, n_s = len(target_words), len(source_words)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * n_s + 1.5), max(3.0, 0.32 * n_t + 1.5)))
    ax.imshow(
        weights[:n_t, :n_s],
        cmap="gray_r",
        vmin=0.0,
        vmax=max(float(weights.max()), 1e-6),
        aspect="auto",
    )
    ax.set_xticks(range(n_s), source_words, rotation=90, fontsize=7)
    ax.set_yticks(range(n_t), target_words, fontsize=7)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bleu_by_length_plot(buckets: dict[str, tuple[float, int]], title: str, path: str) -> None:
    """Saves BLEU per source-length bucket (Bahdanau et al. 2014, Fig. 2) at `path`."""
    names = list(buckets)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(len(names)), [buckets[n][0] for n in names], marker="o")
    ax.set_xticks(range(len(names)), [f"{n}\n({buckets[n][1]})" for n in names], fontsize=7)
    ax.set_xlabel("source length in words (sentences)")
    ax.set_ylabel("BLEU")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
