"""Source saliency (``models.saliency``): integrated gradients against the same sum taken through
the embedding table instead of the gate, in both translator families and over 20 target rows;
and the saliency as a map of forced alignment (`predictor.align`, ``--saliency``)."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import test_predict_translation

import attn_research
from attn_research.evaluation import alignment
from attn_research.evaluation.alignment_readouts import Selection
from attn_research.models import rnn_translator, saliency, transformer_translator
from attn_research.predict import pharaoh
from attn_research.tasks import translation_attention

rnn, rnn_none = test_predict_translation.rnn, test_predict_translation.rnn_none

VOCAB = 24
FAMILIES = {
    "rnn_bahdanau": lambda: rnn_translator.RnnTranslator(
        VOCAB, hidden=16, embed_dim=8, attention_units=8
    ),
    "rnn_without_attention": lambda: rnn_translator.RnnTranslator(
        VOCAB, hidden=16, embed_dim=8, attention=None
    ),
    "transformer": lambda: transformer_translator.TransformerTranslator(
        VOCAB, embed_dim=16, num_heads=2, num_layers=2, mlp_dim=32
    ),
}


def _reference(model, params, source_BS, target_in_BT, target_out_BT, steps):
    """The module doc's a_ts, each summand taken as the gradient of log p(y_t) with respect to
    the source embedding table scaled by α_k, at the row of the token at s (every source id
    occurs once in the batch), dotted with that row: the table's path, not the gate's."""
    table = params["source_embed"]["embedding"]

    def log_p_BT(scaled_table):
        scaled = {**params, "source_embed": {"embedding": scaled_table}}
        logits = model.apply({"params": scaled}, source_BS, target_in_BT)
        log_p = jax.nn.log_softmax(logits)
        return jnp.take_along_axis(log_p, target_out_BT[..., None], -1)[..., 0]

    row_gradient = jax.jit(lambda t, scaled: jax.grad(lambda e: log_p_BT(e)[:, t].sum())(scaled))
    batch, source_len = source_BS.shape
    target_len = target_in_BT.shape[1]
    ig = np.zeros((batch, target_len, source_len))
    for k in range(steps):
        alpha = (k + 0.5) / steps
        for t in range(target_len):
            grad = np.asarray(row_gradient(t, alpha * table))
            ig[:, t] += np.einsum("bse,bse->bs", grad[source_BS], np.asarray(table)[source_BS])
    ig /= steps
    evidence = np.maximum(ig, 0) * (source_BS != 0)[:, None, :]
    total = evidence.sum(-1, keepdims=True)
    return np.divide(evidence, total, out=np.zeros_like(evidence), where=total > 0)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_saliency_is_the_integrated_gradients_of_the_embedding_table(family):
    model = FAMILIES[family]()
    source_BS = np.array([[3, 4, 5, 6, 0], [7, 8, 9, 0, 0]], np.int32)  # each id once
    rng = np.random.default_rng(0)
    target_out_BT = rng.integers(3, VOCAB, size=(2, 20)).astype(np.int32)
    target_in_BT = np.concatenate([np.ones((2, 1), np.int32), target_out_BT[:, :-1]], 1)
    params = model.init(jax.random.key(0), source_BS, target_in_BT)["params"]
    np.testing.assert_array_equal(  # the gate is the identity when no perturbation is passed
        model.apply({"params": params}, source_BS, target_in_BT),
        model.apply(
            {"params": params, "perturbations": {saliency.GATE: np.zeros((2, 5, 1), np.float32)}},
            source_BS,
            target_in_BT,
        ),
    )
    got = translation_attention.teacher_forced_saliency(  # jitted, as alignment runs it
        model, params, source_BS, target_in_BT, target_out_BT, 4
    )
    assert got.name == saliency.NAME and got.weights.shape == (2, 1, 20, 5)
    want = _reference(model, params, source_BS, target_in_BT, target_out_BT, 4)
    np.testing.assert_allclose(got.weights[:, 0], want, rtol=2e-4, atol=1e-6)
    assert np.all(np.asarray(got.weights)[1, 0, :, 3:] == 0)  # padding gets nothing


def test_a_model_without_attention_aligns_by_its_saliency(rnn_none):
    predictor = attn_research.load(rnn_none)
    with pytest.raises(ValueError, match="no attention to align with; align with its saliency"):
        predictor.align(["a b"], ["c d"])
    (pair,) = predictor.align(["a b c"], ["d e"], saliency=True)
    assert list(pair.attention.views) == [saliency.NAME]
    weights = pair.attention.views[saliency.NAME]["average"]
    assert weights.shape == (2, 3) and np.all(weights >= 0)
    assert pair.links == tuple(sorted((int(i), j) for j, i in enumerate(weights.argmax(1))))


def test_cli_scores_the_saliency_beside_the_attention(rnn, tmp_path):
    """``--saliency`` adds the map last: the default layer still reads the attention, and
    ``--layer=-1`` reads the saliency."""
    predictor = attn_research.load(rnn)
    sources, targets = ["a b c", "d e"], ["f g", "h i j"]
    (tmp_path / "s").write_text("\n".join(sources) + "\n")
    (tmp_path / "t").write_text("\n".join(targets) + "\n")
    (tmp_path / "g").write_text("0-0 1-1\n0-0 1-2p\n")
    command = [sys.executable, "-m", "attn_research.align", f"--workdir={rnn}", "--saliency"]
    command += [f"--source={tmp_path / 's'}", f"--target={tmp_path / 't'}"]
    command += [f"--gold={tmp_path / 'g'}", f"--json={tmp_path / 'scores.json'}"]
    attention = predictor.align(sources, targets)
    by_saliency = predictor.align(sources, targets, saliency=True, selection=Selection((-1,)))
    both = predictor.align(
        sources, targets, saliency=True, method="argmax_source", selection=Selection((0, 1))
    )
    runs = [(["--layer=0,1", "--method=argmax_source"], both)]
    runs += [(["--layer=-1"], by_saliency), ([], attention)]
    for layer, expected in runs:
        out = tmp_path / f"links{len(layer)}.txt"
        done = subprocess.run(
            command + layer + [f"--output={out}"], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        assert out.read_text().split("\n")[:-1] == [pharaoh.format_links(a.links) for a in expected]
        if expected is both:  # the written links of two maps averaged get their own row
            rows = json.loads((tmp_path / "scores.json").read_text())["rows"]
            (row,) = [
                r
                for r in rows
                if r["selection"] == "decoder/attention+saliency heads averaged"
                and r["method"] == "argmax_source"
            ]
            gold = [{(0, 0), (1, 1)}, {(0, 0)}], [{(0, 0), (1, 1)}, {(0, 0), (1, 2)}]
            assert row["aer"] == pytest.approx(
                alignment.aer([set(a.links) for a in expected], *gold)
            )
    rows = json.loads((tmp_path / "scores.json").read_text())["rows"]  # of the default layer
    selections = {r["selection"] for r in rows if r["method"] == "argmax_target"}
    assert selections == {"decoder/attention heads averaged", "saliency heads averaged"}
    assert [r["selection"] for r in rows if r["method"] == "mean"] == [
        "decoder/attention heads averaged"
    ]


def test_pooled_read_out_pools_the_attention_not_the_saliency(rnn, rnn_none):
    predictor = attn_research.load(rnn)
    assert predictor.default_selection("mean") == Selection()
    assert predictor.default_selection("mean", saliency=True) == Selection((0,))
    assert predictor.default_selection("argmax_source", saliency=True) == Selection((0,))
    sources, targets = ["a b c", "d e"], ["f g", "h i j"]
    pooled = predictor.align(sources, targets, method="mean", saliency=True)
    assert [a.links for a in pooled] == [
        a.links for a in predictor.align(sources, targets, method="mean")
    ]
    # without attention the saliency is all there is to pool
    assert attn_research.load(rnn_none).default_selection("mean", saliency=True) == Selection()
