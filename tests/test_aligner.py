"""The alignment head (``models.aligner``): its weights against the NumPy formula of its
docstring, and a translation that it leaves untouched in both translator families."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research.models import aligner, rnn_translator, transformer_translator


def _numpy_aligner(params, decoder_BTD, encoder_BSF, valid_BS, rows_B):
    """a_t = softmax_s(w^T tanh(W_q [d_t; d_{t+1}] + b + W_k h_s)), d_{t+1} = 0 from the last
    valid row on, invalid s masked."""
    read_BTD = np.concatenate([decoder_BTD[:, 1:], np.zeros_like(decoder_BTD[:, :1])], 1)
    read_BTD[np.arange(decoder_BTD.shape[1]) + 1 >= rows_B[:, None]] = 0
    q_BTU = np.concatenate([decoder_BTD, read_BTD], -1) @ params["query"]["kernel"]
    q_BTU = q_BTU + params["query"]["bias"]
    k_BSU = encoder_BSF @ params["key"]["kernel"]
    w_U = np.asarray(params["attention"]["additive"]["score_vector"])[0]
    scores_BTS = np.tanh(q_BTU[:, :, None, :] + k_BSU[:, None, :, :]) @ w_U
    scores_BTS = np.where(valid_BS[:, None, :], scores_BTS, -np.inf)
    weights_BTS = np.exp(scores_BTS - scores_BTS.max(-1, keepdims=True))
    return weights_BTS / weights_BTS.sum(-1, keepdims=True)


def test_weights_match_the_numpy_formula():
    rng = np.random.default_rng(0)
    decoder_BTD = rng.normal(size=(2, 5, 6)).astype(np.float32)
    encoder_BSF = rng.normal(size=(2, 4, 3)).astype(np.float32)
    valid_BS = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    module = aligner.Aligner(units=7)
    rows_B = np.array([5, 3])
    params = module.init(jax.random.key(0), decoder_BTD, encoder_BSF, valid_BS, rows_B)["params"]
    got = module.apply({"params": params}, decoder_BTD, encoder_BSF, valid_BS, rows_B)
    assert got.shape == (2, 1, 5, 4)
    want = _numpy_aligner(
        jax.tree.map(np.asarray, params), decoder_BTD, encoder_BSF, valid_BS, rows_B
    )
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-5, atol=1e-6)


def test_full_context_reads_the_later_rows_and_no_padding():
    """Row 0 reads rows 0 and 1 only, unless the query has the full context; with it, rows
    past a pair's valid rows change none of its valid rows."""
    rng = np.random.default_rng(1)
    decoder_BTD = rng.normal(size=(2, 6, 5)).astype(np.float32)
    encoder_BSF = rng.normal(size=(2, 4, 3)).astype(np.float32)
    valid_BS, rows_B = np.ones((2, 4), bool), np.array([6, 4])
    later_BTD = decoder_BTD.copy()
    later_BTD[:, 4:] = rng.normal(size=(2, 2, 5))  # pair 0: valid rows; pair 1: padding
    for full_context in (False, True):
        module = aligner.Aligner(units=7, full_context=full_context)
        args = (encoder_BSF, valid_BS, rows_B)
        params = module.init(jax.random.key(0), decoder_BTD, *args)
        before = np.asarray(module.apply(params, decoder_BTD, *args))
        after = np.asarray(module.apply(params, later_BTD, *args))
        assert np.array_equal(before[0, 0, 0], after[0, 0, 0]) != full_context
        np.testing.assert_array_equal(before[1, 0, :4], after[1, 0, :4])


FAMILIES = {
    "rnn": (
        rnn_translator,
        lambda **kw: rnn_translator.RnnTranslator(
            20, hidden=16, embed_dim=8, attention_units=8, **kw
        ),
    ),
    "transformer": (
        transformer_translator,
        lambda **kw: transformer_translator.TransformerTranslator(
            20, embed_dim=16, num_heads=2, num_layers=2, mlp_dim=32, **kw
        ),
    ),
}


@pytest.mark.parametrize("full_context", [False, True])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_aligner_leaves_the_translation_untouched(family, full_context):
    """Beside an aligner the translator's parameters start the same, its logits are the same,
    and a loss on the aligner's map sends no gradient into the translator."""
    module, make = FAMILIES[family]
    source = jnp.array([[5, 6, 7, 0], [8, 9, 0, 0]])
    target_in = jnp.array([[1, 4, 5, 6, 0], [1, 7, 0, 0, 0]])
    plain, with_aligner = make(), make(aligner_units=8, aligner_full_context=full_context)
    params = with_aligner.init(jax.random.key(0), source, target_in)["params"]
    translator = {k: v for k, v in params.items() if k != "aligner"}
    plain_params = plain.init(jax.random.key(0), source, target_in)["params"]
    assert jax.tree.all(jax.tree.map(np.array_equal, plain_params, translator))
    np.testing.assert_array_equal(
        plain.apply({"params": translator}, source, target_in),
        with_aligner.apply({"params": params}, source, target_in),
    )

    maps = with_aligner.attention_maps(params, source, target_in)
    assert [m.name for m in maps][:-1] == [
        m.name for m in plain.attention_maps(translator, source, target_in)
    ]
    assert maps[-1].name == aligner.NAME and maps[-1].weights.shape == (2, 1, 5, 4)
    np.testing.assert_allclose(maps[-1].weights.sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(maps[-1].weights)[1, :, :, 2:] == 0)  # padding gets nothing
    _, weights = module.logits_and_attention(with_aligner, params, source, target_in, False, {})
    np.testing.assert_array_equal(weights[-1], maps[-1].weights)

    def aligner_loss(p):
        _, weights = module.logits_and_attention(with_aligner, p, source, target_in, False, {})
        return -jnp.log(weights[-1][:, 0, :, 0]).sum()

    grads = jax.grad(aligner_loss)(params)
    assert any(np.any(g != 0) for g in jax.tree.leaves(grads["aligner"]))
    outside = {k: v for k, v in grads.items() if k != "aligner"}
    assert all(np.all(g == 0) for g in jax.tree.leaves(outside))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_an_aligner_that_trains_the_encoder_sends_its_gradient_there_and_nowhere_else(family):
    module, make = FAMILIES[family]
    source = jnp.array([[5, 6, 7, 0], [8, 9, 0, 0]])
    target_in = jnp.array([[1, 4, 5, 6, 0], [1, 7, 0, 0, 0]])
    model = make(aligner_units=8, aligner_trains_encoder=True)
    params = model.init(jax.random.key(0), source, target_in)["params"]

    def aligner_loss(p):
        _, weights = module.logits_and_attention(model, p, source, target_in, False, {})
        return -jnp.log(weights[-1][:, 0, :, 0]).sum()

    grads = jax.grad(aligner_loss)(params)
    reached = {k for k, v in grads.items() if any(np.any(g != 0) for g in jax.tree.leaves(v))}
    assert reached == {"aligner", "encoder", "source_embed"}
