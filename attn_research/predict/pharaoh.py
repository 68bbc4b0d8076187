"""Word alignments as Pharaoh text: ``i-j`` links, source word i to target word j, 0-based, as
fast_align, fairseq (``--print-alignment``) and OpenNMT (``-report_align``) print them."""

from __future__ import annotations

from collections.abc import Iterable

from attn_research.evaluation import gold_alignments
from attn_research.predict.translator import Translation

SEPARATOR = " ||| "


def format_links(links: Iterable[tuple[int, int]]) -> str:
    """``{(0, 0), (2, 1)}`` -> ``'0-0 2-1'`` (sorted)."""
    return " ".join(f"{i}-{j}" for i, j in sorted(links))


def parse_links(text: str) -> set[tuple[int, int]]:
    """``'0-0 2-1'`` -> ``{(0, 0), (2, 1)}``.

    Raises:
      ValueError: naming a link that is not ``i-j`` of two non-negative integers.
    """
    sure, possible = gold_alignments.parse_pharaoh(text)
    if possible:
        raise ValueError(f"{text!r} marks Possible links; plain Pharaoh links are i-j")
    return sure


def output_line(translation: Translation, alignments: bool) -> str:
    """The translation, with ``' ||| '`` and its links if `alignments` (none for a model
    without attention)."""
    if not alignments:
        return translation.text
    return translation.text + SEPARATOR + format_links(translation.alignment or ())
