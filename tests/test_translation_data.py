"""Translation data: the embedded corpus, local and TFDS corpora, tokenizer, bad input."""

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from attn_research.data import synthetic_parallel, translation, translation_pipeline
from attn_research.data import tokenizer as tokenizer_lib
from attn_research.tasks import translation as translation_task
from experiments.configs import translate


def _config(arg: str, tmp_path) -> ml_collections.ConfigDict:
    config = translate.get_config(arg)
    config.data.cache_dir = str(tmp_path / "cache")
    return config


def test_synthetic_alignments_consistent():
    pairs = synthetic_parallel.generate(300, seed=1)
    assert pairs == synthetic_parallel.generate(300, seed=1)
    lengths = [len(p.source.split()) for p in synthetic_parallel.generate(20000, seed=0)]
    assert min(lengths) == 3 and max(lengths) >= 60
    for p in pairs:
        source, target = p.source.split(), p.target.split()
        assert all(0 <= s < len(source) and 0 <= t < len(target) for s, t in p.alignment)
        assert {t for _, t in p.alignment} == set(range(len(target)))  # every target word linked
    # Known links: adjective-noun reordering and "to the" -> "al".
    for p in pairs:
        source, target = p.source.split(), p.target.split()
        links = set(p.alignment)
        for t, word in enumerate(target):
            if word == "al":
                linked = sorted(source[s] for s, tt in links if tt == t)
                assert linked == ["the", "to"], (p, linked)
            if word in ("gato", "gatos"):
                assert {source[s] for s, tt in links if tt == t} <= {"cat", "cats"}


def test_tokenizer_round_trip(tmp_path):
    texts = ["el gato se sentó en la alfombra", "the cat sat on the mat", "¿dónde está?"] * 20
    tok = tokenizer_lib.train(texts, 60, str(tmp_path / "spm.model"))
    for text in texts[:3]:
        ids = tok.encode(text)
        assert tok.decode(np.concatenate([ids, [tokenizer_lib.EOS_ID, 7]])) == text
        words = tok.word_ids(ids)
        assert words[0] == 0 and words[-1] == len(text.split()) - 1
    assert (
        tokenizer_lib.load(str(tmp_path / "spm.model")).encode(texts[0]).tolist()
        == tok.encode(texts[0]).tolist()
    )


def test_tsv_splits_and_reverse(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("".join(f"hello {i}\thola {i}\tCC-BY attribution\n" for i in range(100)))
    config = _config(f"data=tsv,path={path},tiny", tmp_path)
    splits = translation.load_corpus(config.data)
    assert [len(splits[s]) for s in translation.SPLITS] == [96, 2, 2]
    assert splits["train"].sources[0].startswith("hello")
    assert splits["train"].targets[0] == splits["train"].sources[0].replace("hello", "hola")
    config.data.reverse = True
    reversed_splits = translation.load_corpus(config.data)
    assert reversed_splits["test"].sources == splits["test"].targets
    all_pairs = set().union(*(set(zip(s.sources, s.targets)) for s in splits.values()))
    assert len(all_pairs) == 100


def test_parallel_files(tmp_path):
    for split, n in (("train", 50), ("test", 5)):
        (tmp_path / f"{split}.en").write_text("".join(f"a {i}\n" for i in range(n)))
        (tmp_path / f"{split}.es").write_text("".join(f"b {i}\n" for i in range(n)))
    config = _config(f"data=parallel,path={tmp_path}/{{split}}.{{lang}},tiny", tmp_path)
    config.data.source_lang, config.data.target_lang = "en", "es"
    splits = translation.load_corpus(config.data)
    assert splits["test"].sources == [f"a {i}" for i in range(5)]
    assert len(splits["validation"]) == 1 and len(splits["train"]) == 49


def test_tfds_mock(tmp_path):
    config = _config("data=tfds,tfds=ted_hrlr_translate/pt_to_en,tiny", tmp_path)
    with tfds.testing.mock_data(num_examples=40):
        splits = translation.load_corpus(config.data)
        batch = next(iter(translation_pipeline.eval_batches(config.data, "test", 8, 0, 1)))
    assert len(splits["train"]) == 40 and isinstance(splits["train"].sources[0], str)
    assert batch["source"].shape == (8, 32)
    assert np.all(batch["target_in"][:, 0] == tokenizer_lib.BOS_ID)


def test_batches_pad_and_shift(tmp_path):
    config = _config("tiny", tmp_path)
    batch = next(iter(translation_pipeline.eval_batches(config.data, "validation", 4, 0, 1)))
    source, target_in, target_out = batch["source"], batch["target_in"], batch["target_out"]
    assert source.shape == (4, 32) and source.dtype == np.int32
    np.testing.assert_array_equal(target_in != 0, target_out != 0)
    words = (target_out[:, :-1] != tokenizer_lib.EOS_ID) & (target_out[:, :-1] != 0)
    np.testing.assert_array_equal(target_in[:, 1:][words], target_out[:, :-1][words])
    lengths = (source != 0).sum(1)
    assert np.all(source[np.arange(4), lengths - 1] == tokenizer_lib.EOS_ID)


@pytest.mark.parametrize(
    "arg, write, message",
    [
        ("data=tsv,path={tmp}/missing.txt", None, "does not exist"),
        ("data=tsv,path={tmp}/c.txt", "", "empty corpus"),
        ("data=tsv,path={tmp}/c.txt", "hello\thola\njust one column\n", "c.txt:2: malformed"),
        ("data=tfds,tfds=no_such_dataset_xyz", None, "no_such_dataset_xyz"),
        ("data=tsv", None, "config.data.path"),
    ],
)
def test_bad_input_is_a_clear_value_error(tmp_path, arg, write, message):
    if write is not None:
        (tmp_path / "c.txt").write_text(write)
    config = _config(arg.format(tmp=tmp_path) + ",tiny", tmp_path)
    with pytest.raises(ValueError, match=message):
        translation_task.TranslationTask().validate(config)
