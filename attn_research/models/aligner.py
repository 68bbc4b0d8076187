"""An alignment head beside a translator: one additive attention over the source that only
guided alignment trains, so that the translation is untouched (Shift-AET's separate alignment
module, Chen et al. 2020, trained on a statistical aligner's links as in Garg et al. 2019).

Row t aligns the target token y_t that row t predicts. Its query reads the decoder's features
at row t (which wrote y_t) and at row t + 1 (which read y_t, the row of Shift-Att; zeros for
the last valid row), through ``stop_gradient``, as are the encoder's features:

    q_t = W_q [d_t; d_{t+1}] + b,  k_s = W_k h_s,  e_ts = w^T tanh(q_t + k_s),
    a_t = softmax_s(e_ts) over the valid source positions.

With ``full_context`` the query also reads the rows after t, the whole target as in Garg et
al. 2019's alignment layer: a GRU runs backward over the valid rows' ``[d_t; d_{t+1}]`` and
``W_q`` reads ``[d_t; d_{t+1}; g_t]``, g_t its state at row t.

With ``trains_encoder`` the encoder's features are read without ``stop_gradient``: the
alignment loss then also shapes the encoder (a multi-task encoder), and the translation changes.
With ``config.loss.alignment_weight`` 0 nothing trains the head and its weights stay at their
initial values.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_research.attention import key_padding_mask, resolve
from attn_research.models import maps

Array = jnp.ndarray
NAME = "aligner"  # the map's name
SOWN = "aligner_weights"  # where a translator sows its weights


class Aligner(nn.Module):
    """``decoder [B, T, D]``, ``encoder [B, S, F]``, ``valid [B, S]``, ``rows [B]`` (the
    valid rows, a prefix) -> float32 weights ``[B, 1, T, S]``."""

    units: int
    trains_encoder: bool = False
    full_context: bool = False

    @nn.compact
    def __call__(
        self, decoder_BTD: Array, encoder_BSF: Array, valid_BS: Array, rows_B: Array
    ) -> Array:
        d_BTD = jax.lax.stop_gradient(decoder_BTD)
        read_BTD = jnp.pad(d_BTD[:, 1:], ((0, 0), (0, 1), (0, 0)))
        after_T = jnp.arange(d_BTD.shape[1]) + 1
        read_BTD = jnp.where((after_T < rows_B[:, None])[..., None], read_BTD, 0)
        features_BTF = jnp.concatenate([d_BTD, read_BTD], -1)
        if self.full_context:
            backward = nn.RNN(nn.GRUCell(self.units), reverse=True, keep_order=True, name="context")
            features_BTF = jnp.concatenate(
                [features_BTF, backward(features_BTF, seq_lengths=rows_B)], -1
            )
        q_BT1U = nn.Dense(self.units, name="query")(features_BTF)
        if not self.trains_encoder:
            encoder_BSF = jax.lax.stop_gradient(encoder_BSF)
        k_BS1U = nn.Dense(self.units, use_bias=False, name="key")(encoder_BSF)
        _, weights_B1TS = resolve("additive").module(name="attention")(
            q_BT1U[:, :, None, :],
            k_BS1U[:, :, None, :],
            k_BS1U[:, :, None, :],
            mask=key_padding_mask(valid_BS),
            return_weights=True,
        )
        return weights_B1TS


def sown_map(intermediates: dict, target_len: int, source_len: int) -> list[maps.AttentionMap]:
    """The aligner's map (``models.maps``) from a pass's ``intermediates``, or none."""
    if SOWN not in intermediates:
        return []
    (weights_B1TS,) = intermediates[SOWN]
    return [
        maps.AttentionMap(
            NAME,
            weights_B1TS,
            maps.Tokens.text("target", target_len),
            maps.Tokens.text("source", source_len),
        )
    ]
