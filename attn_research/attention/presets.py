"""Attention kinds by name: presets of positions x score x kernel that configs select.

    dot_product = global x dot x auto                (Vaswani et al. 2017)
    local       = window x dot x auto, window 8      (Beltagy et al. 2020)
    local_2d    = window_2d x dot x auto, window 3   (Ramachandran et al. 2019)
    additive    = global x additive x auto           (Bahdanau et al. 2014)
    luong       = global x dot(scale 1) x auto, window 10 for local_m / local_p (Luong et al. 2015)

A kind's options go to every axis that declares them; ``positions=``, ``score=`` and
``kernel=`` replace an axis (``resolve("luong", {"score": "general", "positions":
"local_p"})``). An option that no chosen axis takes is refused by name.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from flax.core import FrozenDict

from attn_research.attention import kernels, positions, scores
from attn_research.attention.compose import Attention
from attn_research.attention.registry import Registry

AXES = ("positions", "score", "kernel")
RECURRENCES = ("bahdanau", "luong")


@dataclasses.dataclass(frozen=True)
class Kind:
    """A named preset: its paper, the default of each axis, option defaults, and its
    ``recurrence`` in an RNN decoder: ``"bahdanau"`` attends from ``s_{i-1}`` and feeds ``c_i``
    into the cell (Bahdanau et al. 2014); ``"luong"`` attends from the new ``h_t`` and feeds
    ``tanh(W_c [c_t; h_t])`` back (input feeding; Luong et al. 2015).
    """

    name: str
    paper: str
    positions: str = "global"
    score: str = "dot"
    kernel: str = "auto"
    defaults: Mapping[str, Any] = FrozenDict()
    recurrence: str = "luong"

    def __post_init__(self) -> None:
        if self.recurrence not in RECURRENCES:
            raise ValueError(f"kind {self.name!r}: recurrence must be one of {RECURRENCES}")


@dataclasses.dataclass(frozen=True)
class Spec:
    """A resolved attention: a positions rule, a score and a kernel, with their options; frozen
    and hashable, so that a module holds it as a field."""

    positions: positions.Rule
    score: str
    score_options: FrozenDict
    kernel: str
    kernel_options: FrozenDict
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

# Axis name -> its registry.
_REGISTRIES = {"positions": positions.RULES, "score": scores.SCORES, "kernel": kernels.KERNELS}


def _chosen(kind: str, options: Mapping[str, Any]) -> dict[str, str]:
    preset = get(kind)
    return {axis: options.get(axis, getattr(preset, axis)) for axis in AXES}


def takes(kind: str, options: Mapping[str, Any] = FrozenDict()) -> frozenset[str]:
    """The options that kind ``kind`` takes with the axes that ``options`` choose."""
    chosen = _chosen(kind, options)
    declared = (_REGISTRIES[axis].options(chosen[axis]) for axis in AXES)
    return frozenset({"precision", *AXES, *(option for d in declared for option in d)})


def _frozen(value: Any) -> Any:
    """Lists (from JSON) as tuples, so that a Spec hashes."""
    return tuple(_frozen(x) for x in value) if isinstance(value, (list, tuple)) else value


def resolve(kind: str, options: Mapping[str, Any] = FrozenDict()) -> Spec:
    """The ``Spec`` of kind ``kind`` with ``options``; ValueError naming a bad option."""
    preset = get(kind)
    given = {key: _frozen(value) for key, value in options.items()}
    chosen = _chosen(kind, given)
    for axis in AXES:
        _REGISTRIES[axis].entry(chosen[axis])  # an unknown name, named
        given.pop(axis, None)
    precision = given.pop("precision", None)
    taken = {axis: _REGISTRIES[axis].options(chosen[axis]) for axis in AXES}
    routed: dict[str, dict[str, Any]] = {axis: {} for axis in AXES}
    for key, value in {**preset.defaults, **given}.items():
        homes = [axis for axis in AXES if key in taken[axis]]
        if not homes and key in given:
            raise ValueError(
                f"attention {kind!r} ({' x '.join(chosen[a] for a in AXES)}) does not take "
                f"option {key!r}; it takes {sorted(takes(kind, chosen))}"
            )
        for axis in homes:
            routed[axis][key] = value
    for key in positions.RULES.required(chosen["positions"]):
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


# Names that saved configs may hold for a positions rule or kernel: old -> (new, its options).
RENAMED: Mapping[str, tuple[str, Mapping[str, Any]]] = FrozenDict(
    luong_local_m=("local_m", FrozenDict()),
    luong_local_p=("local_p", FrozenDict()),
    blocked=("band", FrozenDict()),
    looped=("band", FrozenDict(loop=True)),
)


def renamed_options(kind: str, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(kind, options)`` of a saved config in the registries' names: old positions and kernel
    names (``RENAMED``), and luong's ``align`` option as its ``positions``."""
    options = dict(options)
    if "align" in options and kind == "luong":
        options["positions"] = options.pop("align")
    for axis in ("positions", "kernel"):
        if options.get(axis) in RENAMED:
            new, implied = RENAMED[options[axis]]
            options = {**implied, **options, axis: new}
    return kind, options


register(Kind("dot_product", "Vaswani et al. 2017"))
register(Kind("local", "Beltagy et al. 2020", positions="window", defaults=FrozenDict(window=8)))
register(
    Kind(
        "local_2d",
        "Ramachandran et al. 2019",
        positions="window_2d",
        defaults=FrozenDict(window=3),
    )
)
register(Kind("additive", "Bahdanau et al. 2014", score="additive", recurrence="bahdanau"))
register(Kind("luong", "Luong et al. 2015", defaults=FrozenDict(scale=1.0, window=10)))
