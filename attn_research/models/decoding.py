"""Greedy and beam search over any decoder given as a step function (jit-compatible).

A decoder is ``step(state, tokens_N) -> (logits_NV, state)`` over N hypotheses, each leaf of
``state`` with the hypotheses on its leading axis; what they share (the encoder's memory) is
wrapped in `Shared` and never reordered. Decoding starts from BOS; a hypothesis ends at EOS or
at ``max_len_B`` (at most `max_len`). EOS is barred for the first `min_len` steps (fairseq's
``--min-len``). Outputs are ``[B, max_len]`` int32 ids after BOS, EOS included, padded with 0.

Beam search keeps the `beam_size` best unfinished hypotheses by log-probability and the best
finished ones by Wu et al. 2016's length-normalized score (as the flax WMT example),

    score(y) = log p(y | x) / lp(|y|),   lp(n) = ((5 + n) / 6)^alpha   (|y| counts EOS),

and stops when no unfinished hypothesis can beat the worst finished one.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jnp.ndarray
Step = Callable[[Any, Array], tuple[Array, Any]]
_NEG = -1.0e9


@functools.partial(jax.tree_util.register_dataclass, data_fields=["value"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Shared:
    """Part of a decoding state that every hypothesis of a sentence has alike (a pytree with
    the hypotheses on its leading axes, as the rest): the step reads ``.value``."""

    value: Any


def length_penalty(length: Array, alpha: float) -> Array:
    """``((5 + length) / 6) ** alpha``."""
    return ((5.0 + length.astype(jnp.float32)) / 6.0) ** alpha


def _bar_eos(logits: Array, i: Array, eos: int, min_len: int) -> Array:
    """``logits [..., V]`` with EOS's set to `_NEG` at steps ``i < min_len``."""
    barred = (jnp.arange(logits.shape[-1]) == eos) & (i < min_len)
    return jnp.where(barred, _NEG, logits)


def greedy_search(
    step: Step,
    state: Any,
    batch: int,
    max_len: int,
    max_len_B: Array,
    bos: int,
    eos: int,
    min_len: int = 0,
) -> Array:
    """Argmax decoding: ``[batch, max_len]`` tokens."""

    def body(carry):
        i, tokens, state, done = carry
        previous = jnp.where(i == 0, bos, tokens[:, jnp.maximum(i - 1, 0)])
        logits, state = step(state, previous)
        token = jnp.argmax(_bar_eos(logits, i, eos, min_len), -1).astype(jnp.int32)
        token = jnp.where(done, 0, token)
        tokens = tokens.at[:, i].set(token)
        done = done | (token == eos) | (i + 1 >= max_len_B)
        return i + 1, tokens, state, done

    init = (jnp.int32(0), jnp.zeros((batch, max_len), jnp.int32), state, jnp.zeros((batch,), bool))
    _, tokens, _, _ = jax.lax.while_loop(lambda c: (c[0] < max_len) & ~jnp.all(c[3]), body, init)
    return tokens


def _tile(x: Array, beam: int) -> Array:
    """``[B, ...] -> [B * beam, ...]``, each row repeated `beam` times."""
    return jnp.repeat(x, beam, axis=0)


def _gather(x_BK: Array, index_BK: Array) -> Array:
    """``x [B, K, ...]`` reordered along the beams: ``out[b, j] = x[b, index[b, j]]``."""
    index = index_BK.reshape(*index_BK.shape, *(1,) * (x_BK.ndim - 2))
    return jnp.take_along_axis(x_BK, index, axis=1)


def _gather_flat(x: Array, index_BK: Array) -> Array:
    """The same for a state leaf ``[B * K, ...]`` (scalars are shared and kept)."""
    if x.ndim == 0:
        return x
    batch, beam = index_BK.shape
    return _gather(x.reshape(batch, beam, *x.shape[1:]), index_BK).reshape(x.shape)


def beam_search(
    step: Step,
    state: Any,
    batch: int,
    max_len: int,
    max_len_B: Array,
    bos: int,
    eos: int,
    beam_size: int,
    alpha: float,
    min_len: int = 0,
) -> tuple[Array, Array]:
    """Best hypotheses ``[batch, max_len]`` and their scores ``[batch]``; ``step`` sees
    ``batch * beam_size`` hypotheses, ``state`` is tiled to the beams here."""
    k = beam_size
    state = jax.tree.map(lambda x: _tile(x, k) if x.ndim else x, state)
    limit_BK = jnp.repeat(max_len_B[:, None], k, 1)
    alive_logp = jnp.tile(jnp.asarray([0.0] + [_NEG] * (k - 1)), (batch, 1))
    alive = jnp.zeros((batch, k, max_len), jnp.int32)
    finished = jnp.zeros((batch, k, max_len), jnp.int32)
    finished_score = jnp.full((batch, k), _NEG)

    def body(carry):
        i, alive, alive_logp, finished, finished_score, state = carry
        previous = jnp.where(i == 0, bos, alive[:, :, jnp.maximum(i - 1, 0)]).reshape(-1)
        logits, state = step(state, previous)
        vocab = logits.shape[-1]
        logp_NV = _bar_eos(jax.nn.log_softmax(logits), i, eos, min_len)
        logp_BKV = alive_logp[..., None] + logp_NV.reshape(batch, k, vocab)
        ends_BKV = (jnp.arange(vocab) == eos) | (i + 1 >= limit_BK)[..., None]
        flat = lambda x: x.reshape(batch, k * vocab)
        # Hypotheses that end now join the finished pool, scored with the length penalty.
        end_score = jnp.where(ends_BKV, logp_BKV / length_penalty(i + 1, alpha), _NEG)
        end_score = jnp.where(alive_logp[..., None] <= _NEG / 2, _NEG, end_score)
        top_end, top_end_index = jax.lax.top_k(flat(end_score), k)
        ended = _gather(alive, top_end_index // vocab).at[:, :, i].set(top_end_index % vocab)
        pool_seq = jnp.concatenate([finished, ended], 1)
        finished_score, pool_index = jax.lax.top_k(jnp.concatenate([finished_score, top_end], 1), k)
        finished = jnp.take_along_axis(pool_seq, pool_index[..., None], 1)
        # The rest continue.
        go_logp, go_index = jax.lax.top_k(flat(jnp.where(ends_BKV, _NEG, logp_BKV)), k)
        beam = go_index // vocab
        alive = _gather(alive, beam).at[:, :, i].set(go_index % vocab)
        state = jax.tree.map(
            lambda x: x if isinstance(x, Shared) else _gather_flat(x, beam),
            state,
            is_leaf=lambda x: isinstance(x, Shared),
        )
        return i + 1, alive, go_logp, finished, finished_score, state

    def running(carry):
        i, _, alive_logp, _, finished_score, _ = carry
        best_alive = jnp.max(alive_logp, -1) / length_penalty(jnp.asarray(max_len), alpha)
        hopeful = (best_alive > jnp.min(finished_score, -1)) & (jnp.max(alive_logp, -1) > _NEG / 2)
        return (i < max_len) & jnp.any(hopeful)

    init = (jnp.int32(0), alive, alive_logp, finished, finished_score, state)
    _, _, _, finished, finished_score, _ = jax.lax.while_loop(running, body, init)
    return finished[:, 0], finished_score[:, 0]
