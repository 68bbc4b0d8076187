"""A translator's beam (or greedy) search over many sources, shared by evaluator and predictor:
sources sorted by length, cut into ``decode.batch_size`` rows padded to multiples of `BUCKET`
pieces (the last batch to a power of two rows), one compiled decoder per (width, beam, alpha).
Outputs are at most ``max_len_ratio * source_pieces + max_len_offset`` tokens."""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from attn_research.data import tokenizer as tokenizer_lib
from attn_research.models import decoding

BUCKET = 16  # sources are padded to a multiple of this many pieces
Decoder = Callable[[Any, jax.Array], jax.Array]  # (params, source [B, S]) -> tokens [B, T]


def bucket_width(pieces: int, longest: int) -> int:
    """The padded width of a batch whose longest source has `pieces` pieces (EOS included)."""
    return min(int(-(-pieces // BUCKET) * BUCKET), longest)


def make_decoder(
    model: nn.Module,
    family: Any,
    decode: ml_collections.ConfigDict,
    source_len: int,
    beam_size: int,
    alpha: float,
) -> Decoder:
    """The jitted ``(params, source [B, source_len]) -> tokens [B, max_len]`` of one bucket
    (ids after BOS, EOS included, 0-padded; beam_size 1 is greedy)."""
    max_len = int(decode.max_len_ratio * source_len + decode.max_len_offset)
    # A saved config without `min_len` decodes without it.
    min_len = int(decode.get("min_len", 0))

    def translate(params, source_BS):
        lengths_B = (source_BS != 0).sum(-1)
        limit_B = jnp.minimum(
            (decode.max_len_ratio * lengths_B).astype(jnp.int32) + decode.max_len_offset,
            max_len,
        )
        state = family.start_decoding(model, params, source_BS, max_len)
        step = lambda s, tokens: family.decode_step(model, params, s, tokens)
        ends = (tokenizer_lib.BOS_ID, tokenizer_lib.EOS_ID)
        batch = source_BS.shape[0]
        if beam_size == 1:
            return decoding.greedy_search(step, state, batch, max_len, limit_B, *ends, min_len)
        return decoding.beam_search(
            step, state, batch, max_len, limit_B, *ends, beam_size, alpha, min_len
        )[0]

    return jax.jit(translate)


class Decoders:
    """Decodes sources ``[N, S]`` in length-sorted batches, compiling one decoder per bucket."""

    def __init__(self, family: Any, decode: ml_collections.ConfigDict):
        self._family, self._decode = family, decode
        self._compiled: dict[tuple, Decoder] = {}

    def _decoder(self, model: nn.Module, width: int, beam_size: int, alpha: float) -> Decoder:
        key = (id(model), width, beam_size, alpha)
        if key not in self._compiled:
            self._compiled[key] = make_decoder(
                model, self._family, self._decode, width, beam_size, alpha
            )
        return self._compiled[key]

    def __call__(
        self,
        model: nn.Module,
        params: Any,
        ids_NS: np.ndarray,
        *,
        beam_size: int | None = None,
        alpha: float | None = None,
        batch_size: int | None = None,
    ) -> list[np.ndarray]:
        """One int32 array ``[max_len of its bucket]`` per row of `ids_NS` (int32, EOS-ended,
        0-padded), in input order; beam_size, alpha, batch_size default ``config.decode``'s."""
        decode = self._decode
        beam_size = decode.beam_size if beam_size is None else beam_size
        alpha = decode.alpha if alpha is None else alpha
        batch = batch_size or decode.batch_size
        lengths = (ids_NS != 0).sum(-1)
        order = np.argsort(lengths, kind="stable")
        out: list[np.ndarray] = [np.zeros(0, np.int32)] * len(ids_NS)
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            width = bucket_width(int(lengths[chosen].max()), ids_NS.shape[1])
            rows = np.zeros((min(batch, 1 << (len(chosen) - 1).bit_length()), width), np.int32)
            rows[: len(chosen)] = ids_NS[chosen, :width]
            decoder = self._decoder(model, width, beam_size, alpha)
            tokens = np.asarray(decoder(params, rows))
            for i, row in zip(chosen, tokens):
                out[i] = row
        return out
