"""Symmetrization of two word alignments ``{(source word i, target word j)}`` of the same pairs,
one per translation direction (`SYMMETRIZATIONS`):

- ``intersection``: A_fwd ∩ A_rev;
- ``union``: A_fwd ∪ A_rev;
- ``grow_diag_final_and``: Koehn et al. 2005 (Moses' ``symal -alignment=grow -diagonal=yes
  -final=yes -both=yes``).
"""

from __future__ import annotations

from collections.abc import Callable

Links = set[tuple[int, int]]  # {(source word i, target word j)}

# The eight neighbours of a point, (source offset, target offset): the block, then diagonals.
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def intersection(forward: Links, reverse: Links) -> Links:
    return set(forward) & set(reverse)


def union(forward: Links, reverse: Links) -> Links:
    return set(forward) | set(reverse)


def grow_diag_final_and(forward: Links, reverse: Links) -> Links:
    """Koehn et al.'s grow-diag-final-and, step for step as published:

        alignment = intersect(fwd, rev); GROW-DIAG(); FINAL-AND(fwd); FINAL-AND(rev)
        GROW-DIAG: repeat until no point is added:
          for source word i, for target word j (ascending), if (i, j) in alignment:
            for each neighbour (i', j') of (i, j):
              if (i' unaligned or j' unaligned) and (i', j') in union: add (i', j')
        FINAL-AND(a): for source word i, for target word j (ascending):
          if i unaligned and j unaligned and (i, j) in a: add (i, j)

    A point added during a sweep counts at once (for "unaligned" and as a grown point later
    in the same sweep), as in the published pseudo-code.
    """
    both = union(forward, reverse)
    alignment = intersection(forward, reverse)
    sources = {i for i, _ in alignment}
    targets = {j for _, j in alignment}
    words = sorted(both)
    n_source = max((i for i, _ in words), default=-1) + 1
    n_target = max((j for _, j in words), default=-1) + 1

    def add(i: int, j: int) -> None:
        alignment.add((i, j))
        sources.add(i)
        targets.add(j)

    grew = True
    while grew:
        grew = False
        for i in range(n_source):
            for j in range(n_target):
                if (i, j) not in alignment:
                    continue
                for di, dj in _NEIGHBOURS:
                    point = (i + di, j + dj)
                    if point in alignment or point not in both:
                        continue
                    if point[0] not in sources or point[1] not in targets:
                        add(*point)
                        grew = True
    for links in (forward, reverse):
        for i in range(n_source):
            for j in range(n_target):
                if (i, j) in links and i not in sources and j not in targets:
                    add(i, j)
    return alignment


SYMMETRIZATIONS: dict[str, Callable[[Links, Links], Links]] = {
    "intersection": intersection,
    "union": union,
    "grow_diag_final_and": grow_diag_final_and,
}
