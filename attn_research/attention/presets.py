"""Attention kinds by name: presets of positions x score x kernel that configs select.

    dot_product = global x dot x auto      (Vaswani et al. 2017)
    local       = window x dot x auto      (sliding window; Beltagy et al. 2020)
    local_2d    = window_2d x dot x auto   (2-D neighbourhood; Ramachandran et al. 2019)
    additive    = global x additive x auto (Bahdanau et al. 2014)
    luong       = global x dot(scale 1) x auto, ``align`` = global | local_m | local_p
                  (Luong et al. 2015)

A kind's options go to the axis that takes them (``window`` to the positions rule, ``scale`` or
``normalize`` to the score, ``block_size`` to the kernel), and ``positions=``, ``score=`` and
``kernel=`` replace an axis: ``resolve("local", {"score": "additive"})`` is additive x window.
An option that no axis takes is refused by name.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Mapping

from flax.core import FrozenDict

from attn_research.attention import compute, positions, scores
from attn_research.attention.compose import Attention
from attn_research.attention.registry import Registry

AXES = ("positions", "score", "kernel")


@dataclasses.dataclass(frozen=True)
class Kind:
    """A named preset.

    Attributes:
      name: registry key, e.g. ``"local"``.
      paper: the reference it implements.
      positions, score, kernel: the default of each axis.
      defaults: option defaults, given to every axis that takes them.
      aliases: ``option -> (axis, {value: axis value})``, e.g. luong's ``align``.
    """

    name: str
    paper: str
    positions: str = "global"
    score: str = "dot"
    kernel: str = "auto"
    defaults: Mapping[str, Any] = FrozenDict()
    aliases: Mapping[str, tuple[str, Mapping[str, str]]] = FrozenDict()
    recurrence: str = "luong"


@dataclasses.dataclass(frozen=True)
class Spec:
    """A resolved attention: a positions rule, a score and a kernel, with their options."""

    positions: positions.Positions
    score: str
    score_options: Mapping[str, Any]
    kernel: str
    kernel_options: Mapping[str, Any]
    precision: Any = None
    recurrence: str = "luong"

    @property
    def has_params(self) -> bool:
        return scores.has_params(self.score, self.score_options) or self.positions.predicts_centre

    def module(self, name: str | None = None) -> Attention:
        return Attention(
            self.positions,
            self.score,
            FrozenDict(self.score_options),
            self.kernel,
            FrozenDict(self.kernel_options),
            self.precision,
            name=name,
        )


# Name -> preset.
KINDS: Registry = Registry("attention kind")


def register(kind: Kind) -> Kind:
    """Adds ``kind``; a second kind of the same name is an error."""
    return KINDS.register(kind.name, kind)


get = KINDS.__getitem__


def _takes(axis: str, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(options, required options)`` of axis value ``name``."""
    if axis == "score":
        fields = dataclasses.fields(scores.get(name))
        return tuple(f.name for f in fields if f.name not in ("parent", "name")), ()
    if axis == "kernel":
        return compute.options_of(name), ()
    params = inspect.signature(positions.factory(name)).parameters.values()
    return tuple(p.name for p in params), tuple(p.name for p in params if p.default is p.empty)


def _chosen(preset: Kind, given: dict[str, Any]) -> dict[str, str]:
    """The axis values that ``given`` selects (popping its alias and axis options)."""
    chosen = {axis: getattr(preset, axis) for axis in AXES}
    for option, (axis, values) in preset.aliases.items():
        if option in given:
            value = given.pop(option)
            if value not in values:
                raise ValueError(
                    f"attention {preset.name!r}: {option} must be one of {sorted(values)}, "
                    f"got {value!r}"
                )
            chosen[axis] = values[value]
    for axis in AXES:
        chosen[axis] = given.pop(axis, chosen[axis])
    return chosen


def applicable(
    kind: str, optional: Mapping[str, Any], given: Mapping[str, Any] = FrozenDict()
) -> dict[str, Any]:
    """``given`` and those of ``optional`` that the attention they select takes: a model's
    generic knobs (``window``) for the kinds that have them."""
    preset = get(kind)
    chosen = _chosen(preset, {**optional, **given})
    taken = {o for axis in AXES for o in _takes(axis, chosen[axis])[0]}
    selectors = {*AXES, *preset.aliases}
    kept = {k: v for k, v in optional.items() if k in taken or k in selectors}
    return {**kept, **given}


def resolve(kind: str, options: Mapping[str, Any] = FrozenDict()) -> Spec:
    """The ``Spec`` of kind ``kind`` with ``options``; ValueError naming a bad option."""
    preset = get(kind)
    given = dict(options)
    chosen = _chosen(preset, given)
    precision = given.pop("precision", None)
    takes = {axis: _takes(axis, chosen[axis]) for axis in AXES}
    routed: dict[str, dict[str, Any]] = {axis: {} for axis in AXES}
    for key, value in {**preset.defaults, **given}.items():
        homes = [axis for axis in AXES if key in takes[axis][0]]
        if not homes and key in given:
            accepted = sorted({"precision", *AXES, *(o for t in takes.values() for o in t[0])})
            raise ValueError(
                f"attention {kind!r} ({' x '.join(chosen[a] for a in AXES)}) does not take "
                f"option {key!r}; it takes {accepted}"
            )
        for axis in homes:
            routed[axis][key] = value
    for key in takes["positions"][1]:
        if key not in routed["positions"]:
            raise ValueError(f"attention {kind!r}: positions {chosen['positions']!r} needs {key}=")
    rule = positions.factory(chosen["positions"])(**routed["positions"])
    scores.get(chosen["score"])(**routed["score"], parent=None)  # its own checks, untraced
    return Spec(
        rule,
        chosen["score"],
        FrozenDict(routed["score"]),
        chosen["kernel"],
        FrozenDict(routed["kernel"]),
        precision,
        preset.recurrence,
    )


register(Kind("dot_product", "Vaswani et al. 2017"))
register(
    Kind(
        "local",
        "sliding window; Beltagy et al. 2020",
        positions="window",
        defaults=FrozenDict(window=8),
    )
)
register(
    Kind(
        "local_2d",
        "2-D neighbourhood; Ramachandran et al. 2019",
        positions="window_2d",
        defaults=FrozenDict(window=3),
    )
)
register(Kind("additive", "Bahdanau et al. 2014", score="additive", recurrence="bahdanau"))
register(
    Kind(
        "luong",
        "Luong et al. 2015",
        defaults=FrozenDict(scale=1.0, window=10),
        aliases=FrozenDict(
            align=(
                "positions",
                {"global": "global", "local_m": "luong_local_m", "local_p": "luong_local_p"},
            )
        ),
    )
)


def renamed_options(kind, options):  # shim until the kernels branch lands
    return kind, dict(options)
