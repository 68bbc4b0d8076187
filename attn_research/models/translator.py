"""The protocol every translator family follows (``rnn_translator``, ``transformer_translator``).

A family is a module with a Flax model class, whose instances map ``source [B, S]`` and
``target_in [B, T]`` to logits ``[B, T, vocab]`` and show their attention through
``attention_maps(params, source, target_in)`` (``models.maps``), say the longest sequence they
read as ``length_limit`` (pieces, EOS included; None for any length), and these functions, which
``models.decoding`` and the translation task call:
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
    ) -> tuple[jax.Array, jax.Array]:
        """Teacher-forced logits ``[B, T, V]`` and the attention over the source of the same
        pass, ``[layers, B, heads, T, S]``, row t the attention with which target token t was
        written: the form a loss on the attention reads (guided alignment)."""

    def alignment(
        self, model: nn.Module, params: Any, source_BS: jax.Array, target_in_BT: jax.Array
    ) -> jax.Array:
        """Teacher-forced attention over the source, heads averaged: ``[B, T, S]`` or
        ``[layers, B, T, S]``."""
