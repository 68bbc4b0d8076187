"""The attention library: which positions attend x how a pair is scored x how it is computed.

Every attention works on ``q [batch..., Tq, H, D]``, ``k [batch..., Tk, Hkv, D]``,
``v [batch..., Tk, Hkv, Dv]`` with boolean masks broadcastable to ``[batch..., H, Tq, Tk]``
(True = may attend), and is three choices, each from its own registry:

- positions (``positions.py``): global, causal, window, window_2d, luong_local_m, luong_local_p;
- score (``scores.py``): dot, general, additive, concat;
- kernel (``compute.py``): dense, chunked, blocked, looped, flash_band, jax_nn, cudnn, splash,
  pallas_band, auto.

Configs name presets (``presets.py``: dot_product, local, local_2d, additive, luong) and may
replace any axis: ``MultiHeadAttention(kind="local", options={"score": "additive"})``.

- ``attend(q, k, v, kind=..., **options)`` for attention without parameters;
- ``compose.Attention`` on projected q, k, v, and ``MultiHeadAttention`` with projections.

This package imports nothing else of the project.
"""

from attn_research.attention import compute, positions, presets, scores
from attn_research.attention.attend import attend
from attn_research.attention.compose import Attention
from attn_research.attention.masks import causal_mask, key_padding_mask, padding_mask
from attn_research.attention.multi_head import MultiHeadAttention
from attn_research.attention.presets import KINDS, Kind, Spec, get, register, resolve

__all__ = [
    "KINDS",
    "Attention",
    "Kind",
    "MultiHeadAttention",
    "Spec",
    "attend",
    "causal_mask",
    "compute",
    "get",
    "key_padding_mask",
    "padding_mask",
    "positions",
    "presets",
    "register",
    "resolve",
    "scores",
]
