"""Transformer encoder-decoder translator (Vaswani et al. 2017), pre-LN, layers scanned.

    encoder:  `models.encoder.Encoder` over the source (key padding mask)
    decoder block:
      x <- x + Dropout(SelfAttention(LN(x), causal))      (key/value cache when decoding)
      x <- x + Dropout(CrossAttention(LN(x), memory))     (source key padding mask)
      x <- x + Dropout(MLP(LN(x)))
    logits = W_o LN(x)

Each attention is a preset with options; local cross-attention attends source positions
``|j - i| <= window``. Embeddings are scaled by sqrt(d) plus sinusoidal or learned positions.
With ``aligner_units`` an alignment head (``models.aligner``) reads LN(x) and the memory.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from flax.core import FrozenDict

from attn_research.attention import MultiHeadAttention, Spec, key_padding_mask, resolve
from attn_research.models import aligner as aligner_lib
from attn_research.models import decoding, fields, maps, saliency
from attn_research.models.encoder import Encoder, Mlp
from attn_research.models.scan import check_remat, check_unroll, scan_layers

Array = jnp.ndarray
POSITION_EMBEDDINGS = ("sinusoidal", "learned")


ROLES = ("encoder_attention", "decoder_attention", "cross_attention")


def sinusoids(length: int, dim: int) -> np.ndarray:
    """``[length, dim]``: PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(...)."""
    position = np.arange(length)[:, None]
    rate = np.exp(-np.log(10000.0) * np.arange(0, dim, 2) / dim)[None, :]
    table = np.zeros((length, dim), np.float32)
    table[:, 0::2] = np.sin(position * rate)
    table[:, 1::2] = np.cos(position * rate)[:, : dim // 2]
    return table


class DecoderBlock(nn.Module):
    """One pre-LN decoder block ``[B, T, F] -> [B, T, F]`` (a carry/output pair for nn.scan)."""

    num_heads: int
    mlp_dim: int
    self_attention: Spec = resolve("dot_product")
    cross_attention: Spec = resolve("dot_product")
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    dtype: Any = None
    decode: bool = False
    sow_weights: bool = False

    @nn.compact
    def __call__(
        self,
        x: Array,
        memory_BSF: Array,
        memory_mask: Array,
        positions_BT: Array | None,
        deterministic: bool,
    ) -> tuple[Array, None]:
        """``memory_mask``: bool ``[B, 1, 1, S]``, True at real source positions;
        ``positions_BT``: the target positions of a decoding step (None: ``0 .. T - 1``)."""
        dropout = nn.Dropout(self.dropout_rate)
        y = nn.LayerNorm(dtype=self.dtype, name="ln_self")(x)
        y = MultiHeadAttention(
            num_heads=self.num_heads,
            attention=self.self_attention,
            dropout_rate=self.attention_dropout_rate,
            dtype=self.dtype,
            decode=self.decode,
            name="self_attention",
        )(y, deterministic=deterministic, causal=True)
        x = x + dropout(y, deterministic=deterministic)
        y = nn.LayerNorm(dtype=self.dtype, name="ln_cross")(x)
        y = MultiHeadAttention(
            num_heads=self.num_heads,
            attention=self.cross_attention,
            dropout_rate=self.attention_dropout_rate,
            dtype=self.dtype,
            sow_weights=self.sow_weights,
            name="cross_attention",
        )(
            y,
            memory_BSF,
            mask=memory_mask,
            query_positions=positions_BT,
            deterministic=deterministic,
        )
        x = x + dropout(y, deterministic=deterministic)
        y = nn.LayerNorm(dtype=self.dtype, name="ln_mlp")(x)
        y = Mlp(self.mlp_dim, self.dropout_rate, self.dtype, name="mlp")(y, deterministic)
        return x + y, None


class TransformerTranslator(nn.Module):
    """``source [B, S]``, ``target_in [B, T]`` -> float32 logits ``[B, T, vocab]``.

    Attributes:
      encoder_attention, decoder_attention, cross_attention: presets, each with its
        ``<role>_attention_options``.
      tie_output: logits ``LN(y) E^T`` with the target embedding (Press & Wolf 2017).
      position_embedding: 'sinusoidal' or 'learned' (up to `max_len` positions).
      sow_weights: sow cross-attention weights ``[layers, B, H, T, S]``.
      aligner_units: the width of an alignment head that only guided alignment trains
        (``models.aligner``); 0: none. aligner_trains_encoder: its loss also trains the
        encoder; aligner_full_context: its query reads the whole target.
    """

    vocab_size: int
    embed_dim: int = 128
    num_heads: int = 4
    num_layers: int = 2
    mlp_dim: int = 512
    encoder_attention: str = "dot_product"
    encoder_attention_options: Mapping[str, Any] = FrozenDict()
    decoder_attention: str = "dot_product"
    decoder_attention_options: Mapping[str, Any] = FrozenDict()
    cross_attention: str = "dot_product"
    cross_attention_options: Mapping[str, Any] = FrozenDict()
    share_embeddings: bool = False
    tie_output: bool = False
    position_embedding: str = "sinusoidal"
    max_len: int = 256
    dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.0
    dtype: Any = None
    decode: bool = False
    sow_weights: bool = False
    remat: str = "none"
    scan_unroll: int = 1
    aligner_units: int = 0
    aligner_trains_encoder: bool = False
    aligner_full_context: bool = False

    def __post_init__(self) -> None:
        fields.check_choice("position_embedding", self.position_embedding, POSITION_EMBEDDINGS)
        check_remat(self.remat)
        check_unroll(self.scan_unroll, "scan_unroll")
        for role, spec in self.specs.items():
            try:
                spec.positions.check(1, 1, None)  # sentences, not a grid
            except ValueError as error:
                raise ValueError(f"{role}: {error}") from None
        super().__post_init__()

    @functools.cached_property
    def specs(self) -> dict[str, Spec]:
        """Each role's resolved attention."""
        return {
            role: fields.check_attention(
                role, getattr(self, role), getattr(self, f"{role}_options")
            )
            for role in ROLES
        }

    @property
    def length_limit(self) -> int | None:
        """`max_len` for learned positions, None for sinusoids."""
        return self.max_len if self.position_embedding == "learned" else None

    def setup(self) -> None:
        # N(0, 1/d) scaled by sqrt(d): unit-variance tokens, on a par with the positions.
        init = nn.initializers.normal(stddev=self.embed_dim**-0.5)
        self.source_embed = nn.Embed(self.vocab_size, self.embed_dim, embedding_init=init)
        self.target_embed = (
            self.source_embed
            if self.share_embeddings
            else nn.Embed(self.vocab_size, self.embed_dim, embedding_init=init)
        )
        if self.position_embedding == "learned":
            self.position_embed = nn.Embed(
                self.max_len, self.embed_dim, embedding_init=nn.initializers.normal(0.02)
            )
        common = dict(
            num_heads=self.num_heads,
            mlp_dim=self.mlp_dim,
            dropout_rate=self.dropout_rate,
            attention_dropout_rate=self.attention_dropout_rate,
        )
        self.encoder = Encoder(
            self.num_layers,
            dtype=self.dtype,
            remat=self.remat,
            scan_unroll=self.scan_unroll,
            block=dict(attention=self.specs["encoder_attention"], **common),
        )
        self.decoder = scan_layers(
            DecoderBlock,
            self.num_layers,
            remat=self.remat,
            unroll=self.scan_unroll,
            static_args=(4,),
            self_attention=self.specs["decoder_attention"],
            cross_attention=self.specs["cross_attention"],
            dtype=self.dtype,
            decode=self.decode,
            sow_weights=self.sow_weights,
            **common,
        )
        self.ln_final = nn.LayerNorm(dtype=self.dtype)
        if not self.tie_output:
            self.output = nn.Dense(self.vocab_size, dtype=self.dtype)
        self.dropout = nn.Dropout(self.dropout_rate)
        if self.aligner_units:
            self.aligner = aligner_lib.Aligner(
                self.aligner_units, self.aligner_trains_encoder, self.aligner_full_context
            )

    def _embed(
        self, embed: nn.Embed, ids_BT: Array, positions_BT: Array, train: bool, gated: bool = False
    ) -> Array:
        """Scaled token embeddings (`gated`: times ``saliency.gate``) plus positions."""
        x = embed(ids_BT) * np.sqrt(self.embed_dim)
        if gated:
            x = saliency.gate(self, x)
        if self.position_embedding == "learned":
            x = x + self.position_embed(positions_BT)
        else:
            # As long as the sequence, so that a teacher-forced pass reads any length.
            length = max(self.max_len, ids_BT.shape[1])
            x = x + jnp.asarray(sinusoids(length, self.embed_dim))[positions_BT]
        return self.dropout(x.astype(self.dtype), deterministic=not train)

    def encode(self, source_BS: Array, train: bool = False) -> Array:
        """Encoder output ``[B, S, F]``."""
        positions = jnp.broadcast_to(jnp.arange(source_BS.shape[1]), source_BS.shape)
        x = self._embed(self.source_embed, source_BS, positions, train, gated=True)
        return self.encoder(x, key_padding_mask(source_BS != 0), deterministic=not train)

    def decode_logits(
        self,
        memory_BSF: Array,
        source_BS: Array,
        target_in_BT: Array,
        positions_BT: Array,
        train: bool = False,
    ) -> Array:
        """Decoder logits ``[B, T, V]`` for target inputs at `positions_BT`."""
        y = self._embed(self.target_embed, target_in_BT, positions_BT, train)
        mask = key_padding_mask(source_BS != 0)
        # Teacher forcing attends from positions 0 .. T - 1; a decoding step says where it is.
        step_positions = positions_BT if self.decode else None
        y, _ = self.decoder(y, memory_BSF, mask, step_positions, not train)
        y = self.ln_final(y)
        if self.aligner_units and not self.decode:
            weights = self.aligner(y, memory_BSF, source_BS != 0, (target_in_BT != 0).sum(-1))
            self.sow("intermediates", aligner_lib.SOWN, weights)
        logits = self.target_embed.attend(y) if self.tie_output else self.output(y)
        return logits.astype(jnp.float32)

    def attention_maps(
        self, params: Any, source_BS: Array, target_in_BT: Array
    ) -> list[maps.AttentionMap]:
        """Every decoder layer's teacher-forced cross-attention ``[B, H, T, S]`` over the source
        (``models.maps``), then the aligner's."""
        _, variables = self.clone(sow_weights=True).apply(
            {"params": params}, source_BS, target_in_BT, mutable=["intermediates"]
        )
        return _sown_maps(variables["intermediates"], target_in_BT.shape[1], source_BS.shape[1])

    def __call__(self, source_BS: Array, target_in_BT: Array, train: bool = False) -> Array:
        memory = self.encode(source_BS, train)
        positions = jnp.broadcast_to(jnp.arange(target_in_BT.shape[1]), target_in_BT.shape)
        return self.decode_logits(memory, source_BS, target_in_BT, positions, train)


def _sown_maps(sown: dict, target_len: int, source_len: int) -> list[maps.AttentionMap]:
    """The maps of a teacher-forced pass's ``intermediates``: every decoder layer's
    cross-attention ``[B, H, T, S]``, then the aligner's."""
    (weights,) = sown["decoder"]["cross_attention"]["attention_weights"]
    layers = maps.layer_maps(
        "decoder/cross",
        weights,
        maps.Tokens.text("target", target_len),
        maps.Tokens.text("source", source_len),
    )
    return layers + aligner_lib.sown_map(sown, target_len, source_len)


def _is_index(path: tuple[str, ...]) -> bool:
    return path[-1] == "cache_index"


def start_decoding(
    model: TransformerTranslator, params: Any, source_BS: Array, max_len: int
) -> dict[str, Any]:
    """Decoding state for up to `max_len` steps: memory and source (``decoding.Shared``), the
    cache batch-major without its step counters (so beam search can gather it), and step t."""
    decoder = model.clone(decode=True)
    memory = model.apply({"params": params}, source_BS, method=TransformerTranslator.encode)
    batch = source_BS.shape[0]
    shapes = jax.eval_shape(
        lambda: decoder.init(jax.random.key(0), source_BS, jnp.zeros((batch, max_len), jnp.int32))[
            "cache"
        ]
    )
    flat = traverse_util.flatten_dict(shapes)
    cache = {
        k: jnp.moveaxis(jnp.zeros(v.shape, v.dtype), 0, 1)
        for k, v in flat.items()
        if not _is_index(k)
    }
    return {
        "memory": decoding.Shared(memory),
        "source": decoding.Shared(source_BS),
        "cache": cache,
        "t": jnp.zeros((batch,), jnp.int32),
    }


def decode_step(
    model: TransformerTranslator, params: Any, state: dict[str, Any], token_B: Array
) -> tuple[Array, dict[str, Any]]:
    """``(logits [B, V], next state)`` after feeding `token_B` at position ``state['t']``."""
    t_B = state["t"]
    flat = {k: jnp.moveaxis(v, 1, 0) for k, v in state["cache"].items()}
    for key in [k for k in flat if k[-1] == "cached_key"]:
        flat[(*key[:-1], "cache_index")] = jnp.full((model.num_layers,), t_B[0], jnp.int32)
    logits, variables = model.clone(decode=True).apply(
        {"params": params, "cache": traverse_util.unflatten_dict(flat)},
        state["memory"].value,
        state["source"].value,
        token_B[:, None],
        t_B[:, None],
        mutable=["cache"],
        method=TransformerTranslator.decode_logits,
    )
    new_flat = traverse_util.flatten_dict(variables["cache"])
    cache = {k: jnp.moveaxis(v, 0, 1) for k, v in new_flat.items() if not _is_index(k)}
    return logits[:, 0], {**state, "cache": cache, "t": t_B + 1}


def logits_and_attention(
    model: TransformerTranslator,
    params: Any,
    source_BS: Array,
    target_in_BT: Array,
    train: bool,
    rngs: dict[str, Any],
) -> tuple[Array, list[Array]]:
    """Teacher-forced logits ``[B, T, V]`` and the weights of the same pass's maps, each
    ``[B, H, T, S]``: every decoder layer's cross-attention, then the aligner's."""
    logits, variables = model.clone(sow_weights=True).apply(
        {"params": params}, source_BS, target_in_BT, train, rngs=rngs, mutable=["intermediates"]
    )
    found = _sown_maps(variables["intermediates"], target_in_BT.shape[1], source_BS.shape[1])
    return logits, [m.weights for m in found]


def alignment(
    model: TransformerTranslator, params: Any, source_BS: Array, target_in_BT: Array
) -> Array:
    """Teacher-forced cross-attention, heads averaged, per layer: ``[layers, B, T, S]``."""
    layers = model.attention_maps(params, source_BS, target_in_BT)[: model.num_layers]
    return jnp.stack([m.weights.mean(axis=1) for m in layers])
