"""Guided alignment: eflomal's cached word links, the attention targets built from them, the
loss against a NumPy formula, and tiny guided train steps of every translator family."""

import jax
import ml_collections
import numpy as np
import pytest

from attn_research.data import symmetrize, translation_pipeline, word_aligner
from attn_research.tasks import guided_alignment
from attn_research.tasks.translation import TranslationTask
from attn_research.train import train_and_evaluate
from experiments.configs import translate

TINY_GUIDED = {
    "rnn_bahdanau": "model=rnn,attention=additive,tiny,guided",
    "rnn_luong": "model=rnn,attention=luong,score=general,tiny,guided",
    "transformer": "model=transformer,attention=dot_product,tiny,guided",
}


def _config(arg: str, cache_dir) -> ml_collections.ConfigDict:
    config = translate.get_config(arg)
    config.data.cache_dir = str(cache_dir)
    return config


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One tokenizer and one set of word links of the tiny corpus for the whole module."""
    return tmp_path_factory.mktemp("cache")


# --- the aligner -------------------------------------------------------------------------------


def test_tokenize_splits_punctuation_and_clitics_and_keeps_the_whitespace_word():
    assert word_aligner.tokenize("¿Qué? Don't go, workers' rights") == (
        ["¿", "qué", "?", "don", "'t", "go", ",", "workers", "'", "rights"],
        [0, 0, 0, 1, 1, 2, 2, 3, 3, 4],
    )
    assert word_aligner.tokenize("the danish ' no ' vote .")[0] == (
        "the danish ' no ' vote .".split()
    )


def test_grow_diag_final_and_on_a_worked_example():
    # 3 source x 3 target words. Intersection {(0,0)}. Growing in grid order: (1,1) is a
    # diagonal neighbour of (0,0) in the union with both words unaligned; from (1,1), (2,1)
    # (source 2 unaligned), then (2,2) (target 2 still unaligned: one free word suffices).
    forward = {(0, 0), (1, 1), (2, 2)}
    reverse = {(0, 0), (2, 1)}
    assert symmetrize.grow_diag_final_and(forward, reverse) == {
        (0, 0),
        (1, 1),
        (2, 1),
        (2, 2),
    }
    # Nothing neighbours (0,0). Final-and takes the forward links first: (2,2) joins, both of
    # its words free; then the reverse (2,0) does not, source 2 being aligned now.
    assert symmetrize.grow_diag_final_and({(0, 0), (2, 2)}, {(0, 0), (2, 0)}) == {
        (0, 0),
        (2, 2),
    }


_ADJECTIVES = {"red": "rojo", "blue": "azul", "green": "verde", "black": "negro"}
_NOUNS = {"car": "coche", "book": "libro", "dog": "perro", "cat": "gato"}
# Each word meets its translation in every pair that holds it, and any other word in a quarter
# or half of them; the adjective and the noun swap places. Punctuation attached to a word links
# that word to the word that holds the translation's punctuation.
_TOY = [
    (
        f"{det} {adjective} {noun}",
        f"{det_es} {_NOUNS[noun]} {adjective_es}",
        {(0, 0), (1, 2), (2, 1)},
    )
    for adjective, adjective_es in _ADJECTIVES.items()
    for noun in _NOUNS
    for det, det_es in (("The", "El"), ("A", "Un"))
] + [
    ("The cat sleeps.", "El gato duerme.", {(0, 0), (1, 1), (2, 2)}),
    ("A dog eats.", "Un perro come.", {(0, 0), (1, 1), (2, 2)}),
]


def test_aligner_finds_the_obvious_links_and_runs_once(tmp_path, monkeypatch):
    sources, targets, expected = zip(*(_TOY * 6))
    path = str(tmp_path / "links.npz")
    links = word_aligner.load_or_align(path, sources, targets)
    assert links == list(expected)

    def must_not_run(*args):
        raise AssertionError("eflomal ran again instead of reading the cache")

    monkeypatch.setattr(word_aligner, "align_words", must_not_run)
    assert word_aligner.load_or_align(path, sources, targets) == links
    with pytest.raises(ValueError, match="hold 204 pairs, the corpus has 5"):
        word_aligner.load_or_align(path, sources[:5], targets[:5])


def test_priors_carry_a_corpus_lexicon_to_pairs_aligned_alone():
    # Pairs of a new word order, aligned alone: the corpus's linked words (the lexical priors)
    # find each noun's translation, and no link strays from the word-for-word ones. Alone, the
    # three pairs say too little: over 20 runs, eflomal without priors strayed in about half.
    nouns, verbs = {"cat": "gato", "dog": "perro", "boy": "niño"}, ("sleeps", "eats", "runs")
    verbs_es = ("duerme", "come", "corre")
    corpus = [
        (["the", n, v], ["el", n_es, v_es])
        for n, n_es in nouns.items()
        for v, v_es in zip(verbs, verbs_es)
    ]
    priors = word_aligner.make_priors(*zip(*(corpus * 10)))
    assert "LEX\tdog\tperro\t30\n" in priors
    new = [
        ([v, "the", n], ["el", n_es, v_es])
        for (n, n_es), v, v_es in zip(nouns.items(), verbs, verbs_es)
    ]
    for links in word_aligner.align_tokens(*zip(*new), priors):
        assert (2, 1) in links and links <= {(0, 2), (1, 0), (2, 1)}


def test_empty_side_is_a_clear_error():
    with pytest.raises(ValueError, match="pair 1: an empty side"):
        word_aligner.align_tokens([["a"], []], [["b"], ["c"]])


def test_train_links_are_cached_under_the_corpus_key(cache_dir, monkeypatch):
    config = _config(TINY_GUIDED["rnn_bahdanau"], cache_dir)
    links = translation_pipeline.train_links(config.data)
    train = translation_pipeline.translation.load_corpus(config.data)["train"]
    assert len(links) == len(train)
    monkeypatch.setattr(word_aligner, "align_words", None)  # a second run would fail
    assert translation_pipeline.train_links(config.data) == links
    other = _config(TINY_GUIDED["rnn_bahdanau"], cache_dir)
    other.data.num_train = 300
    assert translation_pipeline.links_path(other.data) != translation_pipeline.links_path(
        config.data
    )


# --- targets and loss --------------------------------------------------------------------------


def test_alignment_targets_on_a_hand_made_pair():
    source_words = np.array([0, 0, 1, 2, -1])  # word 0 in two pieces, then EOS
    target_words = np.array([0, 1, 1, -1, -1])  # target word 1 in two pieces, EOS, padding
    links = {(0, 1), (2, 1), (5, 0)}  # source word 5 does not exist: ignored
    third = 1 / 3
    expected = np.array(
        [
            [0, 0, 0, 0, 0],  # target word 0 has no (existing) link
            [third, third, 0, third, 0],
            [third, third, 0, third, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ]
    )
    other = np.array([[0, 0], [1, 1]])  # a second pair of 2 source and 2 target words
    got = translation_pipeline.alignment_targets(
        [np.array(sorted(links)), other],
        np.stack([source_words, [0, 1, -1, -1, -1]]),
        np.stack([target_words, [0, 1, -1, -1, -1]]),
    )
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[0], expected, rtol=1e-6)
    np.testing.assert_array_equal(got[1, :2, :2], np.eye(2))
    assert got[1].sum() == 2


def _numpy_alignment_loss(attention, targets):
    """-sum_{b,t,s} p log a over the (b, t) with any target mass, divided by their number."""
    total, rows = 0.0, 0
    for b in range(attention.shape[0]):
        for t in range(attention.shape[1]):
            if targets[b, t].sum() > 0:
                rows += 1
                for s in range(attention.shape[2]):
                    if targets[b, t, s] > 0:
                        total -= targets[b, t, s] * np.log(attention[b, t, s])
    return total / max(rows, 1)


def _random_targets(rng, valid_source, valid_target):
    """[B, T, S]: each real target row linked to 1-2 random real source pieces, or to none."""
    b, t = valid_target.shape
    targets = np.zeros((b, t, valid_source.shape[1]), np.float32)
    for i in range(b):
        for j in np.flatnonzero(valid_target[i]):
            if rng.random() < 0.25:
                continue
            linked = rng.choice(np.flatnonzero(valid_source[i]), rng.integers(1, 3))
            targets[i, j, linked] = 1.0 / len(set(linked.tolist()))
    return targets


def test_loss_formula_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 6))
    attention = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    targets = _random_targets(rng, np.ones((2, 6), bool), np.ones((2, 4), bool))
    got = guided_alignment.alignment_loss(attention.astype(np.float32), targets)
    np.testing.assert_allclose(got, _numpy_alignment_loss(attention, targets), rtol=1e-5)
    assert float(guided_alignment.alignment_loss(attention, np.zeros_like(targets))) == 0.0


@pytest.mark.parametrize(
    "arg, layer, heads, shift",
    [
        (TINY_GUIDED["rnn_bahdanau"], -1, 1, 0),
        (TINY_GUIDED["rnn_luong"], 0, 1, 0),
        (TINY_GUIDED["rnn_luong"], 0, 1, 1),  # the row where the word is the decoder's input
        (TINY_GUIDED["transformer"], 0, 2, 0),  # the first of 2 layers, its 2 heads averaged
        (TINY_GUIDED["transformer"], 1, 1, 1),
        (TINY_GUIDED["rnn_bahdanau"] + ",aligner=8", -1, 1, 0),  # the aligner, not the attention
        (TINY_GUIDED["transformer"] + ",aligner=8", 2, 1, 1),
        ("model=rnn,attention=none,tiny,guided,aligner=8", 0, 1, 0),  # the fixed vector's aligner
    ],
)
def test_guided_train_step_supervises_the_chosen_attention(arg, layer, heads, shift):
    config = translate.get_config(arg)
    if config.model.name == "transformer":
        config.model.num_layers = 2
    config.loss.alignment_layer, config.loss.alignment_heads = layer, heads
    config.loss.alignment_shift = shift
    task = TranslationTask()
    model = task.make_model(config)
    rng = np.random.default_rng(1)
    vocab = config.data.vocab_size
    source, target_in = rng.integers(4, vocab, (3, 7)), rng.integers(4, vocab, (3, 5))
    source[1, 4:] = 0
    target_out = np.concatenate([target_in[:, 1:], np.full((3, 1), 3)], 1)
    target_out[2, 3:] = target_in[2, 4:] = 0
    targets = _random_targets(rng, source != 0, target_out != 0)
    batch = dict(source=source, target_in=target_in, target_out=target_out, alignment=targets)
    params = model.init(jax.random.key(0), source, target_in)["params"]

    loss_fn = lambda p: task.loss(p, batch, jax.random.key(1), model, True, config)
    (guided, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    # The evaluation's read of the attention (no dropout in the tiny configs).
    maps = model.attention_maps(params, source, target_in)
    attention = np.asarray(maps[layer].weights, np.float64)[:, :heads].mean(1)
    # Row t + shift of the attention learns target word t's links.
    expected = _numpy_alignment_loss(attention[:, shift:], targets[:, : targets.shape[1] - shift])
    np.testing.assert_allclose(metrics["alignment_loss"], expected, rtol=1e-5)
    weight, config.loss.alignment_weight = config.loss.alignment_weight, 0.0
    plain, plain_metrics = jax.jit(loss_fn)(params)
    assert "alignment_loss" not in plain_metrics
    assert float(plain_metrics["nll"]) == float(metrics["nll"])  # the same logits
    np.testing.assert_allclose(guided, plain + weight * expected, rtol=1e-6)


def test_weight_zero_applies_the_model_as_before():
    """At weight 0 the train loss ignores the targets and traces to the program of a batch
    without them; at a weight > 0 it is another program (the weights are sown)."""
    config = translate.get_config("model=transformer,tiny")
    task = TranslationTask()
    model = task.make_model(config)
    ids = np.ones((2, 4), np.int32)
    batch = dict(source=ids, target_in=ids, target_out=ids)
    params = model.init(jax.random.key(0), ids, ids)["params"]
    trace = lambda b: str(
        jax.make_jaxpr(lambda p: task.loss(p, b, jax.random.key(1), model, True, config))(params)
    )
    with_targets = dict(batch, alignment=np.zeros((2, 4, 4), np.float32))
    unguided = trace(batch)
    assert trace(with_targets) == unguided
    config.loss.alignment_weight = 0.05
    assert trace(with_targets) != unguided


# --- training ----------------------------------------------------------------------------------


def test_guided_train_batches_hold_row_normalised_targets(cache_dir):
    config = _config(TINY_GUIDED["rnn_bahdanau"], cache_dir)
    batches = translation_pipeline.train_iterator(config.data, 0, 8, 0, 1, alignment=True)
    for _ in range(3):
        batch = next(batches)
        b, s = batch["source"].shape
        assert batch["alignment"].shape == (b, batch["target_out"].shape[1], s)
        assert "row" not in batch
        rows = batch["alignment"].sum(-1)
        assert np.all((np.abs(rows - 1) < 1e-6) | (rows == 0))
        assert np.all(batch["alignment"][batch["target_out"] == 0] == 0)
        assert np.all(batch["alignment"].transpose(0, 2, 1)[batch["source"] == 0] == 0)
        assert (rows > 0).mean() > 0.5  # most target pieces are linked


def test_guided_run_logs_its_alignment_loss(cache_dir, tmp_path):
    config = _config(TINY_GUIDED["rnn_bahdanau"], cache_dir)
    config.total_steps, config.log_every_steps = 2, 1
    config.decode.examples = config.decode.aer_examples = 4
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    assert summary["train"]["train/alignment_loss"] > 0
    assert "eval/alignment_loss" not in summary["eval"]  # the eval loss is the translation's


@pytest.mark.parametrize(
    "arg, override, message",
    [
        ("tiny,guided", dict(alignment_weight=-1.0), "alignment_weight: must be >= 0"),
        ("attention=none,tiny,guided", {}, "no attention to supervise"),
        ("tiny,guided", dict(alignment_layer=1), "alignment_layer: 1 is not one of the model's 1"),
        ("model=transformer,tiny,guided", dict(alignment_heads=3), "alignment_heads: want 1 .. 2"),
        (
            "model=transformer,tiny,guided,aligner=8",
            dict(alignment_heads=2),
            "want 1 .. 1 .*map -1",
        ),
        (
            "tiny,guided,aligner=8",
            dict(alignment_layer=2),
            "2 is not one of the model's 2 attention",
        ),
        ("tiny,guided", dict(alignment_shift=2), "alignment_shift: 0 .* or 1 .*, got 2"),
    ],
)
def test_bad_guided_config_is_a_clear_error(arg, override, message, cache_dir):
    config = _config(arg, cache_dir)
    config.loss.update(override)
    with pytest.raises(ValueError, match=message):
        TranslationTask().validate(config)
