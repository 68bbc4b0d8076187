"""Parallel corpora by name (`config.data.name`) and the `config.data` fields each reads:

- ``synthetic``: the embedded English -> Spanish-like corpus with gold word alignments
  (`synthetic_parallel`); `num_train`, `num_validation`, `num_test`, `max_clauses`, `seed`.
- ``tsv``: "source<TAB>target[<TAB>more]" per line (Tatoeba's spa.txt); `path`.
- ``parallel``: one file per split and language, line i of each side a pair; `path` is a
  pattern such as ``/data/iwslt/{split}.{lang}`` (only train is required).
- ``tfds``: a TFDS translation dataset `tfds_name` prepared in `data_dir`, read with
  ``tfds.data_source``; `source_lang` / `target_lang` name its features.

`reverse=True` swaps the sides. `join_min` / `join_max` join runs of k consecutive pairs of a
split (k uniform in ``join_min..join_max``, `join_seed`) into one pair (`join_pairs`), after
splitting, so no split's sentence appears in another's. A corpus without validation or test
splits gets them by a seeded shuffle (`split_seed`, `validation_fraction`, `test_fraction`).
`load_corpus` raises a ValueError naming each problem with the input.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Sequence

import ml_collections
import numpy as np

from attn_research.data import synthetic_parallel, text_files

NAMES = ("synthetic", "tsv", "parallel", "tfds")
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Split:
    """Sentence pairs of one split; `alignments[i]` holds gold (source word, target word) links."""

    sources: Sequence[str]
    targets: Sequence[str]
    alignments: Sequence[tuple[tuple[int, int], ...]] | None = None

    def __len__(self) -> int:
        return len(self.sources)


def _check_file(path: str) -> None:
    if not path:
        raise ValueError("config.data.path: required for this corpus, got ''")
    if not os.path.isfile(path):
        raise ValueError(f"config.data.path: file {path!r} does not exist")


def _read_lines(path: str) -> list[str]:
    """The lines of the UTF-8 text file at `path` (`text_files.read_lines`)."""
    _check_file(path)
    return text_files.read_lines(path)


def checked_pairs(
    rows: Iterable[tuple[str, str, str]],
) -> tuple[list[str], list[str]]:
    """``(sources, targets)`` of rows ``(where, source, target)`` (`where`: ``file:line``), both
    sides stripped; a blank row is skipped, a row with one side empty is refused.

    Raises:
      ValueError: ``<where>: the source|target sentence is empty ...``.
    """
    sources, targets = [], []
    for where, source, target in rows:
        source, target = source.strip(), target.strip()
        if not source and not target:
            continue
        if not source or not target:
            side, other = ("source", target) if not source else ("target", source)
            raise ValueError(
                f"{where}: the {side} sentence is empty, the other side reads "
                f"{other[:60]!r}; fix or delete the pair"
            )
        sources.append(source)
        targets.append(target)
    return sources, targets


def read_tsv(path: str) -> tuple[list[str], list[str]]:
    """(first column, second column) of every non-blank line; extra columns are ignored.
    Pairs follow `checked_pairs`."""

    def rows():
        for number, line in enumerate(_read_lines(path), 1):
            columns = line.split("\t")
            if line.strip() and len(columns) < 2:
                raise ValueError(
                    f"{path}:{number}: malformed line, expected 'source<TAB>target', "
                    f"got {line[:80]!r}"
                )
            yield f"{path}:{number}", columns[0], columns[1] if len(columns) > 1 else ""

    sources, targets = checked_pairs(rows())
    if not sources:
        raise ValueError(f"{path}: empty corpus, no 'source<TAB>target' lines")
    return sources, targets


def _read_parallel(
    pattern: str, split: str, source_lang: str, target_lang: str
) -> tuple[list[str], list[str]] | None:
    """The pairs of one split, or None if its files do not exist (only train is required).
    Line i of each file is a pair, following `checked_pairs`."""
    paths = [pattern.format(split=split, lang=lang) for lang in (source_lang, target_lang)]
    if split != "train" and not all(os.path.isfile(p) for p in paths):
        return None
    sources, targets = (_read_lines(p) for p in paths)
    if len(sources) != len(targets):
        raise ValueError(
            f"{paths[0]} has {len(sources)} lines but {paths[1]} has "
            f"{len(targets)}; parallel files must have one sentence per line each"
        )
    sources, targets = checked_pairs(
        (f"{paths[0]}:{i} and {paths[1]}:{i}", s, t)
        for i, (s, t) in enumerate(zip(sources, targets), 1)
    )
    if not sources:
        raise ValueError(f"{paths[0]}: empty corpus")
    return sources, targets


def split_pairs(
    sources: Sequence[str],
    targets: Sequence[str],
    seed: int,
    validation_fraction: float,
    test_fraction: float,
    alignments: Sequence | None = None,
) -> dict[str, Split]:
    """A deterministic shuffled train / validation / test split of one list of pairs."""
    n = len(sources)
    order = np.random.default_rng(seed).permutation(n)
    n_valid, n_test = (
        max(1, int(round(f * n))) if f > 0 else 0 for f in (validation_fraction, test_fraction)
    )
    if n_valid + n_test >= n:
        raise ValueError(f"corpus of {n} pairs is too small for the validation and test splits")
    parts = {
        "validation": order[:n_valid],
        "test": order[n_valid : n_valid + n_test],
        "train": order[n_valid + n_test :],
    }
    return {
        name: Split(
            [sources[i] for i in idx],
            [targets[i] for i in idx],
            None if alignments is None else [alignments[i] for i in idx],
        )
        for name, idx in parts.items()
    }


def join_sizes(n: int, low: int, high: int, seed: int) -> list[int]:
    """Run lengths k_1, k_2, ... (each uniform in ``low..high``) summing to `n`; the last is cut."""
    if not 1 <= low <= high:
        raise ValueError(f"config.data: need 1 <= join_min <= join_max, got {low} and {high}")
    sizes, total = [], 0
    rng = np.random.default_rng(seed)
    while total < n:
        sizes.append(min(int(rng.integers(low, high + 1)), n - total))
        total += sizes[-1]
    return sizes


def join_pairs(split: Split, sizes: Sequence[int]) -> Split:
    """Split whose pair j joins the next `sizes[j]` pairs of `split` (summing to ``len(split)``) by
    spaces; gold links move by the words before their pair."""
    if sum(sizes) != len(split):
        raise ValueError(f"join sizes sum to {sum(sizes)}, not the split's {len(split)} pairs")
    starts = np.cumsum([0, *sizes])
    sources, targets, alignments = [], [], []
    for start, end in zip(starts[:-1], starts[1:]):
        sources.append(" ".join(split.sources[i].strip() for i in range(start, end)))
        targets.append(" ".join(split.targets[i].strip() for i in range(start, end)))
        if split.alignments is not None:
            links, s_off, t_off = [], 0, 0
            for i in range(start, end):
                links += [(s + s_off, t + t_off) for s, t in split.alignments[i]]
                s_off += len(split.sources[i].split())
                t_off += len(split.targets[i].split())
            alignments.append(tuple(links))
    return Split(sources, targets, None if split.alignments is None else alignments)


def _join(splits: dict[str, Split], data: ml_collections.ConfigDict) -> dict[str, Split]:
    """Each split joined on its own (`join_pairs`), with its own seed drawn from `join_seed`."""
    if data.join_min == data.join_max == 1:
        return splits
    return {
        name: join_pairs(
            split,
            join_sizes(
                len(split), data.join_min, data.join_max, data.join_seed * 3 + SPLITS.index(name)
            ),
        )
        for name, split in splits.items()
    }


def _synthetic(data: ml_collections.ConfigDict) -> dict[str, Split]:
    splits = {}
    for offset, name in enumerate(SPLITS):
        pairs = synthetic_parallel.generate(
            data[f"num_{name}"], data.seed * 3 + offset, data.max_clauses
        )
        splits[name] = Split(
            [p.source for p in pairs], [p.target for p in pairs], [p.alignment for p in pairs]
        )
    return splits


class _TfdsSide(Sequence[str]):
    """One language of a TFDS data source, decoded lazily (sources can be millions long)."""

    def __init__(self, source: Sequence[dict], feature: str):
        self._source, self._feature = source, feature

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        value = self._source[index][self._feature]
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _tfds(data: ml_collections.ConfigDict) -> dict[str, Split]:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    if not data.tfds_name:
        raise ValueError("config.data.tfds_name: required for data.name='tfds'")
    try:
        builder = tfds.builder(data.tfds_name, data_dir=data.data_dir or None)
    except Exception as e:  # TFDS raises its own DatasetNotFoundError and friends.
        raise ValueError(
            f"config.data.tfds_name: unknown or unreadable TFDS dataset "
            f"{data.tfds_name!r}: {str(e).splitlines()[0]}"
        ) from None
    keys = builder.info.supervised_keys or ()
    source_lang = data.source_lang or (keys[0] if keys else "")
    target_lang = data.target_lang or (keys[1] if keys else "")
    features = tuple(builder.info.features.keys()) if builder.info.features else ()
    for field, lang in (("source_lang", source_lang), ("target_lang", target_lang)):
        if not lang or (features and lang not in features):
            raise ValueError(
                f"config.data.{field}: {lang!r} is not a feature of "
                f"{data.tfds_name} (features: {features})"
            )
    splits = {}
    for name in SPLITS:
        try:
            source = tfds.data_source(data.tfds_name, split=name, data_dir=data.data_dir or None)
        except Exception as e:
            if name == "train":
                raise ValueError(
                    f"config.data.tfds_name: cannot read {data.tfds_name!r} "
                    f"split 'train' (is it prepared in data_dir?): "
                    f"{str(e).splitlines()[0]}"
                ) from None
            continue
        splits[name] = Split(_TfdsSide(source, source_lang), _TfdsSide(source, target_lang))
    return splits


def _complete(splits: dict[str, Split], data: ml_collections.ConfigDict) -> dict[str, Split]:
    """Adds missing validation / test splits by splitting train deterministically."""
    if all(name in splits for name in SPLITS):
        return splits
    train = splits["train"]
    fractions = [
        0.0 if name in splits else data[f"{name}_fraction"] for name in ("validation", "test")
    ]
    made = split_pairs(train.sources, train.targets, data.split_seed, *fractions, train.alignments)
    return {
        name: splits.get(name, made[name]) if name != "train" else made["train"] for name in SPLITS
    }


def _reverse(split: Split) -> Split:
    alignments = (
        None
        if split.alignments is None
        else [tuple(sorted((t, s) for s, t in links)) for links in split.alignments]
    )
    return Split(split.targets, split.sources, alignments)


def corpus_key(data: ml_collections.ConfigDict) -> tuple:
    """The fields of `config.data` that determine the corpus (a hashable cache key)."""
    fields = (
        "name",
        "path",
        "tfds_name",
        "data_dir",
        "source_lang",
        "target_lang",
        "reverse",
        "seed",
        "num_train",
        "num_validation",
        "num_test",
        "max_clauses",
        "split_seed",
        "validation_fraction",
        "test_fraction",
        "join_min",
        "join_max",
        "join_seed",
    )
    return tuple((f, data[f]) for f in fields)


@functools.lru_cache(maxsize=8)
def _load(key: tuple) -> dict[str, Split]:
    data = ml_collections.ConfigDict(dict(key))
    if data.name == "synthetic":
        splits = _synthetic(data)
    elif data.name == "tsv":
        sources, targets = read_tsv(data.path)
        splits = {"train": Split(sources, targets)}
    elif data.name == "parallel":
        if "{split}" not in data.path or "{lang}" not in data.path:
            raise ValueError(
                f"config.data.path: a parallel corpus needs a pattern with {{split}} "
                f"and {{lang}}, e.g. '/data/{{split}}.{{lang}}', got {data.path!r}"
            )
        pairs = {
            s: _read_parallel(data.path, s, data.source_lang, data.target_lang) for s in SPLITS
        }
        splits = {s: Split(*p) for s, p in pairs.items() if p is not None}
    elif data.name == "tfds":
        splits = _tfds(data)
    else:
        raise ValueError(f"config.data.name: unknown corpus {data.name!r}; choose one of {NAMES}")
    splits = _join(_complete(splits, data), data)
    for name, split in splits.items():
        if not len(split):
            raise ValueError(f"config.data: split {name!r} of corpus {data.name!r} is empty")
    return {name: _reverse(s) for name, s in splits.items()} if data.reverse else splits


def load_corpus(data: ml_collections.ConfigDict) -> dict[str, Split]:
    """train / validation / test splits of the corpus `data` describes (cached).

    Raises:
      ValueError: naming the config field or file at fault.
    """
    return _load(corpus_key(data))
