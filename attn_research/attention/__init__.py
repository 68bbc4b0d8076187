"""The attention library: dot-product, additive, Luong and local attention kinds.

Every kind works on ``q [batch..., Tq, H, D]``, ``k [batch..., Tk, Hkv, D]``,
``v [batch..., Tk, Hkv, Dv]`` with boolean masks broadcastable to ``[batch..., H, Tq, Tk]``
(True = may attend), and is chosen by name:

- ``attend(q, k, v, kind=...)`` for the kinds without parameters (dot_product, local, local_2d);
- ``MultiHeadAttention(num_heads, kind=..., options=...)`` for every kind.

This package imports nothing else of the project.
"""

from attn_research.attention import additive, dot_product, local, luong
from attn_research.attention.additive import AdditiveAttention, additive_attention
from attn_research.attention.attend import attend
from attn_research.attention.dot_product import dot_product_attention
from attn_research.attention.local import local_2d_attention, local_attention
from attn_research.attention.luong import LuongAttention
from attn_research.attention.masks import causal_mask, key_padding_mask, padding_mask
from attn_research.attention.multi_head import MultiHeadAttention
from attn_research.attention.registry import KINDS, Kind, get, register

register(Kind("dot_product", "Vaswani et al. 2017", function=dot_product.dot_product_attention))
register(Kind("local", "sliding window; Beltagy et al. 2020", function=local.local_attention))
register(
    Kind(
        "local_2d", "2-D neighbourhood; Ramachandran et al. 2019", function=local.local_2d_attention
    )
)
register(Kind("additive", "Bahdanau et al. 2014", module=additive.AdditiveAttention))
register(Kind("luong", "Luong et al. 2015", module=luong.LuongAttention))

__all__ = [
    "KINDS",
    "AdditiveAttention",
    "Kind",
    "LuongAttention",
    "MultiHeadAttention",
    "additive_attention",
    "attend",
    "causal_mask",
    "dot_product_attention",
    "get",
    "key_padding_mask",
    "local_2d_attention",
    "local_attention",
    "padding_mask",
    "register",
]
