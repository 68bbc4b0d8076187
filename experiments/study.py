"""What a study is: a base config and the axes to vary, expanded into points.

A study file under ``experiments/studies/`` defines ``get_study(arg=None) -> Study``; its arg
picks a variant (``small`` runs in minutes on 2 CPU cores, ``full`` is the real experiment).
A study may compare models of several config files: ``config`` then maps names to files and
the axis ``config`` picks one (``{"config": ["vit", "cnn"]}``).

An axis is named either by a key of the config's arg string (``attention`` ->
``translate.py:attention=local``) or by a config field (``config.seed`` ->
``--config.seed=1``). ``grid`` is a union of Cartesian products, so points that only make sense
together (an RNN with Luong scores, a Transformer with local attention) stay together::

    Study(name="kinds", config="experiments/configs/translate.py", fixed="tiny",
          grid=[{"model": ["rnn"], "attention": ["none", "additive"]},
                {"model": ["transformer"], "attention": ["dot_product", "local"]}],
          seeds=[0, 1], metrics=["eval/bleu", "eval/aer"])
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import shlex
import sys
from typing import Any, Mapping, Sequence

SEED_AXIS = "config.seed"


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of a study: a value for every axis."""

    values: tuple[tuple[str, Any], ...]

    @property
    def name(self) -> str:
        """``attention=local,config.seed=1``: the workdir's name, unique within the study."""
        return ",".join(f"{axis}={_text(value)}" for axis, value in self.values)

    @property
    def group(self) -> str:
        """The name without the seed: points that differ only by seed form one group."""
        return ",".join(f"{a}={_text(v)}" for a, v in self.values if a != SEED_AXIS) or "all"


@dataclasses.dataclass(frozen=True)
class Study:
    """A base config, the points to run, and the metrics to tabulate (the first is primary)."""

    name: str
    config: str | Mapping[str, str]
    grid: Sequence[Mapping[str, Sequence[Any]]]
    metrics: Sequence[str]
    fixed: str = ""
    seeds: Sequence[int] = (0,)

    def __post_init__(self):
        if not self.metrics:
            raise ValueError(f"study {self.name!r}: metrics must name at least one eval metric")
        if not re.fullmatch(r"[\w.-]+", self.name):
            raise ValueError(f"study name {self.name!r} must be letters, digits, '_', '.', '-'")

    def points(self) -> list[Point]:
        """Every point of the grid (in order, without duplicates), once per seed."""
        points: list[Point] = []
        for product in self.grid:
            axes = list(product)
            for combo in itertools.product(*(product[a] for a in axes)):
                for seed in self.seeds:
                    point = Point((*zip(axes, combo), (SEED_AXIS, seed)))
                    if point not in points:
                        points.append(point)
        return points

    def command(self, point: Point, workdir: str) -> list[str]:
        """The launch command of ``point`` (argv), writing into ``workdir``."""
        args = [self.fixed] if self.fixed else []
        overrides = []
        config = self.config
        for axis, value in point.values:
            if axis == "config":
                config = self.config[value]
            elif axis.startswith("config."):
                overrides.append(f"--{axis}={_text(value)}")
            else:
                args.append(f"{axis}={_text(value)}")
        if not isinstance(config, str):
            raise ValueError(
                f"study {self.name!r} has several configs: its grid needs a 'config' axis"
            )
        if args:
            config += ":" + ",".join(args)
        return [
            sys.executable,
            "-m",
            "attn_research.main",
            f"--config={config}",
            f"--workdir={workdir}",
            *overrides,
        ]


def parse_variant(study: str, arg: str | None) -> tuple[bool, str]:
    """A shipped study's arg ``small|full[,path=FILE]`` -> ``(small, path)`` (default small)."""
    words = dict(w.partition("=")[::2] for w in (arg or "small").split(",") if w)
    if set(words) - {"small", "full", "path"} or ("small" in words) == ("full" in words):
        raise ValueError(f"{study} takes small|full[,path=FILE], got {arg!r}")
    return "small" in words, words.get("path", "")


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def shell_line(argv: Sequence[str]) -> str:
    """``argv`` as one copy-pasteable shell line."""
    return " ".join(shlex.quote(a) for a in argv)
