"""The translation loss: per-token cross-entropy over real tokens, with label smoothing."""

import jax
import ml_collections
import numpy as np
import pytest

from attn_research.tasks.translation import TranslationTask
from experiments.configs import translate


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.fixture(scope="module")
def case():
    config = translate.get_config("tiny")
    task = TranslationTask()
    model = task.make_model(config)
    rng = np.random.default_rng(0)
    vocab = config.data.vocab_size
    batch = {
        "source": rng.integers(3, vocab, (3, 6)),
        "target_in": rng.integers(3, vocab, (3, 5)),
        "target_out": rng.integers(3, vocab, (3, 5)),
    }
    batch["target_out"][1, 3:] = 0  # PAD: not counted
    params = model.init(jax.random.key(0), batch["source"], batch["target_in"])["params"]
    logits = np.asarray(model.apply({"params": params}, batch["source"], batch["target_in"]))
    return config, task, model, params, batch, logits.astype(np.float64)


def _loss(case, smoothing):
    config, task, model, params, batch, _ = case
    config = ml_collections.ConfigDict(config.to_dict())
    config.loss.label_smoothing = smoothing
    return task.loss(params, batch, jax.random.key(1), model, False, config)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_loss_is_the_smoothed_cross_entropy_of_real_tokens(case, smoothing):
    *_, batch, logits = case
    labels, real = batch["target_out"], batch["target_out"] != 0
    log_p = _log_softmax(logits)
    vocab = logits.shape[-1]
    q = np.full(log_p.shape, smoothing / vocab)
    np.put_along_axis(q, labels[..., None], 1 - smoothing + smoothing / vocab, axis=-1)
    expected = -(q * log_p).sum(-1)[real].mean()
    nll = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0][real].mean()
    loss, metrics = _loss(case, smoothing)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["nll"], nll, rtol=1e-5)  # reported beside the loss


def test_no_smoothing_is_the_unsmoothed_loss_bit_for_bit(case):
    loss, metrics = _loss(case, 0.0)
    assert float(loss) == float(metrics["nll"])
