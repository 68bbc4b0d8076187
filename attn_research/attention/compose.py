"""One attention = which positions attend x how a pair is scored x how it is computed.

    e_ij = score(q_i, k_j)                               (scores.py)
    a_ij = softmax_j(e_ij + bias_ij, where=allowed_ij) * weight_ij
    out_i = sum_j a_ij v_j                               (a kernel: kernels/)

with ``allowed_ij`` = the positions rule (positions.py) AND the caller's mask. A combination
that the kernel cannot compute raises a ValueError that says why.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import FrozenDict

from attn_research.attention import checks, kernels, positions, scores

Array = jnp.ndarray


class Attention(nn.Module):
    """positions x score x kernel, on projected q, k, v (fields: the rule, the score and the
    kernel with their options, the einsums' precision)."""

    positions: positions.Rule = positions.Global()
    score: str = "dot"
    score_options: Mapping[str, Any] = FrozenDict()
    kernel: str = "auto"
    kernel_options: Mapping[str, Any] = FrozenDict()
    precision: jax.lax.PrecisionLike = None

    @nn.compact
    def __call__(
        self,
        q: Array,
        k: Array,
        v: Array,
        *,
        mask: Array | None = None,
        bias: Array | None = None,
        causal: bool = False,
        query_positions: Array | None = None,
        grid: tuple[int, int] | None = None,
        dropout_rate: float = 0.0,
        rng: Array | None = None,
        return_weights: bool = False,
    ) -> Array | tuple[Array, Array]:
        """Attention of ``q [batch..., Tq, H, D]`` over ``k``, ``v``.

        Args:
          mask, bias: bool (True = may attend) / float logits, of rank ``len(batch) + 3``
            broadcastable to ``[batch..., H, Tq, Tk]``, or ``[Tq, Tk]``.
          causal: intersect the rule with ``j <= i``.
          query_positions: int ``[batch..., Tq]``; default ``0 .. Tq - 1``.
          grid: ``(rows, cols)`` of the tokens, for rules on a grid.
          return_weights: also return float32 weights ``[batch..., H, Tq, Tk]`` (before
            dropout), from one more dense pass.

        Returns ``[batch..., Tq, H, Dv]`` in ``v.dtype``; rows with no allowed key are zero.
        """
        mask, bias, _ = checks.check_attention_args(q, k, v, mask, bias, dropout_rate, rng, 1.0)
        tq, tk = q.shape[-3], k.shape[-3]
        rule = self.positions.causal() if causal else self.positions
        rule.check(tq, tk, grid)
        centre = None
        if rule.predicts_centre:
            network = scores.Centre(rule.units, rule.divide_position_by_sqrt_units, name="centre")
            centre = network(q, rule.centre_mask(mask, tq, tk), tk)
        q, k, pair = scores.get(self.score)(**self.score_options, name=self.score).prepare(q, k)
        problem = kernels.Problem(
            pair, rule, mask, bias, query_positions, grid, centre, dropout_rate, rng, self.precision
        )
        out = kernels.get(self.kernel)(q, k, v, problem, **self.kernel_options)
        if not return_weights:
            return out
        # Behind an optimization barrier, so that XLA can neither merge the weights' pass with
        # the kernel's nor fuse the output differently because the weights are also wanted.
        q, k = jax.lax.optimization_barrier((q, k))
        return out, kernels.dense_weights(q, k, problem)


# The keyword arguments of a call, apart from a kind's options (``attend`` splits them).
CALL_ARGS = (
    "mask",
    "bias",
    "causal",
    "query_positions",
    "grid",
    "dropout_rate",
    "rng",
    "return_weights",
)
