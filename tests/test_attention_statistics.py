"""The attention row statistics (entropy, peaked rows, local-p centres) against plain loops, and
the RNN's local-p centres as its weights show them."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from attn_research.evaluation.attention_statistics import AttentionStatistics
from attn_research.models.rnn_translator import RnnTranslator


def _rows(seed):
    """Weights ``[3, 2, 4, 5]`` with a peaked row, an empty row and rows not summing to 1."""
    rng = np.random.default_rng(seed)
    weights = rng.random((3, 2, 4, 5)) ** 4
    weights[0, 0, 1] = [0.0, 0.95, 0.05, 0.0, 0.0]
    weights[1, 1, 2] = 0.0
    weights[2] *= 0.5
    valid = np.ones((3, 4), bool)
    valid[2, 3] = valid[0, 2] = False
    return weights, valid, rng.random((3, 2, 4))


def _expected(weights, valid, fraction):
    """Row by row: each normalized row's entropy and top weight, and its centre."""
    entropies, tops, centres = [], [], []
    for b, h, q in np.ndindex(weights.shape[:3]):
        row = weights[b, h, q]
        if not valid[b, q] or row.sum() == 0:
            continue
        row = row / row.sum()
        entropies.append(-sum(a * math.log(a) for a in row if a > 0))
        tops.append(max(row) > 0.9)
        centres.append(fraction[b, h, q])
    return np.mean(entropies), np.mean(tops), np.array(centres)


def test_statistics_match_row_by_row_computation_in_one_or_two_batches():
    weights, valid, fraction = _rows(0)
    entropy, peaked, centres = _expected(weights, valid, fraction)
    one, two = AttentionStatistics(), AttentionStatistics()
    one.add(weights, valid, fraction)
    two.add(weights[:1], valid[:1], fraction[:1])
    two.add(weights[1:], valid[1:], fraction[1:])
    for stats in (one, two):
        result = stats.result()
        np.testing.assert_allclose(result["attention_entropy"], entropy, rtol=1e-12)
        np.testing.assert_allclose(result["attention_peaked_share"], peaked, rtol=1e-12)
        np.testing.assert_allclose(result["centre_fraction_mean"], centres.mean(), rtol=1e-12)
        for q in (10, 50, 90):
            np.testing.assert_allclose(
                result[f"centre_fraction_q{q}"], np.percentile(centres, q), rtol=1e-12
            )
    assert 0 < peaked < 1 and len(centres) == 3 * 2 * 4 - 2 * 2 - 1


def test_uniform_rows_have_log_keys_entropy_and_no_centre_without_a_position_model():
    stats = AttentionStatistics()
    stats.add(np.full((2, 1, 3, 4), 0.25), np.ones((2, 3), bool))
    assert stats.result() == {
        "attention_entropy": math.log(4),
        "attention_peaked_share": 0.0,
    }
    assert AttentionStatistics().result() == {}


def test_rnn_local_p_map_centres_are_where_its_weights_are():
    """The map's ``p_t / S`` times the source length S puts each row's nonzero weights exactly
    at ``|s - p_t| <= D``."""
    window = 2
    model = RnnTranslator(
        30,
        attention="luong",
        attention_options={"score": "general", "positions": "local_p", "window": window},
        embed_dim=8,
        hidden=8,
    )
    rng = np.random.default_rng(1)
    source = rng.integers(3, 30, (3, 9))
    source[1, 6:] = 0  # 6 long
    target = jnp.asarray(rng.integers(3, 30, (3, 5)))
    source = jnp.asarray(source)
    params = model.init(jax.random.key(0), source, target)["params"]
    (attention,) = model.attention_maps(params, source, target)
    assert attention.centre_fraction.shape == (3, 1, 5)
    lengths = np.asarray((source != 0).sum(-1))[:, None, None, None]
    centre = np.asarray(attention.centre_fraction, np.float64)[..., None] * lengths
    keys = np.arange(9)
    inside = (np.abs(keys - centre) <= window) & (keys < lengths)
    weights = np.asarray(attention.weights)
    assert np.all(weights[~inside] == 0) and np.all(weights[inside] > 0)
    assert np.ptp(np.asarray(attention.centre_fraction)) > 1e-3
