"""Translators and decoding: beam = exhaustive search, cache = no cache, padding irrelevance,
BLEU against the paper's formula, chrF against sacrebleu, AER on known alignments."""

import collections
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sacrebleu

from attn_research.evaluation import alignment, bleu
from attn_research.models import decoding, rnn_translator, transformer_translator

V, BOS, EOS = 30, 2, 3
# Every attention of each family appears at least once (scores and alignments combined).
RNN_VARIANTS = [
    dict(attention="additive", cell="lstm"),
    dict(attention="luong", attention_options={"score": "dot"}),
    dict(
        attention="luong",
        attention_options={"score": "concat", "positions": "local_m", "window": 2},
    ),
    dict(
        attention="luong",
        attention_options={"score": "general", "positions": "local_p", "window": 2},
    ),
    dict(attention=None),
]
TRANSFORMER_VARIANTS = [
    ("dot_product",) * 3,
    ("additive", "local", "local"),
    ("local", "additive", "additive"),
]


def _rnn(**kw):
    return rnn_translator.RnnTranslator(V, embed_dim=8, hidden=16, attention_units=8, **kw)


ROLES = ("encoder_attention", "decoder_attention", "cross_attention")


def _window(kind):
    return {"window": 2} if kind == "local" else {}


def _transformer(kinds, **kw):
    enc, dec, cross = kinds
    return transformer_translator.TransformerTranslator(
        V,
        embed_dim=16,
        num_heads=2,
        num_layers=2,
        mlp_dim=32,
        encoder_attention=enc,
        decoder_attention=dec,
        cross_attention=cross,
        **{f"{role}_options": _window(kind) for role, kind in zip(ROLES, kinds)},
        max_len=16,
        dropout_rate=0.0,
        **kw,
    )


def _batch():
    rng = np.random.RandomState(0)
    source = rng.randint(4, V, (3, 9)).astype(np.int32)
    source[1, 6:] = 0
    source[2, 3:] = 0
    target = rng.randint(4, V, (3, 7)).astype(np.int32)
    return jnp.asarray(source), jnp.asarray(target)


def _models():
    for kw in RNN_VARIANTS:
        yield rnn_translator, _rnn(**kw)
    for kinds in TRANSFORMER_VARIANTS:
        yield transformer_translator, _transformer(kinds)
    # Both layers in one loop iteration: the cache still follows its layers.
    yield transformer_translator, _transformer(TRANSFORMER_VARIANTS[0], scan_unroll=2)


@pytest.mark.parametrize("family, model", list(_models()), ids=lambda x: str(x)[:60])
def test_padding_is_irrelevant_and_cache_equals_full_decoder(family, model):
    source, target = _batch()
    params = model.init(jax.random.key(0), source, target)["params"]
    logits = model.apply({"params": params}, source, target)
    # Changing what sits under the padding changes nothing (it stays masked by id 0): real
    # tokens after the first pad would be a different sentence, so we change the pad *ids*'
    # neighbours only through a longer pad run of a different batch width.
    wider = jnp.pad(source, ((0, 0), (0, 4)))
    np.testing.assert_allclose(model.apply({"params": params}, wider, target), logits, atol=2e-5)
    # Target positions after t never change logits at t (causal decoder).
    changed = target.at[:, 4:].set(7)
    np.testing.assert_allclose(
        model.apply({"params": params}, source, changed)[:, :4], logits[:, :4], atol=2e-5
    )
    # Step-by-step decoding (key/value cache or RNN state) equals the teacher-forced pass.
    state = family.start_decoding(model, params, source, target.shape[1])
    step = jax.jit(lambda s, tok: family.decode_step(model, params, s, tok))
    steps = []
    for t in range(target.shape[1]):
        out, state = step(state, target[:, t])
        steps.append(out)
    np.testing.assert_allclose(jnp.stack(steps, 1), logits, atol=2e-5)


def test_rnn_attention_ignores_padded_source_positions():
    source, target = _batch()
    for kw in RNN_VARIANTS[:-1]:
        model = _rnn(**kw)
        params = model.init(jax.random.key(1), source, target)["params"]
        weights = rnn_translator.alignment(model, params, source, target)
        assert float(jnp.abs(weights[2, :, 3:]).max()) == 0.0, kw


def test_transformer_cross_attention_ignores_padding():
    source, target = _batch()
    model = _transformer(("dot_product",) * 3)
    params = model.init(jax.random.key(1), source, target)["params"]
    weights = transformer_translator.alignment(model, params, source, target)
    assert weights.shape == (2, 3, 7, 9)
    assert float(weights[:, 2, :, 3:].max()) == 0.0
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def _toy_step(table):
    def step(state, token):
        logits = table[state["b"], state["t"], token] + 0.5 * jnp.sin(
            state["h"][:, None] * jnp.arange(4)
        )
        return logits, {"b": state["b"], "t": state["t"] + 1, "h": state["h"] * 3 + token}

    return step


def _exhaustive(step, state, b, limit, alpha, min_len, vocab=4, bos=2, eos=1):
    """The best-scoring output by enumeration: EOS only last, and not before `min_len`."""
    best = (-np.inf, None)
    for n in range(1, limit + 1):
        for seq in itertools.product(range(vocab), repeat=n):
            if eos in seq[:-1] or (n < limit and seq[-1] != eos) or eos in seq[:min_len]:
                continue
            st = {k: v[b : b + 1] for k, v in state.items()}
            logp, prev = 0.0, bos
            for token in seq:
                logits, st = step(st, jnp.asarray([prev]))
                logp += float(jax.nn.log_softmax(logits)[0, token])
                prev = token
            score = logp / ((5 + n) / 6) ** alpha
            if score > best[0]:
                best = (score, seq)
    return best


@pytest.mark.parametrize("alpha,min_len", [(0.0, 0), (0.6, 0), (2.0, 0), (0.6, 1), (0.0, 2)])
def test_beam_search_equals_exhaustive_search(alpha, min_len):
    batch, max_len = 3, 4
    step = _toy_step(jax.random.normal(jax.random.key(0), (batch, max_len + 1, 4, 4)) * 2.0)
    state = {
        "b": jnp.arange(batch),
        "t": jnp.zeros(batch, jnp.int32),
        "h": jnp.zeros(batch, jnp.float32),
    }
    limits = jnp.asarray([4, 3, 2])
    seqs, scores = jax.jit(
        lambda: decoding.beam_search(
            step, state, batch, max_len, limits, 2, 1, 4**3, alpha, min_len
        )
    )()
    for b in range(batch):
        score, seq = _exhaustive(step, state, b, int(limits[b]), alpha, min_len)
        np.testing.assert_array_equal(np.asarray(seqs[b, : len(seq)]), seq)
        assert np.all(np.asarray(seqs[b, len(seq) :]) == 0)
        np.testing.assert_allclose(float(scores[b]), score, rtol=1e-5)


def test_beam_search_with_a_shared_state_equals_it_reordered():
    batch, max_len = 3, 4
    step = _toy_step(jax.random.normal(jax.random.key(1), (batch, max_len + 1, 4, 4)) * 2.0)
    state = {"b": jnp.arange(batch), "t": jnp.zeros(batch, jnp.int32), "h": jnp.zeros(batch)}
    # "b" (the sentence) is alike for every beam: Shared, it is tiled once and never reordered.
    unwrap = lambda s, token: step({**s, "b": s["b"].value}, token)
    shared = {**state, "b": decoding.Shared(state["b"])}
    rewrap = lambda s, token: (lambda out: (out[0], {**out[1], "b": s["b"]}))(unwrap(s, token))
    run = lambda f, s: decoding.beam_search(
        f, s, batch, max_len, jnp.asarray([4, 3, 2]), 2, 1, 3, 0.6
    )
    for got, want in zip(
        jax.jit(lambda: run(rewrap, shared))(), jax.jit(lambda: run(step, state))()
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("min_len", [0, 2])
def test_greedy_search_takes_argmax_and_stops(min_len):
    step = _toy_step(jax.random.normal(jax.random.key(3), (2, 6, 4, 4)) * 2.0)
    state = {"b": jnp.arange(2), "t": jnp.zeros(2, jnp.int32), "h": jnp.zeros(2)}
    tokens = decoding.greedy_search(step, state, 2, 5, jnp.asarray([5, 2]), 2, 1, min_len)
    for b in range(2):
        st, prev = {k: v[b : b + 1] for k, v in state.items()}, 2
        for i in range(5 if b == 0 else 2):
            logits, st = step(st, jnp.asarray([prev]))
            allowed = np.asarray(logits[0]).copy()
            if i < min_len:
                allowed[1] = -np.inf  # EOS (id 1) barred
            prev = int(np.argmax(allowed))
            assert int(tokens[b, i]) == prev
            if prev == 1:
                break
        assert np.all(np.asarray(tokens[b, i + 1 :]) == 0)


def _bleu_reference(hyps, refs) -> float:
    """Papineni et al. 2002: corpus n-gram precisions (n = 1..4), brevity penalty, x 100."""
    matches, totals, hyp_len, ref_len = [0] * 4, [0] * 4, 0, 0
    for hyp, ref in zip(hyps, refs):
        h, r = hyp.split(), ref.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            h_grams = collections.Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            r_grams = collections.Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, r_grams[g]) for g, c in h_grams.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * brevity * math.exp(sum(math.log(m / t) for m, t in zip(matches, totals)) / 4)


def test_bleu_matches_the_papers_formula_and_chrf_sacrebleu():
    hyps = ["el gato se sentó en la alfombra", "un perro grande", "hola mundo ."]
    refs = ["el gato se sentó en la alfombra roja", "un perro grande", "hola , mundo ."]
    assert bleu.bleu(hyps, refs) == pytest.approx(_bleu_reference(hyps, refs))
    assert bleu.chrf(hyps, refs) == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert bleu.bleu(refs, refs) == pytest.approx(100.0)
    by_length = bleu.bleu_by_length(["a b"] * 2 + [" ".join("w" * 12)], hyps, refs)
    assert set(by_length) == {"0-9", "10-19"} and by_length["0-9"][1] == 2
    by_length = bleu.bleu_by_length(["a b"] * 2 + [" ".join("w" * 12)], hyps, refs, (0, 2, 5))
    assert {k: n for k, (_, n) in by_length.items()} == {"2-4": 2, "5+": 1}
    assert by_length["2-4"][0] == pytest.approx(bleu.bleu(hyps[:2], refs[:2]))
    with pytest.raises(ValueError, match="edges must start at 0"):
        bleu.bleu_by_length(["a"], ["a"], ["a"], (1, 5))


def test_bleu_signature_is_sacrebleus_for_one_reference():
    hyps, refs = ["el gato se sentó", "un perro"], ["el gato se sentó en la alfombra", "un perro"]
    reference = sacrebleu.BLEU()
    reference.corpus_score(hyps, [refs])
    assert bleu.signature() == str(reference.get_signature())
    assert bleu.signature().startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert bleu.signature("chrf").startswith("nrefs:1|")


def test_length_ratio_by_length_is_output_over_reference_words():
    sources = ["a b", "c d", " ".join("w" * 12)]
    hyps = ["el gato", "un perro grande", "hola"]
    refs = ["el gato negro", "un perro", "hola mundo de nuevo"]
    ratios = bleu.length_ratio_by_length(sources, hyps, refs)
    assert ratios == pytest.approx({"0-9": (2 + 3) / (3 + 2), "10-19": 1 / 4})


def test_aer_and_word_attention():
    # Och & Ney: AER = 1 - (|A&S| + |A&P|) / (|A| + |S|).
    predicted, sure, possible = [{(0, 0), (1, 1), (2, 1)}], [{(0, 0), (1, 1)}], [{(2, 1)}]
    assert alignment.aer(predicted, sure, possible) == pytest.approx(1 - (2 + 3) / (3 + 2))
    assert alignment.aer([{(0, 0), (1, 1)}], [{(0, 0), (1, 1)}]) == 0.0
    assert alignment.aer([{(1, 0)}], [{(0, 0)}]) == 1.0
    # Pieces -> words: source pieces [w0, w0, w1, EOS], target pieces [w0, w1, w1, EOS].
    weights = np.asarray(
        [[0.1, 0.1, 0.8, 0.0], [0.6, 0.2, 0.2, 0.0], [0.3, 0.3, 0.4, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )
    words = alignment.word_attention(weights, np.asarray([0, 1, 1, -1]), np.asarray([0, 0, 1, -1]))
    np.testing.assert_allclose(words, [[0.2, 0.8], [0.7, 0.3]])
    assert alignment.hard_alignment(words) == {(1, 0), (0, 1)}
