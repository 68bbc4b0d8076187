"""Figures of attention maps overlaid on the input images, saved as PNG (matplotlib, Agg)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np


def save_attention_figure(
    path: str,
    images_BHWC: np.ndarray,
    maps_BMhw: np.ndarray,
    names: Sequence[str],
    *,
    labels: np.ndarray,
    predictions: np.ndarray,
    boxes_B4: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Writes to ``path`` (PNG) a grid, one row per example: the input (rescaled to [0, 1]), then
    its ``M`` maps ``maps_BMhw`` over it, titled by `names`; `labels` and `predictions` (int
    ``[B]``) shown on the input, ``boxes_B4`` (pixels) drawn if given.
    """
    batch, num_maps = maps_BMhw.shape[:2]
    height, width = images_BHWC.shape[1:3]
    fig, axes = plt.subplots(
        batch, num_maps + 1, figsize=(1.6 * (num_maps + 1), 1.6 * batch), squeeze=False
    )
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    for b in range(batch):
        image = images_BHWC[b].astype(np.float32)
        image = (image - image.min()) / max(float(np.ptp(image)), 1e-6)
        shown = image[..., 0] if image.shape[-1] == 1 else image
        for m in range(num_maps + 1):
            ax = axes[b, m]
            ax.imshow(shown, cmap="gray", extent=extent)
            if m:
                ax.imshow(
                    maps_BMhw[b, m - 1],
                    cmap="inferno",
                    alpha=0.6,
                    extent=extent,
                    interpolation="nearest",
                )
            if boxes_B4 is not None:
                top, left, bottom, right = boxes_B4[b]
                ax.add_patch(
                    plt.Rectangle(
                        (left - 0.5, top - 0.5),
                        right - left,
                        bottom - top,
                        fill=False,
                        edgecolor="cyan",
                        linewidth=1,
                    )
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if b == 0:
                ax.set_title("input" if m == 0 else names[m - 1], fontsize=8)
        axes[b, 0].set_ylabel(f"y={labels[b]} pred={predictions[b]}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
