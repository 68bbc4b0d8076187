"""Statistics of an attention's rows that show a collapse coming: entropy, peaked rows, centres.

A Luong attention can saturate early in training (its softmax locks onto one key, local-p's
predicted centre ``p_t`` onto one end of the sentence) and then learns little. Over the rows
``a_i`` of an attention map (``models.maps.AttentionMap``), each normalized to sum to 1 (a
local-p row sums to less, its Gaussian factor included):

    entropy         = mean_i  -sum_j a_ij log a_ij     (nats; log of the keys for a uniform row)
    peaked_share    = mean_i  [max_j a_ij > PEAKED]
    centre_fraction = p_t / S, its mean and QUANTILES (attention with a position model)

Rows are those of the valid queries (not padding), over every head. Batches are added as they
come; quantiles are taken over all rows at the end.
"""

from __future__ import annotations

import numpy as np

# A row whose top weight is above this counts as peaked.
PEAKED = 0.9
QUANTILES = (0.1, 0.5, 0.9)


class AttentionStatistics:
    """Accumulates the statistics of one attention over batches."""

    def __init__(self) -> None:
        self._rows = 0
        self._entropy = 0.0
        self._peaked = 0
        self._fractions: list[np.ndarray] = []

    def add(
        self,
        weights_BHQK: np.ndarray,
        valid_BQ: np.ndarray,
        centre_fraction_BHQ: np.ndarray | None = None,
    ) -> None:
        """Adds the rows of ``weights [B, H, Tq, Tk]`` whose query is valid (``valid [B, Tq]``
        bool), and their ``centre_fraction [B, H, Tq]`` (None: no position model). Rows with no
        weight (no allowed key) are left out."""
        weights = np.asarray(weights_BHQK, np.float64)
        total = weights.sum(-1, keepdims=True)
        rows = np.broadcast_to(np.asarray(valid_BQ, bool)[:, None], weights.shape[:-1])
        rows = rows & (total[..., 0] > 0)
        a = weights[rows] / total[rows]  # [rows, Tk]
        logs = np.log(np.where(a > 0, a, 1.0))
        self._rows += len(a)
        self._entropy += float(-(a * logs).sum())
        self._peaked += int((a.max(-1) > PEAKED).sum())
        if centre_fraction_BHQ is not None:
            self._fractions.append(np.asarray(centre_fraction_BHQ, np.float64)[rows])

    def result(self) -> dict[str, float]:
        """``attention_entropy``, ``attention_peaked_share`` and, with a position model,
        ``centre_fraction_mean`` and ``centre_fraction_q<percent>``; {} without rows."""
        if not self._rows:
            return {}
        metrics = {
            "attention_entropy": self._entropy / self._rows,
            "attention_peaked_share": self._peaked / self._rows,
        }
        if self._fractions:
            fractions = np.concatenate(self._fractions)
            metrics["centre_fraction_mean"] = float(fractions.mean())
            for q in QUANTILES:
                metrics[f"centre_fraction_q{round(q * 100)}"] = float(np.quantile(fractions, q))
        return metrics
