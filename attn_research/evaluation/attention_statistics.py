"""Statistics of an attention's rows that show a collapse (a softmax locked onto one key, a
local-p centre ``p_t`` onto one end). Over the valid rows ``a_i`` of every head (a local-p row
includes its Gaussian factor):

    entropy         = mean_i  -sum_j a_ij log a_ij     (nats)
    peaked_share    = mean_i  [max_j a_ij > PEAKED]
    centre_fraction = p_t / S, its mean and QUANTILES (attention with a position model)

Quantiles are taken over all rows at the end.
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
        """Adds the rows of ``weights [B, H, Tq, Tk]`` whose query is valid (``valid [B, Tq]``), and
        their ``centre_fraction [B, H, Tq]`` (None: no position model); rows with no weight are left
        out.
        """
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
