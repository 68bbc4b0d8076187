"""ListOps (Nangia & Bowman 2018), as generated for the Long Range Arena (Tay et al. 2020).

A prefix expression over the digits 0-9 and four operators, labelled by its value:

    [MAX 2 9 [MIN 4 7 ] 0 ]                -> 9
    [SM [MED 3 8 1 ] 5 ]                    -> 8     (SM: sum mod 10)

Drawn as LRA's ``listops.py`` draws it: below ``max_depth`` a node is an operator with
probability ``VALUE_P`` and 2..``max_args`` arguments; trees whose token count lies outside
``[min_len, max_len]`` are redrawn. ``MED`` is ``int(numpy.median(args))``
(``MED 2 5`` = 3). Example ``i`` draws from ``numpy.random.default_rng((seed, split, i))``;
``split`` gives token ids (``TOKENS``, 0 = padding) padded to ``max_len``, cached.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os

import numpy as np

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
# Token ids: 0 is padding, then the digits, the operators and the closing bracket.
TOKENS = ("<pad>", *(str(d) for d in range(10)), *OPERATORS, END)
TOKEN_IDS = {token: i for i, token in enumerate(TOKENS)}
VALUE_P = 0.25  # LRA's probability of an operator below max_depth.
NUM_CLASSES = 10
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a ListOps set is drawn from; LRA's: depth 10, 10 arguments, 500-2000 tokens."""

    max_depth: int = 10
    max_args: int = 10
    min_len: int = 500
    max_len: int = 2000

    def check(self, field: str) -> None:
        """Raises ValueError naming ``field.<attribute>`` for a spec that cannot be drawn."""
        if self.max_depth < 1:
            raise ValueError(f"{field}.max_depth: must be >= 1, got {self.max_depth}")
        if self.max_args < 2:
            raise ValueError(f"{field}.max_args: must be >= 2, got {self.max_args}")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(
                f"{field}.min_len: needs 1 <= min_len <= max_len, got {self.min_len} and "
                f"{self.max_len}"
            )


def _apply(operator: str, args: list[int]) -> int:
    if operator == "[MIN":
        return min(args)
    if operator == "[MAX":
        return max(args)
    if operator == "[MED":
        return int(np.median(args))
    return sum(args) % 10


class _TooLong(Exception):
    """A tree outgrew ``max_len``: drawn again without being finished."""


def _tree(rng: np.random.Generator, depth: int, spec: Spec, out: list[str]) -> int:
    """Appends one subtree's tokens to ``out`` and returns its value (``_TooLong`` past
    ``max_len`` tokens)."""
    if len(out) >= spec.max_len:
        raise _TooLong
    if depth >= spec.max_depth or rng.random() > VALUE_P:
        digit = int(rng.integers(10))
        out.append(str(digit))
        return digit
    operator = OPERATORS[rng.integers(len(OPERATORS))]
    out.append(operator)
    args = [_tree(rng, depth + 1, spec, out) for _ in range(rng.integers(2, spec.max_args + 1))]
    out.append(END)
    return _apply(operator, args)


def example(spec: Spec, seed: int, split: str, index: int) -> tuple[list[str], int]:
    """The tokens and value of example ``index`` of ``split``."""
    rng = np.random.default_rng((seed, SPLITS.index(split), index))
    while True:
        tokens: list[str] = []
        try:
            value = _tree(rng, 1, spec, tokens)
        except _TooLong:
            continue
        if spec.min_len <= len(tokens) <= spec.max_len:
            return tokens, value


def encode(tokens: list[str], length: int) -> np.ndarray:
    """Token ids ``int8 [length]``, padded with 0."""
    ids = np.zeros(length, np.int8)
    ids[: len(tokens)] = [TOKEN_IDS[t] for t in tokens]
    return ids


@functools.lru_cache(maxsize=8)
def split(
    spec: Spec, seed: int, name: str, size: int, cache_dir: str = ""
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(tokens int8 [size, max_len], lengths int32 [size], labels int32 [size])``."""
    path = ""
    if cache_dir:
        key = hashlib.sha1(repr((spec, seed, name, size)).encode()).hexdigest()[:12]
        path = os.path.join(cache_dir, f"listops_{name}_{size}_{key}.npz")
        if os.path.isfile(path):
            with np.load(path) as cached:
                return cached["tokens"], cached["lengths"], cached["labels"]
    examples = [example(spec, seed, name, i) for i in range(size)]
    tokens = np.stack([encode(t, spec.max_len) for t, _ in examples])
    lengths = np.array([len(t) for t, _ in examples], np.int32)
    labels = np.array([v for _, v in examples], np.int32)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(temporary, tokens=tokens, lengths=lengths, labels=labels)
        os.replace(temporary, path)
    return tokens, lengths, labels
