"""The training loop shared by every task: `train_and_evaluate(config, workdir)`.

Order of a run:
1. Check the config and workdir (ValueError naming the field), before any compilation.
2. Build the mesh, the model, the optimizer and the train state's shardings.
3. Resume from the newest good checkpoint, else initialize.
4. Check ``config.best_metric`` against the metrics an evaluation gives.
5. Loop: dispatch step s, then fetch step s-1's metrics (the host never stalls the device);
   log, evaluate and checkpoint at their intervals. A SIGTERM or SIGINT finishes the step,
   saves and stops (exit 0).
6. Evaluate and save at the end; write `summary.json`.

The workdir is locked for the run (`workdir_lock`); a failed save stops the run.
"""

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import ml_collections
from absl import logging

from attn_research import tasks
from attn_research.train import best as best_lib
from attn_research.train import (
    checkpoint,
    durations,
    evaluator,
    health,
    optimizer,
    preemption,
    progress,
    run_info,
    sharding,
    steps,
    workdir_lock,
)
from attn_research.train.config import check_config
from attn_research.train.metric_writer import JSONL_NAME, MetricWriter


@dataclasses.dataclass
class Run:
    """The checked, built pieces of a run (nothing compiled yet)."""

    config: ml_collections.ConfigDict
    task: tasks.Task
    durations: durations.Durations
    batch_sharding: jax.sharding.NamedSharding
    model: Any
    tx: Any
    schedule: Any
    init: Any  # rng -> TrainState at step 0.
    abstract_state: Any
    state_shardings: Any


def _check_divisible(field: str, batch_size: int, parts: int, what: str) -> None:
    """Raises ValueError naming config.<field> unless `parts` divides `batch_size`."""
    if batch_size % parts:
        raise ValueError(f"config.{field}: {batch_size} is not divisible by the {parts} {what}.")


def prepare(
    config: ml_collections.ConfigDict,
    task: tasks.Task,
    workdir: str,
    devices: Sequence[jax.Device],
) -> Run:
    """Checks the task's fields and those that need the devices or the dataset size, and builds
    everything that needs no compiling.

    Raises:
      ValueError: naming the offending field.
    """
    task.use_workdir(config, os.path.abspath(workdir))
    task.validate(config)
    mesh = sharding.make_mesh(config.mesh, devices)
    batch_sharding = sharding.batch_sharding(mesh, config.batch_axes)
    parallel = sharding.batch_parallelism(mesh, config.batch_axes)
    for field in ("batch_size", "eval_batch_size"):
        size = config[field] or config.batch_size
        _check_divisible(field, size, parallel, "data-parallel devices")
        _check_divisible(field, size, jax.process_count(), "processes")
    resolved = durations.resolve_durations(config, task.num_train_examples(config))
    model = task.make_model(config)
    tx, schedule = optimizer.make_optimizer(
        config.optimizer,
        resolved.total_steps,
        resolved.warmup_steps,
        (resolved.halve_after, resolved.halve_every),
    )
    init = steps.make_init(task, model, tx, config)
    abstract_state = jax.eval_shape(init, jax.random.key(0))
    state_shardings = sharding.state_shardings(abstract_state, config.param_sharding, mesh)
    return Run(
        config,
        task,
        resolved,
        batch_sharding,
        model,
        tx,
        schedule,
        init,
        abstract_state,
        state_shardings,
    )


def _log_line(step: int, total: int, loss: float, speed: Mapping[str, float]) -> str:
    """The periodic progress line: step, loss, steps/s, examples/s, ETA."""
    eta = time.strftime("%H:%M:%S", time.gmtime(speed["eta_sec"]))
    return (
        f"step {step}/{total} | loss {loss:.4f} | {speed['steps_per_sec']:.2f} steps/s | "
        f"{speed['examples_per_sec']:.1f} examples/s | ETA {eta}"
    )


def _restore_or_init(
    run: Run, ckpt: checkpoint.Checkpointer, data: Any, init_rng: jax.Array
) -> tuple[steps.TrainState, int]:
    """(state, step) of the newest good checkpoint, or a fresh state at step 0. A changed config
    is logged (it breaks bit-identical resumption); other shapes raise
    `checkpoint.CheckpointMismatchError`.
    """
    abstract = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
        run.abstract_state,
        run.state_shardings,
    )
    restored = ckpt.restore(abstract, data, run.config.to_dict())
    if restored:
        state, step, saved_config = restored
        logging.info("Resumed from the checkpoint at step %d.", step)
        changed = checkpoint.config_changes(saved_config, run.config.to_dict())
        if changed:
            logging.warning("The config differs from the checkpoint's (saved, now): %s", changed)
        return state, step
    return jax.jit(run.init, out_shardings=run.state_shardings)(init_rng), 0


class _Loop:
    """The loop of one run: train steps, metrics, evaluation, checkpoints, preemption."""

    def __init__(
        self,
        run: Run,
        workdir: str,
        data: Any,
        ckpt: checkpoint.Checkpointer,
        best: best_lib.BestCheckpoint | None,
        writer: MetricWriter,
        train_rng: jax.Array,
        evaluate: evaluator.Evaluator,
    ):
        self._run, self._data, self._ckpt, self._writer = run, data, ckpt, writer
        self._best = best
        self._total = run.durations.total_steps
        self._train_step = jax.jit(
            steps.make_train_step(run.task, run.model, run.tx, run.schedule, train_rng, run.config),
            in_shardings=(run.state_shardings, run.batch_sharding),
            out_shardings=(run.state_shardings, None),
            donate_argnums=0,
        )
        self._steps: dict[tuple, Any] = {}  # compiled train steps by batch shapes
        self._evaluate = evaluate
        self._workdir = workdir
        self._health = health.Health(
            run.config.optimizer.learning_rate, ckpt.all_steps, f"{workdir}/checkpoints"
        )
        num_params = sum(leaf.size for leaf in jax.tree.leaves(run.abstract_state.params))
        self.summary: dict[str, Any] = {
            "step": 0,
            "preempted": False,
            "num_params": num_params,
            "compile_sec": 0.0,
            "train_sec": 0.0,
            "train": {},
            "eval": {},
        }

    def _next_batch(self) -> dict[str, jax.Array]:
        return evaluator.global_batch(self._run, next(self._data))

    def _compiled(self, state: steps.TrainState, batch: dict[str, jax.Array]) -> Any:
        """The train step compiled for the shapes of `batch` (tasks may bucket batches by length:
        one compilation per bucket), compiled off the training clock."""
        shapes = tuple((name, value.shape) for name, value in sorted(batch.items()))
        if shapes not in self._steps:
            with self._clock.paused():
                compile_start = time.perf_counter()
                self._steps[shapes] = self._train_step.lower(state, batch).compile()
                seconds = time.perf_counter() - compile_start
            self.summary["compile_sec"] += seconds
            logging.info("Compiled the train step for %s in %.1fs.", dict(shapes), seconds)
        return self._steps[shapes]

    def run(
        self, state: steps.TrainState, start: int, stop: preemption.StopRequest
    ) -> dict[str, Any]:
        """Trains from step `start` to the end, or until `stop` is set; returns the summary."""
        spans, total = self._run.durations, self._total
        self.summary["step"] = start
        if stop.is_set():  # Signalled during start-up.
            saved = f"the checkpoint of step {start} is kept" if start else "no checkpoint yet"
            logging.warning(
                "Stopped by %s during start-up, before the first step: nothing new was saved (%s).",
                stop.signal_name,
                saved,
            )
            self.summary["preempted"] = True
            return self.summary
        if start == total:  # Resumed a finished run: only evaluate.
            self.summary["train"] = _logged_train_metrics(self._workdir, total)
            self.summary["eval"] = self._evaluate(state.params, total)
            return self.summary
        if start:
            self._health.saved(start)
        self._clock = progress.Progress(start, total, self._run.config.batch_size)
        pending = None
        for step in range(start + 1, total + 1):
            self._ckpt.check()  # A failed background save stops the run at once.
            batch = self._next_batch()
            state, metrics = self._compiled(state, batch)(state, batch)
            if pending:  # The previous step's metrics, fetched while this step runs.
                self._fetch(*pending)
            pending = (step, metrics)
            preempted = stop.is_set() or self._ckpt.reached_preemption(step)
            save = step % spans.checkpoint_every == 0 or step == total or preempted
            evaluate = (step % spans.eval_every == 0 or step == total) and not preempted
            stopped_early = False
            if save or evaluate:
                self._fetch(*pending)  # Never save a state whose loss was not checked.
                pending = None
                with self._clock.paused():
                    if evaluate:
                        self.summary["eval"] = self._evaluate(state.params, step)
                        self._writer.write(step, self.summary["eval"])
                        logging.info("step %d eval: %s", step, self.summary["eval"])
                        if self._best:
                            self._best.offer(step, state.params, self.summary["eval"])
                            stopped_early = self._best.stop(step, spans.eval_every)
                            save = save or stopped_early
                    if save:
                        self._ckpt.save(step, state, self._data, self._run.config)
                        self._health.saved(step)
            self.summary["step"] = step
            if stopped_early:
                best = self._best.best_step()
                logging.warning(
                    "Early stopping at step %d: no better %s since step %d.",
                    step,
                    self._best.metric,
                    best,
                )
                self.summary["early_stopped"] = {"step": step, "best_step": best}
                break
            if preempted:
                self._ckpt.wait()
                by = stop.signal_name or "the preemption service"
                logging.warning("Stopped by %s after saving step %d.", by, step)
                self.summary["preempted"] = True
                break
        self.summary["train_sec"] = self._clock.train_time
        self.summary["steps_per_sec"] = (self.summary["step"] - start) / max(
            self._clock.train_time, 1e-9
        )
        return self.summary

    def _fetch(self, step: int, metrics: Any) -> None:
        """Brings a step's metrics to the host, stops on a bad loss, warns on an exploding one,
        logs at log steps."""
        metrics = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
        self._health.check(step, metrics)
        self.summary["train"] = metrics
        if step % self._run.durations.log_every == 0 or step == self._total:
            speed = self._clock.measure(step)
            logging.info(_log_line(step, self._total, metrics["train/loss"], speed))
            self._writer.write(step, {**metrics, **{f"perf/{k}": v for k, v in speed.items()}})


def _logged_train_metrics(workdir: str, step: int) -> dict[str, float]:
    """The train metrics that `metrics.jsonl` holds for `step` (empty if it holds none)."""
    path = os.path.join(workdir, JSONL_NAME)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return {
        key: value
        for record in records
        if record["step"] == step
        for key, value in record.items()
        if key.startswith("train/")
    }


@contextlib.contextmanager
def _closing(close: Callable[[], None], what: str) -> Iterator[None]:
    """Calls `close` after the block. When the block failed, a failure of `close` (the same
    full disk, say) is logged in one line instead of hiding the block's error."""
    try:
        yield
    except BaseException:
        try:
            close()
        except Exception as error:  # pylint: disable=broad-except
            logging.warning("Closing the %s failed too: %s: %s", what, type(error).__name__, error)
        raise
    close()


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, devices: Sequence[jax.Device] | None = None
) -> dict[str, Any]:
    """Trains `config.task` as `config` describes, resuming from `workdir` if possible.

    Args:
      config: the experiment config (`attn_research.train.config.default_config`).
      workdir: where checkpoints, metrics, the config and `summary.json` go.
      devices: the devices of the mesh; default all devices of all processes.

    Returns:
      The summary (final step, `preempted`, last train and eval metrics, compile and train time,
      steps/s), also written to `<workdir>/summary.json` unless preempted.

    Raises:
      ValueError: for a bad config, a workdir not writable or in use, or checkpoints of another
        model (`checkpoint.CheckpointMismatchError`), before anything is compiled.
      FloatingPointError: when the loss becomes NaN or Inf, naming the last sane checkpoint.
      checkpoint.CheckpointSaveError: when a save fails; older ones are intact.
    """
    with preemption.stop_signals() as stop:
        task = tasks.get_task(config.get("task", ""))
        config = check_config(config, task.config_keys)
        run_info.check_workdir(workdir)
        with workdir_lock.hold(workdir):
            return _train(config, task, workdir, devices or jax.devices(), stop)


def _train(
    config: ml_collections.ConfigDict,
    task: tasks.Task,
    workdir: str,
    devices: Sequence[jax.Device],
    stop: preemption.StopRequest,
) -> dict[str, Any]:
    """`train_and_evaluate` in the locked workdir, with its signals handled."""
    run = prepare(config, task, workdir, devices)
    run_info.write_run_info(workdir, run.config, run.durations)
    init_rng, train_rng, eval_rng = jax.random.split(jax.random.key(run.config.seed), 3)
    data = run.task.train_data(
        run.config,
        batch_size=run.config.batch_size // jax.process_count(),
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    ckpt = checkpoint.Checkpointer(workdir, run.config.keep_checkpoints)
    with _closing(ckpt.close, "checkpoints"):
        state, start = _restore_or_init(run, ckpt, data, init_rng)
        evaluate = evaluator.Evaluator(run, workdir, eval_rng)
        if run.config.best_metric and start < run.durations.total_steps:  # Before the first step.
            evaluate.check_metric("best_metric", run.config.best_metric, state.params, start)
        writer = MetricWriter(workdir, start)
        signatures = dict(run.task.metric_signatures(run.config))
        writer.write_config(run.config, signatures)
        for metric, text in signatures.items():
            logging.info("%s is %s", metric, text)
        best = None
        if run.config.best_metric:
            best = best_lib.BestCheckpoint(
                workdir,
                run.config.best_metric,
                run.config.best_mode,
                run.config.early_stopping_evals,
            )
        with (
            _closing(writer.close, "metric writer"),
            _closing(best.close if best else lambda: None, "best checkpoint"),
        ):
            loop = _Loop(run, workdir, data, ckpt, best, writer, train_rng, evaluate)
            summary = loop.run(state, start, stop)
    if signatures:
        summary["signatures"] = signatures
    if not summary["preempted"]:
        run_info.write_json(workdir, "summary.json", summary)
    return summary
