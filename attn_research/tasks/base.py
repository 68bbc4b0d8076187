"""The task interface: everything the trainer needs to know about one kind of problem.

A task hands the trainer a model, input pipelines, a loss and evaluators; the trainer knows
nothing of text or images. Tasks are stateless: every method receives the (complete, checked)
config, so the same task object serves every run.

Batches are dicts of numpy arrays whose leading dimension is the batch. Train and eval
pipelines yield *per-process* batches (`batch_size // process_count` examples); the trainer
assembles them into global arrays sharded over the mesh.

Training reads one infinite, deterministic iterator whose position can be checkpointed: a
`grain.DatasetIterator` (e.g. `MapDataset.source(...).shuffle(seed).repeat().slice(...)
.batch(...).to_iter_dataset()`), saved and restored with the train state so that a resumed run
sees exactly the batches an uninterrupted one would. Train batches may come in a few shapes
(e.g. bucketed by length): the trainer compiles the train step once per shape.

Evaluation reads a fresh finite iterable each time. Every process must yield the same number
of equally-sized batches. The loss's metrics may include ``denominator``, the number of examples
or tokens its means are over (padding excluded); eval metrics are then true means over the eval
set, each batch weighted by it (else every batch weighs 1).
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
        """Checks the task's config keys before anything is compiled.

        Raises:
          ValueError: with a message naming the offending field (e.g. config.model.window).
        """

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
        """Returns the infinite, checkpointable iterator of this process's train batches.

        Args:
          config: the run's config (seed it from `config.seed`).
          batch_size: examples per batch on this process.
          process_index: this process's index; read only this process's shard of the data.
          process_count: the number of processes.
        """

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
        """Returns the scalar float32 loss to minimize and scalar metrics, for one global batch.

        Runs under jit on the global (sharded) batch. `rng` is the step's key (fold it further for
        dropout); `train` selects dropout and other train-only behaviour; `config` is the run's
        (e.g. its label smoothing).
        """

    def evaluators(self, config: ml_collections.ConfigDict) -> Sequence[Evaluator]:
        """Returns the evaluators run at each evaluation (BLEU, attention figures, ...)."""
        del config
        return ()

    def metric_signatures(self, config: ml_collections.ConfigDict) -> Mapping[str, str]:
        """{eval metric name: how it is computed}, for the metrics that carry such a signature
        (sacrebleu's for ``eval/bleu``); the trainer puts them in the summary, the logs and
        TensorBoard. Default: none."""
        del config
        return {}
