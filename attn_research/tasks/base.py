"""The task interface: the model, input pipelines, loss and evaluators the trainer is given.

Tasks are stateless; every method receives the checked config. Batches are dicts of numpy
arrays, batch-leading, per process (`batch_size // process_count` examples). Training reads one
infinite, deterministic, checkpointable `grain.DatasetIterator` (a resumed run sees the batches
an uninterrupted one would), in a few shapes at most (one compiled step per shape). Evaluation
reads a fresh finite iterable, the same number of equal batches on every process; a loss
metric ``denominator`` (examples or tokens, padding excluded) weighs each batch in eval means.
"""

import abc
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

import flax.linen as nn
import grain
import jax
import ml_collections
import numpy as np

Batch = dict[str, np.ndarray]
Params = Any
# An evaluator: (params, model, step, workdir) -> scalar metrics. It runs on every process after
# the eval loop (so it may run jitted computations on the sharded params); only process 0 should
# write files such as figures (`jax.process_index() == 0`).
Evaluator = Callable[[Params, nn.Module, int, str], Mapping[str, float]]


class Task(abc.ABC):
    """A problem the trainer can train on; subclass it and register a factory by name."""

    # Top-level config keys the task owns (e.g. ('model', 'data')); any other key not known to the
    # trainer is an error.
    config_keys: Sequence[str] = ()

    def use_workdir(self, config: ml_collections.ConfigDict, workdir: str) -> None:
        """Points the task's own files (e.g. a trained tokenizer) into the run's absolute `workdir`
        by filling fields of `config` in place; called before `validate`. Default: nothing."""

    def validate(self, config: ml_collections.ConfigDict) -> None:
        """Checks the task's config keys before anything is compiled; ValueError naming the field."""

    @abc.abstractmethod
    def make_model(self, config: ml_collections.ConfigDict) -> nn.Module:
        """Returns the model; it must compute in `config.dtype` and keep float32 parameters."""

    @abc.abstractmethod
    def init_params(
        self, model: nn.Module, rng: jax.Array, config: ml_collections.ConfigDict
    ) -> Params:
        """Returns freshly initialized parameters (called under jit; use dummy inputs)."""

    @abc.abstractmethod
    def num_train_examples(self, config: ml_collections.ConfigDict) -> int:
        """Size of the training set, all processes together; converts epochs to steps."""

    @abc.abstractmethod
    def train_data(
        self,
        config: ml_collections.ConfigDict,
        *,
        batch_size: int,
        process_index: int,
        process_count: int,
    ) -> grain.DatasetIterator:
        """The infinite, checkpointable iterator of this process's train batches (seeded from
        `config.seed`; only this process's shard)."""

    @abc.abstractmethod
    def eval_data(
        self,
        config: ml_collections.ConfigDict,
        *,
        batch_size: int,
        process_index: int,
        process_count: int,
    ) -> Iterable[Batch]:
        """Returns this process's eval batches (finite; same count on every process)."""

    @abc.abstractmethod
    def loss(
        self,
        params: Params,
        batch: Batch,
        rng: jax.Array,
        model: nn.Module,
        train: bool,
        config: ml_collections.ConfigDict,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The scalar float32 loss and scalar metrics of one global batch, under jit; `rng` is
        the step's key, `train` selects dropout."""

    def evaluators(self, config: ml_collections.ConfigDict) -> Sequence[Evaluator]:
        """Returns the evaluators run at each evaluation (BLEU, attention figures, ...)."""
        del config
        return ()

    def metric_signatures(self, config: ml_collections.ConfigDict) -> Mapping[str, str]:
        """{eval metric name: how it is computed} (sacrebleu's signature for ``eval/bleu``)."""
        del config
        return {}
