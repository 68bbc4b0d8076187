"""Word links of a parallel corpus from the statistical aligner eflomal, run once and cached.

eflomal (Östling & Tiedemann 2016, "Efficient word alignment with Markov Chain Monte Carlo")
aligns both directions; they are symmetrized with grow-diag-final-and (Koehn et al. 2005;
``data.symmetrize``): start from the intersection, add neighbouring links (diagonals
included) of the union whose source or target word is unaligned, then links of each direction
whose words are both unaligned.

A translator's words are whitespace tokens, punctuation attached; the aligner sees each split
into `tokenize`'s tokens (as the Europarl gold sets are), and a link between tokens links the
words that hold them. eflomal takes no seed, so `load_or_align` keeps one run's links in a file.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Sequence

import eflomal
import numpy as np

from attn_research.data.symmetrize import Links, grow_diag_final_and

# A token: an apostrophe and letters after a letter (a clitic: 's, 't, 'm), a run of letters and
# digits, or one other visible character (punctuation, symbols).
_TOKEN = re.compile(r"(?<=\w)['’]\w+|\w+|[^\w\s]")
# What `load_or_align` runs; part of its cache key, so a change here is a new cache file.
SETTINGS = ("eflomal", "model=3", "grow-diag-final-and", _TOKEN.pattern)


def tokenize(text: str) -> tuple[list[str], list[int]]:
    """The tokens of `text` (lowercased; a run of letters and digits, an apostrophe with the letters
    after it inside a word, or any other single character) and each one's whitespace word.

    >>> tokenize("Don't go, Tom!")
    (['don', "'t", 'go', ',', 'tom', '!'], [0, 0, 1, 1, 2, 2])
    """
    tokens, words = [], []
    for index, word in enumerate(text.split()):
        pieces = _TOKEN.findall(word.lower())
        tokens += pieces
        words += [index] * len(pieces)
    return tokens, words


def _parse_pharaoh(lines: Sequence[str]) -> list[Links]:
    return [{tuple(int(x) for x in link.split("-")) for link in line.split()} for line in lines]


def _align_directions(
    sources: Sequence[Sequence[str]],
    targets: Sequence[Sequence[str]],
    priors: Sequence[str] | None,
) -> tuple[list[str], list[str]]:
    """eflomal's Pharaoh link lines of each direction, with the lines of a priors file or none.

    Raises:
      ValueError: if the sides differ in length or a pair has an empty side.
    """
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} source sentences but {len(targets)} target sentences")
    for i, (source, target) in enumerate(zip(sources, targets)):
        if not source or not target:
            raise ValueError(f"pair {i}: an empty side cannot be aligned ({source!r}, {target!r})")
    with tempfile.TemporaryDirectory() as tmp:
        forward, reverse = os.path.join(tmp, "forward"), os.path.join(tmp, "reverse")
        eflomal.Aligner(model=3).align(
            [" ".join(s) + "\n" for s in sources],
            [" ".join(t) + "\n" for t in targets],
            links_filename_fwd=forward,
            links_filename_rev=reverse,
            priors_input=priors,
        )
        with open(forward, encoding="utf-8") as f, open(reverse, encoding="utf-8") as r:
            return f.read().splitlines(), r.read().splitlines()


def align_tokens(
    sources: Sequence[Sequence[str]],
    targets: Sequence[Sequence[str]],
    priors: Sequence[str] | None = None,
) -> list[Links]:
    """eflomal's symmetrized (source token, target token) links of each tokenized pair; with
    `priors` (`make_priors`'s lines), its counts start from another corpus's links.

    Raises:
      ValueError: if the sides differ in length or a pair has an empty side.
    """
    forward, reverse = _align_directions(sources, targets, priors)
    return [
        grow_diag_final_and(f, r) for f, r in zip(_parse_pharaoh(forward), _parse_pharaoh(reverse))
    ]


def make_priors(sources: Sequence[Sequence[str]], targets: Sequence[Sequence[str]]) -> list[str]:
    """The lines of an eflomal priors file (its ``eflomal-makepriors``) from its links of the
    tokenized pairs: counts of linked token pairs, of each direction's HMM jumps and of
    fertilities. `align_tokens` with them aligns new pairs as if after these.

    Raises:
      ValueError: if the sides differ in length or a pair has an empty side.
    """
    forward, reverse = _align_directions(sources, targets, None)
    counts = eflomal.calculate_priors(
        [" ".join(s) for s in sources], [" ".join(t) for t in targets], forward, reverse
    )
    buffer = io.StringIO()
    eflomal.write_priors(buffer, *counts)
    return buffer.getvalue().splitlines(keepends=True)


def align_words(sources: Sequence[str], targets: Sequence[str]) -> list[Links]:
    """(source word, target word) links of each pair of raw texts, words being whitespace
    tokens: eflomal aligns their `tokenize` tokens (see module doc)."""
    source_split, target_split = [tokenize(s) for s in sources], [tokenize(t) for t in targets]
    token_links = align_tokens([s for s, _ in source_split], [t for t, _ in target_split])
    return [
        {(source_words[i], target_words[j]) for i, j in links}
        for links, (_, source_words), (_, target_words) in zip(
            token_links, source_split, target_split
        )
    ]


def save(path: str, links: Sequence[Links]) -> None:
    """Writes the links of every pair to `path` (an ``.npz``, atomically)."""
    flat = [sorted(pair) for pair in links]
    offsets = np.cumsum([0] + [len(pair) for pair in flat])
    pairs = np.asarray([link for pair in flat for link in pair], np.int32).reshape(-1, 2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez(tmp, links=pairs, offsets=offsets)
    os.replace(tmp, path)


def load(path: str) -> list[Links]:
    """The links that `save` wrote to `path`."""
    with np.load(path) as stored:
        pairs, offsets = stored["links"], stored["offsets"]
    return [
        {(int(i), int(j)) for i, j in pairs[start:end]}
        for start, end in zip(offsets[:-1], offsets[1:])
    ]


def load_or_align(path: str, sources: Sequence[str], targets: Sequence[str]) -> list[Links]:
    """The word links of the pairs, read from `path`, or aligned by `align_words` and saved there.

    Raises:
      ValueError: if the file at `path` holds links of a different number of pairs.
    """
    if os.path.isfile(path):
        links = load(path)
        if len(links) != len(sources):
            raise ValueError(
                f"word links {path!r} hold {len(links)} pairs, the corpus has {len(sources)}: "
                "the file belongs to another corpus; delete it to align this one"
            )
        return links
    links = align_words(sources, targets)
    save(path, links)
    return links
