"""The Transformer sizes of translate.py against their papers, and the tied output layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_research import tasks
from attn_research.models.transformer_translator import TransformerTranslator
from experiments.configs import translate


def _num_params(model, length=8):
    ids = jnp.ones((1, length), jnp.int32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), ids, ids))
    return sum(leaf.size for leaf in jax.tree.leaves(shapes))


@pytest.mark.parametrize(
    "size, millions",
    [("base", 65), ("big", 213)],  # Vaswani et al. 2017, Table 3 (shared 37k BPE vocabulary)
)
def test_sizes_have_the_papers_parameter_counts(size, millions):
    config = translate.get_config(f"model=transformer,size={size}")
    config.data.vocab_size = 37_000
    model = tasks.get_task(config.task).make_model(config)
    assert abs(_num_params(model) / 1e6 - millions) / millions < 0.05


def test_tied_output_logits_are_the_final_states_times_the_embedding():
    model = TransformerTranslator(
        50, embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32, tie_output=True
    )
    rng = np.random.default_rng(0)
    source, target = rng.integers(1, 50, (2, 7)), rng.integers(1, 50, (2, 5))
    params = model.init(jax.random.key(0), source, target)["params"]
    assert "output" not in params
    logits, state = model.apply(
        {"params": params},
        source,
        target,
        capture_intermediates=lambda module, _: module.name == "ln_final",
        mutable=["intermediates"],
    )
    (final,) = state["intermediates"]["ln_final"]["__call__"]
    embedding = np.asarray(params["target_embed"]["embedding"])
    np.testing.assert_allclose(logits, np.asarray(final) @ embedding.T, rtol=1e-5, atol=1e-5)
