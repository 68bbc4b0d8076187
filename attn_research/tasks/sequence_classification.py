"""Sequence classification: the Long Range Arena's ListOps, Image and Pathfinder tasks.

Config (``experiments/configs/lra.py``): ``model`` (``SequenceClassifier``'s fields but those
the data sets), ``data`` (``source`` of ``data.sequences.SOURCES``, ``seed``, ``num_train``,
``num_eval``, ``cache_dir``, and each source's own fields). Metrics: ``loss``, ``accuracy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import optax

from attn_research import tasks
from attn_research.data import sequences
from attn_research.models import fields
from attn_research.models.sequence_classifier import SequenceClassifier
from attn_research.tasks import classification

NAME = "sequence_classification"
MODELS: Mapping[str, type[nn.Module]] = {"transformer": SequenceClassifier}


class SequenceClassificationTask(tasks.Task):
    """Classifies ``config.data``'s sequences with ``config.model``."""

    config_keys = ("model", "data")

    def validate(self, config: ml_collections.ConfigDict) -> None:
        sequences.check(config.data)
        self.make_model(config)  # the model checks its fields, and its attention on the data

    def make_model(self, config: ml_collections.ConfigDict) -> nn.Module:
        name = config.model.get("name")
        if name not in MODELS:
            raise ValueError(
                f"config.model.name: unknown model {name!r}; choose one of {sorted(MODELS)}."
            )
        data = config.data
        return fields.build(
            MODELS[name],
            config.model.to_dict(),
            num_classes=sequences.num_classes(data),
            vocab_size=sequences.vocab_size(data),
            max_len=self._split(config, train=True).tokens.shape[1],
            grid=sequences.grid(data),
            dtype=jnp.dtype(config.dtype),
        )

    def _split(self, config: ml_collections.ConfigDict, train: bool) -> sequences.Split:
        return sequences.open_split(config.data, train)

    def init_params(self, model: nn.Module, rng: jax.Array, config: ml_collections.ConfigDict):
        tokens = jnp.zeros((1, model.max_len), jnp.int32)
        return model.init(rng, tokens, jnp.full((1,), model.max_len))["params"]

    def num_train_examples(self, config: ml_collections.ConfigDict) -> int:
        return len(self._split(config, train=True))

    def train_data(
        self,
        config: ml_collections.ConfigDict,
        *,
        batch_size: int,
        process_index: int,
        process_count: int,
    ) -> grain.DatasetIterator:
        return sequences.train_iterator(
            self._split(config, train=True),
            seed=config.seed,
            batch_size=batch_size,
            process_index=process_index,
            process_count=process_count,
        )

    def eval_data(
        self,
        config: ml_collections.ConfigDict,
        *,
        batch_size: int,
        process_index: int,
        process_count: int,
    ) -> Iterable[sequences.Batch]:
        return sequences.eval_batches(
            self._split(config, train=False),
            batch_size=batch_size,
            process_index=process_index,
            process_count=process_count,
        )

    def loss(self, params, batch, rng, model, train, config):
        logits_BC = model.apply(
            {"params": params}, batch["tokens"], batch["length"], train, rngs={"dropout": rng}
        )
        losses_B = optax.softmax_cross_entropy_with_integer_labels(logits_BC, batch["label"])
        weight_B = batch.get("weight", jnp.ones_like(losses_B))
        return classification.weighted_mean_loss(logits_BC, losses_B, batch["label"], weight_B)


tasks.register_task(NAME, SequenceClassificationTask)
