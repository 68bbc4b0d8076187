"""``config.model`` as older runs wrote it, in today's fields and words (for ``config.json``).

- fields renamed (``emb_dim`` -> ``embed_dim``, ...) and values renamed (``learn`` -> ``learned``);
- the RNN's attention ``bahdanau | luong | none`` with ``score``, ``align`` and ``window``
  fields -> the preset ``additive | luong | None`` with ``attention_options``;
- the Transformer's shared ``window`` -> each role's ``<role>_options``;
- positions rules and kernels renamed inside any attention's options
  (``attention.presets.renamed_options``).
"""

from __future__ import annotations

from typing import Any

from attn_research.attention import presets

# Old field -> new field.
FIELDS = {
    "family": "name",
    "emb_dim": "embed_dim",
    "width": "embed_dim",
    "depth": "num_layers",
    "posemb": "position_embedding",
    "positions": "position_embedding",
}
VALUES = {("position_embedding", "learn"): "learned"}
# The RNN's old attention names -> presets.
RNN_PRESETS = {"bahdanau": "additive", "luong": "luong", "none": None}
TRANSFORMER_ROLES = ("encoder_attention", "decoder_attention", "cross_attention")


def _with_window(kind: str, options: dict[str, Any], window: Any) -> dict[str, Any]:
    """``options`` and ``window``, if the attention they select takes one (the old configs gave
    a model's window to the kinds that had one)."""
    return {**options, "window": window} if "window" in presets.takes(kind, options) else options


def _rnn(model: dict[str, Any]) -> None:
    old = model["attention"]
    score, align, window = (model.pop(k, None) for k in ("score", "align", "window"))
    model["attention"] = kind = RNN_PRESETS[old]
    options = dict(model.get("attention_options") or {})
    if kind is None:
        model["attention_options"] = {}
        return
    if old == "luong":
        options.setdefault("score", score or "dot")
        if align not in (None, "global"):
            options.setdefault("positions", f"local_{align.removeprefix('local_')}")
    if window is not None:
        options = _with_window(kind, options, window)
    model["attention_options"] = options


def renamed(model: dict[str, Any]) -> dict[str, Any]:
    """``model`` (a ``config.model`` dict read from JSON) in today's fields, in place."""
    for old, new in FIELDS.items():
        if old in model and new not in model:
            value = model.pop(old)
            model[new] = VALUES.get((new, value), value)
    old_rnn = {"score", "align", "window"} & model.keys() or model.get("attention") in (
        "bahdanau",
        "none",
    )
    if model.get("name") == "rnn" and old_rnn:
        _rnn(model)
    window = model.pop("window", None) if model.get("name") == "transformer" else None
    for role in TRANSFORMER_ROLES:
        if role in model and f"{role}_options" not in model:
            model[f"{role}_options"] = (
                {} if window is None else _with_window(model[role], {}, window)
            )
    for key in [k for k in model if k.endswith("attention")]:
        if model[key] is not None:
            options = dict(model.get(f"{key}_options") or {})
            model[key], model[f"{key}_options"] = presets.renamed_options(model[key], options)
    return model
