"""Dense float64 NumPy references for the attention kinds, written from the papers' formulas.

Independent of ``attn_research.attention``: plain NumPy on whole ``[Tq, Tk]`` score matrices, no
blocking, chunking or online softmax. Layouts follow the library's convention so that tests compare
directly: ``q [batch..., Tq, H, D]``, ``k [batch..., Tk, Hkv, D]``, ``v [batch..., Tk, Hkv, Dv]``,
masks broadcastable to ``[batch..., H, Tq, Tk]`` (True = may attend), weights
``[batch..., H, Tq, Tk]``. Grouped-query attention: query head ``h`` reads key/value head
``h // (H // Hkv)``. A query row with no allowed key has weights (and output) exactly 0.

Each kind is ``logits`` (its score function) + ``attention`` (masked softmax and context).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np


def f64(x) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


def round_bf16(x) -> np.ndarray:
    """``x`` rounded to bfloat16 (to nearest even), returned as float64."""
    return np.asarray(x, np.float64).astype(ml_dtypes.bfloat16).astype(np.float64)


def normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.normal(size=shape)).astype(np.float32)


def expand_kv(x: np.ndarray, heads: int) -> np.ndarray:
    """``[..., T, Hkv, D]`` -> ``[..., T, H, D]``: each key/value head serves ``H // Hkv`` query heads."""
    return np.repeat(f64(x), heads // x.shape[-2], axis=-2)


# Which positions attend. ------------------------------------------------------------------------


def causal(tq: int, tk: int) -> np.ndarray:
    """``[Tq, Tk]``: query i sees keys j <= i."""
    return np.arange(tk)[None, :] <= np.arange(tq)[:, None]


def window_1d(tq: int, tk: int, left: int, right: int) -> np.ndarray:
    """``[Tq, Tk]``: query i sees keys i - left ... i + right."""
    i, j = np.arange(tq)[:, None], np.arange(tk)[None, :]
    return (j >= i - left) & (j <= i + right)


def window_2d(rows: int, cols: int, k_r: int, k_c: int) -> np.ndarray:
    """``[T, T]``, T = rows * cols in row-major order: the k_r x k_c neighbourhood of each token."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    return (np.abs(r[:, None] - r[None, :]) <= k_r // 2) & (
        np.abs(c[:, None] - c[None, :]) <= k_c // 2
    )


def allowed(shape, *masks) -> np.ndarray:
    """AND of the given masks (None skipped), broadcast to ``shape``."""
    out = np.ones(shape, bool)
    for m in masks:
        if m is not None:
            out = out & np.asarray(m, bool)
    return out


# Softmax and context. ---------------------------------------------------------------------------


def softmax(logits: np.ndarray, allowed_: np.ndarray | None = None) -> np.ndarray:
    """``exp(l_j) / sum_{m allowed} exp(l_m)`` on allowed keys, 0 elsewhere and in empty rows."""
    allowed_ = allowed(logits.shape, allowed_)
    masked = np.where(allowed_, logits, -np.inf)
    row_max = masked.max(axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    unnormalized = np.where(allowed_, np.exp(np.where(allowed_, logits, 0.0) - row_max), 0.0)
    total = unnormalized.sum(axis=-1, keepdims=True)
    return np.where(total > 0, unnormalized / np.where(total > 0, total, 1.0), 0.0)


def context(weights: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``c_i = sum_j w_ij v_j``: ``[..., H, Tq, Tk]``, ``[..., Tk, Hkv, Dv]`` -> ``[..., Tq, H, Dv]``."""
    return np.einsum("...hqk,...khd->...qhd", weights, expand_kv(v, weights.shape[-3]))


def attention(logits: np.ndarray, v, *masks) -> tuple[np.ndarray, np.ndarray]:
    """``(out, weights)`` for float64 ``logits [..., H, Tq, Tk]`` restricted to ``masks``."""
    weights = softmax(logits, allowed(logits.shape, *masks))
    return context(weights, v), weights


def bf16_everywhere(logits: np.ndarray, v, *masks) -> np.ndarray:
    """The output of a computation that rounds every step to bfloat16 (logits, exp, row sums,
    weights, output), as one that does not keep logits and softmax in float32 would. Its error
    is a lower bound for such a kernel: the logits' own computation in bf16 is not counted."""
    allowed_ = allowed(logits.shape, *masks)
    logits = round_bf16(np.where(allowed_, logits, -np.inf))
    row_max = logits.max(axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    e = np.where(
        allowed_, round_bf16(np.exp(round_bf16(np.where(allowed_, logits, 0.0) - row_max))), 0.0
    )
    total = round_bf16(e.sum(axis=-1, keepdims=True))
    weights = round_bf16(np.where(total > 0, e / np.where(total > 0, total, 1.0), 0.0))
    return round_bf16(context(weights, round_bf16(v)))


# The kinds. -------------------------------------------------------------------------------------


def dot_product_logits(q, k, *, bias=None, scale=None) -> np.ndarray:
    """Vaswani et al. 2017: ``q k^T / sqrt(d) (+ bias)``, ``[..., H, Tq, Tk]``."""
    q = f64(q)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = np.einsum("...qhd,...khd->...hqk", q, expand_kv(k, q.shape[-2])) * scale
    return logits if bias is None else logits + f64(bias)


def dot_product(q, k, v, *, mask=None, bias=None, is_causal: bool = False, scale=None):
    """softmax(q k^T / sqrt(d) + bias, where=mask) v. Returns ``(out, weights)``."""
    logits = dot_product_logits(q, k, bias=bias, scale=scale)
    return attention(logits, v, mask, causal(q.shape[-3], k.shape[-3]) if is_causal else None)


def local(q, k, v, *, left: int, right: int, mask=None):
    """Sliding window: dense attention restricted to keys ``i - left ... i + right``."""
    window = window_1d(q.shape[-3], k.shape[-3], left, right)
    return attention(dot_product_logits(q, k), v, mask, window)


def local_2d(q, k, v, *, grid: tuple[int, int], window: tuple[int, int], mask=None):
    """Neighbourhood attention on a row-major ``grid`` with a ``(k_r, k_c)`` neighbourhood."""
    return attention(dot_product_logits(q, k), v, mask, window_2d(*grid, *window))


def additive_logits(q, k, w, *, g=None, b=None) -> np.ndarray:
    """Bahdanau et al. 2014: ``e_ij = w^T tanh(q_i + k_j (+ b))`` per head, ``w [H, U]``.

    With ``g [H]``: the weight-normalized score vector ``g w / ||w||`` (Salimans & Kingma 2016),
    and ``b [U]`` added inside the tanh.
    """
    q, w = f64(q), f64(w)
    k = expand_kv(k, q.shape[-2])
    if g is not None:
        w = f64(g)[:, None] * w / np.linalg.norm(w, axis=-1, keepdims=True)
    if b is not None:
        k = k + f64(b)
    hidden = np.tanh(q[..., :, None, :, :] + k[..., None, :, :, :])  # [..., Tq, Tk, H, U]
    return np.einsum("...qkhu,hu->...hqk", hidden, w)


def additive(q, k, v, w, *, g=None, b=None, mask=None, is_causal: bool = False):
    """Bahdanau attention ``(out, weights)``: a = softmax_j(e_ij), c_i = sum_j a_ij v_j."""
    logits = additive_logits(q, k, w, g=g, b=b)
    return attention(logits, v, mask, causal(q.shape[-3], k.shape[-3]) if is_causal else None)


def luong_logits(q, k, *, score: str, params=None, score_scale: float = 1.0) -> np.ndarray:
    """Luong et al. 2015 scores per head: dot ``h_t^T h_s``; general ``h_t^T W_a h_s`` (both
    times ``score_scale``); concat ``v_a^T tanh(W_1 h_t + W_2 h_s)``."""
    p = {name: f64(x) for name, x in (params or {}).items()}
    q, k = f64(q), f64(k)
    if score == "dot":
        return score_scale * np.einsum("...qhd,...khd->...hqk", q, k)
    if score == "general":
        return score_scale * np.einsum("...qhd,hde,...khe->...hqk", q, p["w_general"], k)
    if score == "concat":
        hidden = np.tanh(
            np.einsum("...qhd,hdu->...qhu", q, p["w_query"])[..., :, None, :, :]
            + np.einsum("...khd,hdu->...khu", k, p["w_key"])[..., None, :, :, :]
        )
        return np.einsum("...qkhu,hu->...hqk", hidden, p["score_vector"])
    raise ValueError(score)


def luong_position(q, params, source_len, position_scale: float = 1.0) -> np.ndarray:
    """local-p: ``p_t = S * sigmoid(position_scale * v_p^T tanh(W_p h_t))``, ``[..., H, Tq, 1]``."""
    hidden = np.tanh(np.einsum("...qhd,hdu->...qhu", f64(q), f64(params["w_position"])))
    pre = position_scale * np.einsum("...qhu,hu->...hq", hidden, f64(params["v_position"]))
    fraction = 1.0 / (1.0 + np.exp(-pre))
    return f64(source_len) * fraction[..., None]


def luong(
    q,
    k,
    v,
    *,
    score: str,
    positions: str = "global",
    window: int | None = None,
    params=None,
    mask=None,
    is_causal: bool = False,
    query_positions=None,
    score_scale: float = 1.0,
    position_scale: float = 1.0,
):
    """Luong attention ``(out, weights)``.

    global: softmax over all (allowed) keys. local-m: over keys ``|s - t| <= D`` with ``t`` the
    query position. local-p: over keys ``|s - p_t| <= D``, ``S`` = the row's allowed keys, then
    times ``exp(-(s - p_t)^2 / (2 sigma^2))``, ``sigma = D / 2``. ``score_scale`` multiplies
    the dot and general scores, ``position_scale`` local-p's pre-activation (both 1 in the paper).
    """
    logits = luong_logits(q, k, score=score, params=params, score_scale=score_scale)
    tq, tk = q.shape[-3], k.shape[-3]
    allowed_ = allowed(logits.shape, mask, causal(tq, tk) if is_causal else None)
    s = np.arange(tk, dtype=np.float64)
    if positions == "global":
        return attention(logits, v, allowed_)
    if positions == "local_m":
        t = np.arange(tq) if query_positions is None else np.asarray(query_positions)
        p_t = f64(t)[..., None, :, None]  # [..., 1, Tq, 1]
        return attention(logits, v, allowed_, np.abs(s - p_t) <= window)
    assert positions == "local_p", positions
    p_t = luong_position(q, params, allowed_.sum(axis=-1, keepdims=True), position_scale)
    weights = softmax(logits, allowed_ & (np.abs(s - p_t) <= window))
    weights = weights * np.exp(-((s - p_t) ** 2) / (2.0 * (window / 2.0) ** 2))
    return context(weights, v), weights


# Multi-head layer. ------------------------------------------------------------------------------


def dense(x, kernel, bias=None, contract: int = 1) -> np.ndarray:
    """``flax.linen.DenseGeneral``: contracts the last ``contract`` axes of x with the kernel's first."""
    out = np.tensordot(f64(x), f64(kernel), axes=contract)
    return out if bias is None else out + f64(bias)


def multi_head(params, x_q, x_kv, attend) -> np.ndarray:
    """Concat_h(attend(x_q W^Q_h, x_kv W^K_h, x_kv W^V_h)) W^O with ``params`` laid out as flax's
    MultiHeadDotProductAttention's; ``attend(q, k, v) -> out [..., Tq, H, Dv]``."""
    q = dense(x_q, params["query"]["kernel"], params["query"].get("bias"))
    k = dense(x_kv, params["key"]["kernel"], params["key"].get("bias"))
    v = dense(x_kv, params["value"]["kernel"], params["value"].get("bias"))
    return dense(attend(q, k, v), params["out"]["kernel"], params["out"].get("bias"), contract=2)
