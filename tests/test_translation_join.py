"""Joined corpora (`data.join_min` / `join_max`): runs of consecutive pairs become one pair."""

import re

import numpy as np
import pytest

from attn_research.data import translation
from experiments.configs import translate


def _corpus(tmp_path, n: int = 300):
    """A TSV corpus whose pair i has 1-3 words, every word tagged with i ("a7 b7" / "x7 y7")."""
    path = tmp_path / "pairs.txt"
    lines = []
    for i in range(n):
        words = i % 3 + 1
        lines.append(" ".join(f"{c}{i}" for c in "abc"[:words]) + "\t")
        lines[-1] += " ".join(f"{c}{i}" for c in "xyz"[:words]) + "\n"
    path.write_text("".join(lines))
    return path


def _ids(sentence: str) -> list[int]:
    return [int(m) for m in re.findall(r"[a-z](\d+)", sentence)]


def _data(path, join_max: int, join_seed: int = 0, join_min: int = 1):
    config = translate.get_config(f"data=tsv,path={path},join={join_max},tiny")
    config.data.validation_fraction = config.data.test_fraction = 0.1
    config.data.join_min, config.data.join_seed = join_min, join_seed
    return config.data


def test_join_sizes_deterministic_in_range():
    sizes = translation.join_sizes(1000, 1, 5, seed=3)
    assert sizes == translation.join_sizes(1000, 1, 5, seed=3)
    assert sizes != translation.join_sizes(1000, 1, 5, seed=4)
    assert sum(sizes) == 1000 and set(sizes[:-1]) == {1, 2, 3, 4, 5}
    assert translation.join_sizes(10, 3, 3, seed=0) == [3, 3, 3, 1]
    with pytest.raises(ValueError, match="join_min <= join_max"):
        translation.join_sizes(10, 3, 2, seed=0)


def test_join_pairs_words_and_links():
    split = translation.Split(
        ["a b", "c", "d e f"], ["x", "y z", "w"], [((0, 0), (1, 0)), ((0, 1),), ((2, 0),)]
    )
    joined = translation.join_pairs(split, [2, 1])
    assert joined.sources == ["a b c", "d e f"]
    assert joined.targets == ["x y z", "w"]
    # "c" is source word 2 of the first pair, "z" target word 2.
    assert joined.alignments == [((0, 0), (1, 0), (2, 2)), ((2, 0),)]
    with pytest.raises(ValueError, match="sum to 2"):
        translation.join_pairs(split, [1, 1])


def test_join_one_is_the_corpus(tmp_path):
    path = _corpus(tmp_path)
    plain = translation.load_corpus(_data(path, 1))
    assert len(plain["train"]) == 240
    fixed_one = translation.load_corpus(_data(path, 1, join_seed=5))
    for name in translation.SPLITS:
        assert plain[name].sources == fixed_one[name].sources
        assert plain[name].targets == fixed_one[name].targets


def test_join_no_test_sentence_in_train(tmp_path):
    path = _corpus(tmp_path)
    plain = translation.load_corpus(_data(path, 1))
    joined = translation.load_corpus(_data(path, 4, join_seed=1))
    assert joined != translation.load_corpus(_data(path, 4, join_seed=2))
    assert translation.corpus_key(_data(path, 4)) != translation.corpus_key(_data(path, 1))
    constituents = {}
    for name in translation.SPLITS:
        split = joined[name]
        ids = [_ids(s) for s in split.sources]
        # Source and target of a joined pair hold the same sentences, in the same order.
        assert ids == [_ids(t) for t in split.targets]
        constituents[name] = {i for row in ids for i in row}
        # Each split holds exactly its own unjoined sentences, in their order.
        assert [i for row in ids for i in row] == [i for s in plain[name].sources for i in _ids(s)]
        sizes = [len(dict.fromkeys(row)) for row in ids]
        assert max(sizes) <= 4 and (name != "train" or set(sizes) == {1, 2, 3, 4})
    assert not constituents["test"] & constituents["train"]
    assert not constituents["validation"] & constituents["train"]
    assert set().union(*constituents.values()) == set(range(300))


def test_join_fixed_k(tmp_path):
    path = _corpus(tmp_path)
    joined = translation.load_corpus(_data(path, 3, join_min=3))
    sizes = [len(set(_ids(s))) for s in joined["train"].sources]
    assert set(sizes[:-1]) == {3} and len(sizes) == 80


def test_join_spa_eng_lengths(shared_data):
    path = shared_data / "spa-eng" / "spa.txt"
    if not path.exists():
        pytest.skip(f"{path} missing")
    config = translate.get_config(f"data=tsv,path={path},join=8")
    plain = translation.load_corpus(translate.get_config(f"data=tsv,path={path}").data)
    joined = translation.load_corpus(config.data)
    for name in translation.SPLITS:
        # Joining only concatenates each split's own sentences, in order.
        assert " ".join(joined[name].sources) == " ".join(plain[name].sources)
        assert " ".join(joined[name].targets) == " ".join(plain[name].targets)
    words = np.array([len(s.split()) for s in joined["test"].sources])
    assert words.min() >= 1 and np.mean((words >= 5) & (words < 60)) > 0.9
    assert np.sum(words >= 40) > 100
