"""Attention kinds by name, so a study swaps them with one config key.

A kind is either a pure function ``f(q, k, v, *, mask, ..., return_weights)`` (no parameters of
its own: dot_product, local, local_2d) or a Flax module class whose instances are called the
same way (additive, luong). The options a kind accepts are the keyword parameters of that
function (or of the module's fields and ``__call__``); anything else is refused by name.

To add a kind: write ``attention/<kind>.py`` and add one ``register(Kind(...))`` line in
``attention/__init__.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax

_REGISTRY: dict[str, "Kind"] = {}

# Read-only live view: the names of all registered kinds (iterate it, or test membership).
KINDS: Mapping[str, "Kind"] = types.MappingProxyType(_REGISTRY)

# Arguments every kind's call takes or that the caller always controls.
_CALL_ARGS = ("q", "k", "v", "mask", "return_weights")


@dataclasses.dataclass(frozen=True)
class Kind:
    """A registered attention kind.

    Attributes:
      name: registry key.
      paper: the reference it implements.
      function: pure ``f(q, k, v, **options)`` for kinds without parameters.
      module: ``nn.Module`` class called as ``module(**fields)(q, k, v, **call_options)``.
    """

    name: str
    paper: str
    function: Callable[..., Any] | None = None
    module: type[nn.Module] | None = None

    @property
    def module_fields(self) -> tuple[str, ...]:
        """Options that configure the module (its dataclass fields)."""
        if self.module is None:
            return ()
        return tuple(
            f.name for f in dataclasses.fields(self.module) if f.name not in ("parent", "name")
        )

    @property
    def call_options(self) -> tuple[str, ...]:
        """Keyword options of the call, besides q, k, v, mask and return_weights."""
        call = self.function or self.module.__call__
        params = inspect.signature(call).parameters
        return tuple(p for p in params if p not in (*_CALL_ARGS, "self"))

    def split_options(self, options: Mapping[str, Any]) -> tuple[dict, dict]:
        """``options`` -> ``(module fields, call keywords)``; unknown names raise ValueError."""
        fields, call = {}, {}
        for key, value in options.items():
            if key in self.module_fields:
                fields[key] = value
            elif key in self.call_options:
                call[key] = value
            else:
                accepted = sorted(set(self.module_fields) | set(self.call_options))
                raise ValueError(
                    f"attention kind {self.name!r} does not take option {key!r}; "
                    f"it takes {accepted}"
                )
        return fields, call


def register(kind: Kind) -> Kind:
    """Adds ``kind`` to the registry; a second kind of the same name is an error."""
    if (kind.function is None) == (kind.module is None):
        raise ValueError(f"kind {kind.name!r} needs exactly one of function or module")
    if kind.name in _REGISTRY:
        raise ValueError(f"attention kind {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind
    return kind


def get(name: str) -> Kind:
    """The kind registered as ``name``; ValueError listing the registered kinds otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown attention kind {name!r}; registered kinds: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def call_with_weights(call: Callable[..., Any], q, k, v, **kwargs) -> tuple[Any, Any]:
    """``(out, weights)`` of a kind's ``call``, with ``out`` exactly as without weights.

    The weights come from a second copy of the computation whose inputs pass through
    ``jax.lax.optimization_barrier``, so XLA can neither merge the copies nor fuse the output's
    computation differently because the weights are also wanted (flax's ``sow_weights`` changes
    bf16 outputs that way). Asking for pictures costs one more attention, never a changed result.
    """
    out = call(q, k, v, return_weights=False, **kwargs)
    _, weights = call(*jax.lax.optimization_barrier((q, k, v)), return_weights=True, **kwargs)
    return out, weights
