"""Read-outs: word links ``{(source word i, target word j)}`` from word-level attention ``W``.

A pair's attention comes as views (``evaluation.explorer.views``), per map and head,
``[target words, source words]``; row j is the attention that wrote word j, or (Shift-Att) the
one at the step where word j is the decoder's input (`PairAttention`). `READOUTS` names them:

- ``argmax_target``: ``{(argmax_i W[j, i], j)}``;
- ``argmax_source``: ``{(i, argmax_j W[j, i])}``;
- ``threshold``: every pair with ``W[j, i] >= τ``;
- ``shift``: Shift-Att (Chen et al. 2020, "Accurate Word Alignment Induction from Neural
  Machine Translation"), ``argmax_target`` of the shifted rows (`shift_rows`);
- ``shift_source``: ``argmax_source`` of the shifted rows;
- ``mean``: ``argmax_target`` of the mean over the chosen layers and heads (default all).

The others read the evaluation's layer (``config.decode.alignment_layer``), heads averaged,
or the mean of a `Selection`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from attn_research.evaluation.alignment import Links, hard_alignment

Views = Mapping[str, Mapping[str, np.ndarray]]  # {map name: {"average" | "head h": [Wt, Ws]}}


@dataclasses.dataclass(frozen=True)
class PairAttention:
    """One pair's word-level attention, every map and head: `views` row j written word j;
    `shifted` row j is read where word j is the decoder's input (see the module doc)."""

    views: Views
    shifted: Views


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which views a read-out averages: map indices (negative from the end; None: every map)
    and heads (1-based; None: each map's head average)."""

    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None

    def check(self, heads_by_map: Mapping[str, int]) -> None:
        """Raises ValueError naming a layer or head that the maps ``{name: heads}`` lack."""
        names = list(heads_by_map)
        for layer in self.layers or ():
            if not -len(names) <= layer < len(names):
                raise ValueError(f"layer {layer}: the model has {len(names)} maps {names}")
        for name in self._names(names):
            for head in self.heads or ():
                if not 1 <= head <= heads_by_map[name]:
                    raise ValueError(
                        f"head {head}: map {name!r} has heads 1 to {heads_by_map[name]}"
                    )

    def _names(self, names: Sequence[str]) -> list[str]:
        return list(names) if self.layers is None else [names[i] for i in self.layers]

    def matrix(self, views: Views) -> np.ndarray:
        """The mean of the selected views ``[target words, source words]``. A map of one head
        shows only its average, which is its head 1."""
        chosen = []
        for name in self._names(list(views)):
            heads = views[name]
            keys = ["average"] if self.heads is None else [f"head {h}" for h in self.heads]
            chosen += [heads[k if k in heads else "average"] for k in keys]
        return np.mean(chosen, axis=0)

    def label(self, views: Views) -> str:
        """E.g. ``decoder/cross/layer2 head 1+3`` or ``all layers, heads averaged``."""
        layers = "all layers," if self.layers is None else "+".join(self._names(list(views)))
        heads = "heads averaged" if self.heads is None else "head " + "+".join(map(str, self.heads))
        return f"{layers} {heads}"


def argmax_target(weights_TS: np.ndarray) -> Links:
    """Each target word to its most attended source word: ``{(argmax_i W[j, i], j)}``."""
    return hard_alignment(weights_TS) if weights_TS.size else set()


def argmax_source(weights_TS: np.ndarray) -> Links:
    """Each source word to the target word that attends it most: ``{(i, argmax_j W[j, i])}``."""
    if not weights_TS.size:
        return set()
    return {(i, int(j)) for i, j in enumerate(np.argmax(weights_TS, axis=0))}


def threshold(weights_TS: np.ndarray, tau: float) -> Links:
    """Every pair whose weight reaches `tau`: ``{(i, j) : W[j, i] >= τ}``."""
    return {(int(i), int(j)) for j, i in zip(*np.nonzero(weights_TS >= tau))}


def shift_rows(target_words_T: np.ndarray) -> np.ndarray:
    """Shift-Att's word of each decoder step ``[T]`` (-1: none), from each target piece's word
    ``[T]`` (``Tokenizer.word_ids``; -1 at EOS): word j is read at the step after its last
    piece, where that piece is the decoder's input (the last word at the EOS step)."""
    rows = np.full(target_words_T.shape, -1, np.int32)
    for word in np.unique(target_words_T[target_words_T >= 0]):
        last = int(np.flatnonzero(target_words_T == word)[-1])
        if last + 1 < rows.size:
            rows[last + 1] = word
    return rows


THRESHOLD = 0.2  # the default τ of the threshold read-out


@dataclasses.dataclass(frozen=True)
class ReadOut:
    """A named read-out: `links` of the selected matrix and τ; `shifted` reads the shifted
    rows; `pooled` selects every layer and head unless told otherwise
    (``TranslationPredictor.default_selection``)."""

    name: str
    links: Callable[[np.ndarray, float], Links]
    shifted: bool = False
    pooled: bool = False

    def __call__(self, attention: PairAttention, selection: Selection, tau: float) -> Links:
        views = attention.shifted if self.shifted else attention.views
        return self.links(selection.matrix(views), tau) if views else set()


READOUTS: dict[str, ReadOut] = {
    r.name: r
    for r in (
        ReadOut("argmax_target", lambda w, tau: argmax_target(w)),
        ReadOut("argmax_source", lambda w, tau: argmax_source(w)),
        ReadOut("threshold", threshold),
        ReadOut("shift", lambda w, tau: argmax_target(w), shifted=True),
        ReadOut("shift_source", lambda w, tau: argmax_source(w), shifted=True),
        ReadOut("mean", lambda w, tau: argmax_target(w), pooled=True),
    )
}


def readout(method: str) -> ReadOut:
    """Read-out `method`; ValueError naming the known ones if it is not one."""
    if method not in READOUTS:
        raise ValueError(f"unknown method {method!r}; choose one of {tuple(READOUTS)}")
    return READOUTS[method]


def read(
    method: str,
    attentions: Sequence[PairAttention | None],
    selection: Selection,
    tau: float,
) -> list[Links]:
    """The links of read-out `method` for each pair (none for a pair without attention)."""
    readout = READOUTS[method]
    return [set() if a is None else readout(a, selection, tau) for a in attentions]


def grid(
    heads_by_map: Mapping[str, int], pooled: Selection | None = None
) -> list[tuple[str, Selection]]:
    """Every read-out at every map, heads averaged and each head (of maps with several); the
    pooled read-outs once, over `pooled` (default: every layer and head)."""
    out = []
    for name, readout in READOUTS.items():
        if readout.pooled:
            out.append((name, pooled or Selection()))
            continue
        for layer, heads in enumerate(heads_by_map.values()):
            out.append((name, Selection((layer,))))
            out += [(name, Selection((layer,), (h,))) for h in range(1, heads + 1) if heads > 1]
    return out
