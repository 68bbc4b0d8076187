"""A tiny synthetic classification task, the trainer's test subject and working example.

Data: `num_train + num_eval` points x ~ N(0, I) in `features` dimensions, labelled by the argmax
of a fixed random linear map, all drawn from `config.data.seed`. The train pipeline is the
canonical grain chain: MapDataset -> shuffle(config.seed) -> repeat -> per-process slice ->
batch -> checkpointable iterator.

Model: an MLP of residual blocks stacked with `scan_layers`, computing in `config.dtype` with
float32 parameters and float32 logits.

Test hooks under `config.data`: `delay_sec` slows each batch down (so a subprocess can be
killed mid-run), `nan_at_step` makes the inputs of that step's batch NaN, `signal_at_step`
makes the process send itself `signal` (a name, e.g. 'SIGINT') `signal_count` times as it
reads that step's batch, and `signal_at_startup` sends it once while the model is built.
"""

import functools
import os
import signal
import time
from collections.abc import Iterable

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from attn_research import tasks
from attn_research.models.scan import scan_layers

NAME = "toy"


class Block(nn.Module):
    """Residual MLP block: x + Dropout(Dense(relu(Dense(x))))."""

    dim: int
    dropout: float
    dtype: jnp.dtype
    deterministic: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, None]:
        y = nn.relu(nn.Dense(self.dim, dtype=self.dtype)(x))
        y = nn.Dense(self.dim, dtype=self.dtype)(y)
        return x + nn.Dropout(self.dropout, deterministic=self.deterministic)(y), None


class Classifier(nn.Module):
    """x_BF -> logits_BC (float32)."""

    hidden: int
    num_layers: int
    num_classes: int
    dropout: float
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x_BF: jax.Array, train: bool) -> jax.Array:
        h_BH = nn.Dense(self.hidden, dtype=self.dtype)(x_BF)
        h_BH, _ = scan_layers(
            Block,
            self.num_layers,
            name="blocks",
            dim=self.hidden,
            dropout=self.dropout,
            dtype=self.dtype,
            deterministic=not train,
        )(h_BH)
        return nn.Dense(self.num_classes, dtype=self.dtype)(h_BH).astype(jnp.float32)


@functools.lru_cache(maxsize=4)
def _points(seed: int, count: int, features: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` deterministic (x, label) pairs; the first ones are shared by any larger count."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(features, classes))
    x = rng.normal(size=(count, features)).astype(np.float32)
    return x, np.argmax(x @ w, axis=-1).astype(np.int32)


def _send(name: str, count: int) -> None:
    """Sends this process the signal `name` `count` times, each handled before the next."""
    for _ in range(count):
        os.kill(os.getpid(), getattr(signal, name))


class ToyTask(tasks.Task):
    """Synthetic linear-boundary classification."""

    config_keys = ("model", "data")

    def validate(self, config: ml_collections.ConfigDict) -> None:
        for path in (
            "model.hidden",
            "model.num_layers",
            "data.num_train",
            "data.num_eval",
            "data.features",
            "data.classes",
        ):
            section, key = path.split(".")
            if config[section][key] < 1:
                raise ValueError(f"config.{path}: must be >= 1, got {config[section][key]}.")
        if not 0 <= config.model.dropout < 1:
            raise ValueError(
                f"config.model.dropout: must be in [0, 1), got {config.model.dropout}."
            )

    def make_model(self, config: ml_collections.ConfigDict) -> nn.Module:
        if config.data.signal_at_startup:
            _send(config.data.signal, 1)
        return Classifier(
            config.model.hidden,
            config.model.num_layers,
            config.data.classes,
            config.model.dropout,
            jnp.dtype(config.dtype),
        )

    def init_params(self, model: nn.Module, rng: jax.Array, config: ml_collections.ConfigDict):
        return model.init(rng, jnp.zeros((1, config.data.features)), train=False)["params"]

    def num_train_examples(self, config: ml_collections.ConfigDict) -> int:
        return config.data.num_train

    def _split(self, config: ml_collections.ConfigDict, train: bool) -> grain.MapDataset:
        data = config.data
        x, y = _points(data.seed, data.num_train + data.num_eval, data.features, data.classes)
        part = slice(0, data.num_train) if train else slice(data.num_train, None)
        x, y = x[part], y[part]
        return grain.MapDataset.range(len(x)).map(lambda i: {"x": x[i], "y": y[i]})

    def train_data(
        self,
        config: ml_collections.ConfigDict,
        *,
        batch_size: int,
        process_index: int,
        process_count: int,
    ) -> grain.DatasetIterator:
        data = config.data

        def hooks(index: int, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            time.sleep(data.delay_sec)
            if index + 1 == data.nan_at_step:
                batch = {**batch, "x": np.full_like(batch["x"], np.nan)}
            if index + 1 == data.signal_at_step:
                _send(data.signal, data.signal_count)
            return batch

        dataset = (
            self._split(config, train=True)
            .shuffle(seed=config.seed)
            .repeat()[process_index::process_count]
            .batch(batch_size, drop_remainder=True)
            .map_with_index(hooks)
        )
        return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=0)))

    def eval_data(
        self,
        config: ml_collections.ConfigDict,
        *,
        batch_size: int,
        process_index: int,
        process_count: int,
    ) -> Iterable[dict[str, np.ndarray]]:
        dataset = self._split(config, train=False)[process_index::process_count]
        return dataset.batch(batch_size, drop_remainder=True)

    def loss(self, params, batch, rng, model, train, config):
        logits_BC = model.apply({"params": params}, batch["x"], train, rngs={"dropout": rng})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits_BC, batch["y"]).mean()
        accuracy = jnp.mean(jnp.argmax(logits_BC, -1) == batch["y"])
        return loss, {"accuracy": accuracy}

    def evaluators(self, config: ml_collections.ConfigDict):
        del config
        return (lambda params, model, step, workdir: {"param_norm": optax.tree.norm(params)},)

    def metric_signatures(self, config: ml_collections.ConfigDict):
        del config
        return {"eval/param_norm": "l2 norm of every parameter"}


tasks.register_task(NAME, ToyTask)
