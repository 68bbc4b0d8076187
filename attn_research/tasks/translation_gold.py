"""The translation evaluation's gold set (``config.decode.gold_*``; empty: off): hand-aligned
pairs teacher-forced as the predictor's forced alignment reads them, linked by the read-out
``decode.gold_method`` (default ``argmax_target``), scored (Och & Ney 2003) as ``aer_gold``,
``precision_gold``, ``recall_gold`` (map ``decode.alignment_layer``) and ``<metric>/<map>`` for
every map.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import flax.linen as nn
import ml_collections

from attn_research.data import text_files
from attn_research.data import tokenizer as tokenizer_lib
from attn_research.evaluation import alignment, alignment_readouts, gold_alignments
from attn_research.tasks import translation_attention

FIELDS = ("gold_source", "gold_target", "gold_links")


@dataclasses.dataclass(frozen=True)
class GoldSet:
    """The encoded pairs (those with words on both sides) and their gold links."""

    sources: list[translation_attention.Sentence]
    targets: list[translation_attention.Sentence]
    gold: gold_alignments.Gold


def _read(
    decode: ml_collections.ConfigDict,
) -> tuple[list[str], list[str], gold_alignments.Gold] | None:
    """The gold set's sentences and links, or None if `decode` names none; ValueError naming
    the field if it is named in part, a file is missing, sides differ or links do not read."""
    paths = {field: decode.get(field, "") for field in FIELDS}
    if not any(paths.values()):
        return None
    for field, path in paths.items():
        if not path:
            raise ValueError(f"config.decode.{field}: empty, but {FIELDS} go together")
        if not os.path.isfile(path):
            raise ValueError(f"config.decode.{field}: {path} does not exist")
    sources = text_files.read_lines(paths["gold_source"])
    targets = text_files.read_lines(paths["gold_target"])
    if len(sources) != len(targets):
        raise ValueError(
            f"config.decode.gold_target: {len(targets)} lines, but gold_source has {len(sources)}"
        )
    try:
        return sources, targets, _gold(decode, sources, targets)
    except ValueError as error:
        raise ValueError(f"config.decode.gold_links: {error}") from None


def check(decode: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the field if the gold set is named in part or its files are
    missing, its sides differ in length, its links do not read (`_read`), or its read-out is
    unknown."""
    try:
        alignment_readouts.readout(_method(decode))
    except ValueError as error:
        raise ValueError(f"config.decode.gold_method: {error}") from None
    _read(decode)


def _method(decode: ml_collections.ConfigDict) -> str:
    return decode.get("gold_method", "argmax_target")


def _gold(decode: ml_collections.ConfigDict, sources: list[str], targets: list[str]):
    lengths = [(len(s.split()), len(t.split())) for s, t in zip(sources, targets)]
    return gold_alignments.read(
        decode.gold_links,
        decode.get("gold_format", "pharaoh"),
        lengths,
        reverse=decode.get("gold_reverse", False),
    )


def load(
    decode: ml_collections.ConfigDict, tokenizer: tokenizer_lib.Tokenizer, model: nn.Module
) -> GoldSet | None:
    """The checked gold set of `decode` (or None); ValueError naming the field and pair for a
    pair longer than the model's ``length_limit``."""
    read = _read(decode)
    if read is None:
        return None
    sources, targets, gold = read
    encoded = [
        (translation_attention.encode(tokenizer, s), translation_attention.encode(tokenizer, t))
        for s, t in zip(sources, targets)
    ]
    try:
        translation_attention.check_lengths(model, [s for s, _ in encoded], [t for _, t in encoded])
    except ValueError as error:
        raise ValueError(f"config.decode.gold_source: {error}") from None
    kept = [i for i, (s, t) in enumerate(encoded) if s.words and t.words]
    return GoldSet(
        [encoded[i][0] for i in kept],
        [encoded[i][1] for i in kept],
        gold_alignments.Gold(
            tuple(gold.sure[i] for i in kept), tuple(gold.possible[i] for i in kept)
        ),
    )


def metrics(
    gold_set: GoldSet, model: nn.Module, params: Any, decode: ml_collections.ConfigDict
) -> dict[str, float]:
    """The metrics of the module doc, on the current params."""
    if not gold_set.sources:
        return {}
    attentions = translation_attention.pair_views(
        model, params, gold_set.sources, gold_set.targets, decode.batch_size
    )
    names = list(attentions[0].views)
    method = _method(decode)
    out = {}
    for index, name in enumerate(names):
        links = alignment_readouts.read(
            method,
            attentions,
            alignment_readouts.Selection((index,)),
            alignment_readouts.THRESHOLD,
        )
        scores = alignment.score(links, gold_set.gold.sure, gold_set.gold.possible).as_dict()
        for key, value in scores.items():
            out[f"{key}_gold/{name}"] = value
            if index == decode.alignment_layer % len(names):
                out[f"{key}_gold"] = value
    return out
