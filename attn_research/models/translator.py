"""The protocol of a translator family (``rnn_translator``, ``transformer_translator``): a Flax
model ``source [B, S]``, ``target_in [B, T]`` -> logits ``[B, T, vocab]`` with
``attention_maps`` and ``length_limit`` (None: any length), and these functions:
"""

from __future__ import annotations

from typing import Any, Protocol

import flax.linen as nn
import jax


class TranslatorFamily(Protocol):
    """Decoding and attention of one family (satisfied by its module)."""

    def start_decoding(
        self, model: nn.Module, params: Any, source_BS: jax.Array, max_len: int
    ) -> Any:
        """The decoding state (a pytree, batch-major) for up to ``max_len`` target steps."""

    def decode_step(
        self, model: nn.Module, params: Any, state: Any, token_B: jax.Array
    ) -> tuple[jax.Array, Any]:
        """``(logits [B, V], next state)`` after feeding ``token_B``."""

    def logits_and_attention(
        self,
        model: nn.Module,
        params: Any,
        source_BS: jax.Array,
        target_in_BT: jax.Array,
        train: bool,
        rngs: dict[str, Any],
    ) -> tuple[jax.Array, list[jax.Array]]:
        """Teacher-forced logits ``[B, T, V]`` and the weights of the same pass, one
        ``[B, heads, T, S]`` per map of ``attention_maps`` (row t wrote token t), for guided
        alignment."""

    def alignment(
        self, model: nn.Module, params: Any, source_BS: jax.Array, target_in_BT: jax.Array
    ) -> jax.Array:
        """Teacher-forced attention over the source, heads averaged: ``[B, T, S]`` or
        ``[layers, B, T, S]``."""
