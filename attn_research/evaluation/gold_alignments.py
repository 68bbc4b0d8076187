"""Gold word alignments written by people: Sure and Possible links ``(i, j)``, source word i to
target word j, 0-based, words being whitespace tokens. Formats:

- ``pharaoh``: one line per pair, links ``i-j`` (Sure) and ``i-jp`` or ``i?j`` (Possible), as
  Graça et al. 2008's gold sets and fast_align's ``atools`` write them;
- ``naacl``: the HLT-NAACL 2003 shared task's (Mihalcea & Pedersen 2003), ``sentence i j
  [S|P] [confidence]`` a line, 1-based, S by default, confidence ignored, position 0 (NULL)
  no link.

Possible sets include the Sure links (P ⊇ S, as AER wants); ``reverse`` swaps each link.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from attn_research.evaluation.alignment import Links

FORMATS = ("pharaoh", "naacl")


@dataclasses.dataclass(frozen=True)
class Gold:
    """The gold links of N pairs: ``sure[n] ⊆ possible[n]``."""

    sure: tuple[frozenset[tuple[int, int]], ...]
    possible: tuple[frozenset[tuple[int, int]], ...]

    def __len__(self) -> int:
        return len(self.sure)

    def reversed(self) -> Gold:
        """The same links with source and target swapped."""
        flip = lambda sets: tuple(frozenset((j, i) for i, j in links) for links in sets)
        return Gold(flip(self.sure), flip(self.possible))


def parse_pharaoh(text: str) -> tuple[Links, Links]:
    """``'0-0 1-2p 3?1'`` -> ``(sure {(0, 0)}, possible-only {(1, 2), (3, 1)})``.

    Raises:
      ValueError: naming a link that is not ``i-j``, ``i-jp`` or ``i?j`` of two non-negative
        integers.
    """
    sure, possible = set(), set()
    for link in text.split():
        body, is_possible = (link[:-1], True) if link.endswith("p") else (link, False)
        i, sep, j = body.partition("?" if "?" in body else "-")
        if not (sep and i.isdigit() and j.isdigit()) or (sep == "?" and is_possible):
            raise ValueError(f"{link!r} is not a Pharaoh link i-j, i-jp or i?j")
        (possible if is_possible or sep == "?" else sure).add((int(i), int(j)))
    return sure, possible


def _read_pharaoh(lines: Sequence[str], path: str) -> tuple[list[Links], list[Links]]:
    sure, possible = [], []
    for number, line in enumerate(lines, 1):
        try:
            s, p = parse_pharaoh(line)
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: {error}") from None
        sure.append(s)
        possible.append(p | s)
    return sure, possible


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_naacl(lines: Sequence[str], path: str, pairs: int) -> tuple[list[Links], list[Links]]:
    sure, possible = [set() for _ in range(pairs)], [set() for _ in range(pairs)]
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        kind, rest = "S", fields[3:]
        if rest and rest[0] in ("S", "P"):
            kind, rest = rest[0], rest[1:]
        if not (
            len(fields) >= 3
            and all(f.isdigit() for f in fields[:3])
            and (not rest or (len(rest) == 1 and _is_number(rest[0])))
        ):
            raise ValueError(
                f"{path}, line {number}: {line.strip()!r} is not 'sentence i j [S|P] [confidence]'"
            )
        sentence, i, j = (int(f) for f in fields[:3])
        if not 1 <= sentence <= pairs:
            raise ValueError(
                f"{path}, line {number}: sentence {sentence} is not one of the {pairs} pairs "
                "(sentences are numbered from 1)"
            )
        if i == 0 or j == 0:  # the NULL word: no link
            continue
        link = (i - 1, j - 1)
        possible[sentence - 1].add(link)
        if kind == "S":
            sure[sentence - 1].add(link)
    return sure, possible


def read(path: str, fmt: str, lengths: Sequence[tuple[int, int]], *, reverse: bool = False) -> Gold:
    """The gold links of the pairs whose ``(source words, target words)`` are `lengths`, from `path`
    in format `fmt` (`FORMATS`); `reverse`: the file's links are ``target-source``.

    Raises:
      ValueError: naming the file and line of a malformed link, a Pharaoh file whose line count
        is not the number of pairs, or a link past the end of its sentence.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown gold format {fmt!r}; choose one of {FORMATS}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if fmt == "pharaoh":
        if len(lines) != len(lengths):
            raise ValueError(f"{path} has {len(lines)} lines, for {len(lengths)} sentence pairs")
        sure, possible = _read_pharaoh(lines, path)
    else:
        sure, possible = _read_naacl(lines, path, len(lengths))
    gold = Gold(tuple(map(frozenset, sure)), tuple(map(frozenset, possible)))
    gold = gold.reversed() if reverse else gold
    for n, (links, (sources, targets)) in enumerate(zip(gold.possible, lengths), 1):
        outside = sorted((i, j) for i, j in links if i >= sources or j >= targets)
        if outside:
            i, j = outside[0]
            raise ValueError(
                f"{path}: pair {n} has {sources} source and {targets} target words, but a "
                f"link {i}-{j} (0-based{', reversed' if reverse else ''})"
            )
    return gold
