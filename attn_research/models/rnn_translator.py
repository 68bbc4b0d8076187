"""RNN encoder-decoder translators, with and without attention.

Encoder: a bidirectional GRU or LSTM, ``h_j = [h->_j; h<-_j]`` ``[B, S, 2H]``. The decoder is
one cell, scanned when teacher-forced and stepped when decoding, from
``s_0 = tanh(W_s [h->_S; h<-_1])``. Its attention is any preset, wired as its ``recurrence``:

- ``bahdanau`` (Bahdanau, Cho & Bengio 2014; the ``additive`` preset):
      e_ij = v^T tanh(W s_{i-1} + U h_j),  c_i = sum_j a_ij h_j,
      s_i = RNN(s_{i-1}, [E y_{i-1}; c_i]),  logits_i = W_o tanh(W_r [s_i; c_i; E y_{i-1}]).
- ``luong`` (Luong, Pham & Manning 2015), with input feeding:
      h_t = RNN(h_{t-1}, [E y_{t-1}; h~_{t-1}]),  c_t = sum_s a_t(s) W_m h_s,
      h~_t = tanh(W_c [c_t; h_t]),  logits_t = W_o h~_t.
- no attention (``attention=None``; Cho et al. 2014, Sutskever et al. 2014):
      c = tanh(W_f [h->_S; h<-_1]),  s_i = RNN(s_{i-1}, [E y_{i-1}; c]).

Padding (id 0) is masked out. Weights ``[B, T, S]`` are sown as ``alignment``; with
``aligner_units`` an alignment head (``models.aligner``) reads the readouts and ``h_j``.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp
from flax.core import FrozenDict

from attn_research.attention import Spec, key_padding_mask
from attn_research.models import aligner as aligner_lib
from attn_research.models import decoding, fields, maps, saliency

Array = jnp.ndarray
CELLS = ("gru", "lstm")
# Decoder state: (RNN carry, feed [B, F], step t [B]); feed is c_i (bahdanau, none) or h~_t.
State = tuple[Any, Array, Array]


def _cell(kind: str, hidden: int, dtype: Any, name: str | None = None) -> nn.RNNCellBase:
    if kind == "gru":
        return nn.GRUCell(hidden, dtype=dtype, name=name)
    if kind == "lstm":
        return nn.OptimizedLSTMCell(hidden, dtype=dtype, name=name)
    raise ValueError(f"cell: unknown RNN cell {kind!r}; choose one of {CELLS}")


def _hidden(carry: Any) -> Array:
    """The output state h of a GRU carry h or an LSTM carry (c, h)."""
    return carry[1] if isinstance(carry, tuple) else carry


class DecoderCell(nn.Module):
    """One decoder step ``(state, E y_{i-1} [B, E]) -> (state, (readout [B, R], a_i [B, S]))``
    over ``memory``: ``values [B, S, V]``, ``keys [B, S, U]``, ``valid [B, S]``, ``fixed [B, 2H]``."""

    attention: str | None
    spec: Spec | None
    cell: str
    hidden: int
    dtype: Any = None

    def _attend(
        self, q_B1U: Array, keys_BS1U: Array, values_BS1V: Array, memory: dict, t_B: Array
    ) -> tuple[Array, Array]:
        """Context ``[B, V]`` and weights ``[B, S]`` of one query per sentence at step ``t``."""
        context, weights = self.spec.module(name=self.attention)(
            q_B1U[:, :, None, :],
            keys_BS1U,
            values_BS1V,
            mask=key_padding_mask(memory["valid"]),
            query_positions=t_B[:, None],
            return_weights=True,
        )
        return context[:, 0, 0], weights[:, 0, 0]

    def _bahdanau(self, rnn, carry, feed_BF, t_B, y_BE, memory):
        values_BS1V = memory["values"][:, :, None, :]
        keys_BS1U = memory["keys"][:, :, None, :]
        q_B1U = nn.Dense(keys_BS1U.shape[-1], use_bias=False, dtype=self.dtype, name="query")(
            _hidden(carry)
        )[:, None, :]
        context_BV, weights_BS = self._attend(q_B1U, keys_BS1U, values_BS1V, memory, t_B)
        carry, s_BH = rnn(carry, jnp.concatenate([y_BE, context_BV], -1))
        readout = nn.Dense(self.hidden, dtype=self.dtype, name="readout")(
            jnp.concatenate([s_BH, context_BV, y_BE], -1)
        )
        return (carry, context_BV, t_B + 1), (jnp.tanh(readout), weights_BS)

    def _luong(self, rnn, carry, feed_BF, t_B, y_BE, memory):
        keys_BS1U = memory["keys"][:, :, None, :]
        carry, h_BH = rnn(carry, jnp.concatenate([y_BE, feed_BF], -1))
        context_BU, weights_BS = self._attend(h_BH[:, None, :], keys_BS1U, keys_BS1U, memory, t_B)
        h_tilde = jnp.tanh(
            nn.Dense(self.hidden, use_bias=False, dtype=self.dtype, name="combine")(
                jnp.concatenate([context_BU, h_BH], -1)
            )
        )
        return (carry, h_tilde, t_B + 1), (h_tilde, weights_BS)

    def _fixed(self, rnn, carry, feed_BF, t_B, y_BE, memory):
        carry, s_BH = rnn(carry, jnp.concatenate([y_BE, feed_BF], -1))
        readout = nn.Dense(self.hidden, dtype=self.dtype, name="readout")(
            jnp.concatenate([s_BH, feed_BF, y_BE], -1)
        )
        weights = jnp.zeros(memory["valid"].shape, jnp.float32)
        return (carry, feed_BF, t_B + 1), (jnp.tanh(readout), weights)

    @nn.compact
    def __call__(
        self, state: State, y_BE: Array, memory: dict[str, Array]
    ) -> tuple[State, tuple[Array, Array]]:
        carry, feed_BF, t_B = state
        rnn = _cell(self.cell, self.hidden, self.dtype, name="rnn")
        if self.spec is None:
            step = self._fixed
        else:
            step = {"bahdanau": self._bahdanau, "luong": self._luong}[self.spec.recurrence]
        return step(rnn, carry, feed_BF, t_B, y_BE, memory)


class RnnTranslator(fields.Attends, nn.Module):
    """``source [B, S]``, ``target_in [B, T]`` -> float32 logits ``[B, T, vocab]``.

    Attributes:
      attention: the decoder's preset, or None (no attention); ``attention_options`` its
        options, e.g. ``{"score": "general", "positions": "local_p", "window": 10}``.
      cell: 'gru' or 'lstm'; hidden: H, each encoder direction's and the decoder's state size.
      attention_units: U, the width of Bahdanau's keys ``U h_j``.
      aligner_units: the width of an alignment head that only guided alignment trains
        (``models.aligner``); 0: none. aligner_trains_encoder: its loss also trains the
        encoder; aligner_full_context: its query reads the whole target.
    """

    vocab_size: int
    attention: str | None = "additive"
    attention_options: Mapping[str, Any] = FrozenDict()
    cell: str = "gru"
    embed_dim: int = 128
    hidden: int = 256
    attention_units: int = 256
    aligner_units: int = 0
    aligner_trains_encoder: bool = False
    aligner_full_context: bool = False
    dropout_rate: float = 0.0
    dtype: Any = None

    def __post_init__(self) -> None:
        fields.check_choice("cell", self.cell, CELLS)
        _ = self.spec  # resolved and checked before anything is traced
        super().__post_init__()

    @property
    def length_limit(self) -> int | None:
        """None: an RNN reads any length."""
        return None

    @property
    def recurrence(self) -> str | None:
        return None if self.spec is None else self.spec.recurrence

    def setup(self) -> None:
        self.source_embed = nn.Embed(self.vocab_size, self.embed_dim, name="source_embed")
        self.target_embed = nn.Embed(self.vocab_size, self.embed_dim, name="target_embed")
        self.encoder = nn.Bidirectional(
            nn.RNN(_cell(self.cell, self.hidden, self.dtype)),
            nn.RNN(_cell(self.cell, self.hidden, self.dtype)),
            return_carry=True,
        )
        self.initial = nn.Dense(self.hidden, dtype=self.dtype, name="initial")
        self.fixed = nn.Dense(2 * self.hidden, dtype=self.dtype, name="fixed")
        units = {"bahdanau": self.attention_units}.get(self.recurrence, self.hidden)
        self.keys = nn.Dense(units, use_bias=False, dtype=self.dtype, name="keys")
        self.decoder = DecoderCell(
            self.attention, self.spec, self.cell, self.hidden, self.dtype, name="decoder"
        )
        self.output = nn.Dense(self.vocab_size, dtype=self.dtype, name="output")
        self.dropout = nn.Dropout(self.dropout_rate)
        if self.aligner_units:
            self.aligner = aligner_lib.Aligner(
                self.aligner_units, self.aligner_trains_encoder, self.aligner_full_context
            )

    def encode(self, source_BS: Array, train: bool = False) -> tuple[dict[str, Array], State]:
        """Encoder memory and the decoder's initial state."""
        valid_BS = source_BS != 0
        x_BSE = saliency.gate(self, self.source_embed(source_BS).astype(self.dtype))
        x_BSE = self.dropout(x_BSE, deterministic=not train)
        (forward, backward), h_BS2H = self.encoder(x_BSE, seq_lengths=valid_BS.sum(-1))
        final_B2H = jnp.concatenate([_hidden(forward), _hidden(backward)], -1)
        h_BS2H = self.dropout(h_BS2H, deterministic=not train)
        memory = {
            "values": h_BS2H,
            "keys": self.keys(h_BS2H),
            "valid": valid_BS,
            "fixed": jnp.tanh(self.fixed(final_B2H)),
        }
        s0_BH = jnp.tanh(self.initial(final_B2H))
        carry = (jnp.zeros_like(s0_BH), s0_BH) if self.cell == "lstm" else s0_BH
        feed = {
            "bahdanau": jnp.zeros_like(h_BS2H[:, 0]),
            "luong": jnp.zeros_like(s0_BH),
            None: memory["fixed"],
        }[self.recurrence]
        return memory, (carry, feed, jnp.zeros(source_BS.shape[:1], jnp.int32))

    def step(
        self, memory: dict[str, Array], state: State, token_B: Array
    ) -> tuple[Array, State, Array]:
        """One decoding step: ``(logits [B, V], state, alignment [B, S])`` after `token_B`."""
        y_BE = self.target_embed(token_B).astype(self.dtype)
        state, (readout_BR, weights_BS) = self.decoder(state, y_BE, memory)
        return self.output(readout_BR).astype(jnp.float32), state, weights_BS

    def attention_maps(
        self, params: Any, source_BS: Array, target_in_BT: Array
    ) -> list[maps.AttentionMap]:
        """The decoder's teacher-forced attention over the source, ``[B, 1, T, S]``
        (``models.maps``; none without attention), then the aligner's."""
        _, variables = self.apply(
            {"params": params}, source_BS, target_in_BT, mutable=["intermediates"]
        )
        return _sown_maps(
            self, variables["intermediates"], target_in_BT.shape[1], source_BS.shape[1]
        )

    def __call__(self, source_BS: Array, target_in_BT: Array, train: bool = False) -> Array:
        memory, state = self.encode(source_BS, train)
        y_BTE = self.dropout(
            self.target_embed(target_in_BT).astype(self.dtype), deterministic=not train
        )
        scan = nn.scan(
            lambda cell, carry, y, mem: cell(carry, y, mem),
            variable_broadcast="params",
            variable_axes={"intermediates": 1},
            split_rngs={"params": False},
            in_axes=(1, nn.broadcast),
            out_axes=1,
        )
        _, (readout_BTR, weights_BTS) = scan(self.decoder, state, y_BTE, memory)
        self.sow("intermediates", "alignment", weights_BTS)
        if self.aligner_units:
            self.sow(
                "intermediates",
                aligner_lib.SOWN,
                self.aligner(
                    readout_BTR,
                    memory["values"],
                    memory["valid"],
                    (target_in_BT != 0).sum(-1),
                ),
            )
        readout_BTR = self.dropout(readout_BTR, deterministic=not train)
        return self.output(readout_BTR).astype(jnp.float32)


def _sown_maps(
    model: RnnTranslator, sown: dict, target_len: int, source_len: int
) -> list[maps.AttentionMap]:
    """The maps of a teacher-forced pass's ``intermediates``: the decoder's attention
    ``[B, 1, T, S]`` (none without attention), then the aligner's."""
    found = aligner_lib.sown_map(sown, target_len, source_len)
    if model.attention is None:
        return found
    (weights_BTS,) = sown["alignment"]
    centre = sown.get("decoder", {}).get(model.attention, {}).get("centre")
    fraction = None
    if centre is not None:
        (fraction_BT11,) = centre["position_fraction"]
        fraction = fraction_BT11[:, :, 0, 0][:, None]
    decoder = maps.AttentionMap(
        "decoder/attention",
        weights_BTS[:, None],
        maps.Tokens.text("target", target_len),
        maps.Tokens.text("source", source_len),
        fraction,
    )
    return [decoder, *found]


def start_decoding(
    model: RnnTranslator, params: Any, source_BS: Array, max_len: int
) -> dict[str, Any]:
    """The decoding state of `source_BS`, batch-major (`max_len` unused: an RNN state does not
    grow)."""
    del max_len
    memory, state = model.apply({"params": params}, source_BS, method=RnnTranslator.encode)
    return {"memory": decoding.Shared(memory), "state": state}


def decode_step(
    model: RnnTranslator, params: Any, state: dict[str, Any], token_B: Array
) -> tuple[Array, dict[str, Any]]:
    """``(logits [B, V], next state)`` after feeding `token_B`."""
    logits, rnn_state, _ = model.apply(
        {"params": params},
        state["memory"].value,
        state["state"],
        token_B,
        method=RnnTranslator.step,
    )
    return logits, {"memory": state["memory"], "state": rnn_state}


def logits_and_attention(
    model: RnnTranslator,
    params: Any,
    source_BS: Array,
    target_in_BT: Array,
    train: bool,
    rngs: dict[str, Any],
) -> tuple[Array, list[Array]]:
    """Teacher-forced logits ``[B, T, V]`` and the weights of the same pass's maps, each
    ``[B, heads=1, T, S]``: the decoder's attention (none without attention), then the
    aligner's."""
    logits, variables = model.apply(
        {"params": params}, source_BS, target_in_BT, train, rngs=rngs, mutable=["intermediates"]
    )
    found = _sown_maps(model, variables["intermediates"], target_in_BT.shape[1], source_BS.shape[1])
    return logits, [m.weights for m in found]


def alignment(model: RnnTranslator, params: Any, source_BS: Array, target_in_BT: Array) -> Array:
    """Teacher-forced attention ``[B, T, S]``: row i is the attention used to write y_i."""
    return model.attention_maps(params, source_BS, target_in_BT)[0].weights[:, 0]
