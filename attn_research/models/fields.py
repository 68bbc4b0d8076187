"""Models built from ``config.model``: each model checks its own fields when constructed
(``__post_init__``), before anything is traced; `build` adds that every key is a field the
config may set, and names ``config.model.<field>`` in its errors."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
from flax.core import FrozenDict

from attn_research.attention import presets
from attn_research.names import unknown_field_error

# Fields that the program switches (decoding, sown attention maps), never a config.
MODES = ("decode", "sow_weights")


def check_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raises ValueError naming ``field`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{field}: unknown {value!r}; choose one of {choices}")


def check_attention(field: str, kind: str, options: Mapping[str, Any]) -> presets.Spec:
    """The resolved preset ``kind`` with ``options``; a ValueError naming ``field`` if neither
    the kind nor a combination of its axes exists."""
    try:
        return presets.resolve(kind, dict(options))
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None


class Attends:
    """For models with the fields ``attention`` (a preset; None: no attention, where a model
    allows it) and ``attention_options``: their resolved ``spec``, once per model, which every
    attention layer receives."""

    @functools.cached_property
    def spec(self) -> presets.Spec | None:
        if self.attention is None:
            return None
        return check_attention("attention", self.attention, self.attention_options)


def config_fields(cls: type[nn.Module], set_by_task: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields of ``cls`` that a config may set: not flax's, not the program's (``MODES``),
    not those the task sets."""
    skip = {"parent", "name", *MODES, *set_by_task}
    return tuple(f.name for f in dataclasses.fields(cls) if f.init and f.name not in skip)


def build(cls: type[nn.Module], model: Mapping[str, Any], **set_by_task: Any) -> nn.Module:
    """``cls(**set_by_task, **model)`` for ``config.model`` less its ``name`` (dicts as
    FrozenDicts, lists as tuples).

    Raises:
      ValueError: naming ``config.model.<field>``, for a key that is not a field of ``cls``
        (with the closest one) or a value the model refuses.
    """
    known = config_fields(cls, set_by_task)
    kwargs = {}
    for key, value in model.items():
        if key == "name":
            continue
        if key not in known:
            raise unknown_field_error(f"model.{key}", known)
        if isinstance(value, Mapping):
            value = FrozenDict(value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**set_by_task, **kwargs)
    except ValueError as error:
        raise ValueError(f"config.model.{error}") from None
