"""The training loop shared by every task: `train_and_evaluate(config, workdir)`.

Order of a run:
1. Check everything that can be wrong with the config and workdir (ValueError naming the
   field), before any compilation.
2. Build the mesh, the model, the optimizer and the shardings of the train state.
3. Resume from the newest good checkpoint in `<workdir>/checkpoints`, else initialize.
4. Loop: dispatch step s, then fetch the metrics of step s-1 (so the host never stalls the
   device), log, evaluate and checkpoint at their intervals. SIGTERM saves and stops.
5. Evaluate and save at the end; write `summary.json`.
"""

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from attn_research import tasks
from attn_research.train import checkpoint, durations, optimizer, preemption, progress
from attn_research.train import run_info, sharding, steps
from attn_research.train.config import check_config
from attn_research.train.metric_writer import MetricWriter


@dataclasses.dataclass
class _Run:
  """The checked, built pieces of a run (nothing compiled yet)."""
  config: ml_collections.ConfigDict
  task: tasks.Task
  durations: durations.Durations
  mesh: jax.sharding.Mesh
  batch_sharding: jax.sharding.NamedSharding
  model: Any
  tx: Any
  schedule: Any
  abstract_state: Any
  state_shardings: Any


def _check_divisible(field: str, batch_size: int, parts: int, what: str) -> None:
  if batch_size % parts:
    raise ValueError(f"config.{field}: {batch_size} is not divisible by the {parts} {what}.")


def _prepare(config: ml_collections.ConfigDict, workdir: str,
             devices: Sequence[jax.Device]) -> _Run:
  """Checks the config and workdir and builds everything that does not need compiling.

  Raises:
    ValueError: naming the offending field (or the workdir).
  """
  if "task" not in config:
    raise ValueError("config.task: required field is missing.")
  task = tasks.get_task(config.task)
  config = check_config(config, task.config_keys)
  task.validate(config)
  run_info.check_workdir(workdir)
  mesh = sharding.make_mesh(config.mesh, devices)
  batch_sharding = sharding.batch_sharding(mesh, config.batch_axes)
  parallel = sharding.batch_parallelism(mesh, config.batch_axes)
  for field in ("batch_size", "eval_batch_size"):
    size = config[field] or config.batch_size
    _check_divisible(field, size, parallel, "data-parallel devices")
    _check_divisible(field, size, jax.process_count(), "processes")
  resolved = durations.resolve_durations(config, task.num_train_examples(config))
  model = task.make_model(config)
  tx, schedule = optimizer.make_optimizer(config.optimizer, resolved.total_steps,
                                          resolved.warmup_steps)
  init = steps.make_init(task, model, tx, config)
  abstract_state = jax.eval_shape(init, jax.random.key(0))
  state_shardings = sharding.state_shardings(abstract_state, config.param_sharding, mesh)
  return _Run(config, task, resolved, mesh, batch_sharding, model, tx, schedule,
              abstract_state, state_shardings)


def _global_batch(run: _Run, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
  """Assembles the per-process numpy batches into one batch sharded over the mesh."""
  return {name: jax.make_array_from_process_local_data(run.batch_sharding, np.asarray(value))
          for name, value in local_batch.items()}


def _log_line(step: int, total: int, loss: float, speed: Mapping[str, float]) -> str:
  eta = time.strftime("%H:%M:%S", time.gmtime(speed["eta_sec"]))
  return (f"step {step}/{total} | loss {loss:.4f} | {speed['steps_per_sec']:.2f} steps/s | "
          f"{speed['examples_per_sec']:.1f} examples/s | ETA {eta}")


class _Evaluator:
  """Runs the eval loop and the task's evaluators on the current parameters."""

  def __init__(self, run: _Run, workdir: str, eval_rng: jax.Array):
    self._run, self._workdir = run, workdir
    self._eval_step = jax.jit(steps.make_eval_step(run.task, run.model, eval_rng),
                              in_shardings=(run.state_shardings.params, run.batch_sharding))
    self._evaluators = run.task.evaluators(run.config)

  def __call__(self, params: Any, step: int) -> dict[str, float]:
    """Returns {'eval/<name>': value} for the loss's metrics (mean over batches) and evaluators."""
    run = self._run
    batch_size = run.config.eval_batch_size or run.config.batch_size
    totals, count = None, 0
    for local in run.task.eval_data(run.config, batch_size=batch_size // jax.process_count(),
                                    process_index=jax.process_index(),
                                    process_count=jax.process_count()):
      metrics = self._eval_step(params, _global_batch(run, local))
      totals = metrics if totals is None else jax.tree.map(np.add, totals, metrics)
      count += 1
    results = {}
    if count:
      results = {f"eval/{k}": float(v) / count for k, v in jax.device_get(totals).items()}
    for evaluator in self._evaluators:
      results.update({f"eval/{k}": float(v)
                      for k, v in evaluator(params, run.model, step, self._workdir).items()})
    return results


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       devices: Sequence[jax.Device] | None = None) -> dict[str, Any]:
  """Trains `config.task` as described by `config`, resuming from `workdir` if possible.

  Args:
    config: the experiment config (see `attn_research.train.config.default_config`).
    workdir: where checkpoints, metrics, the config and `summary.json` go.
    devices: the devices of the mesh; default all devices of all processes.

  Returns:
    The summary (also written to `<workdir>/summary.json` unless stopped by SIGTERM): final
    step, eval metrics, last train metrics and timings.

  Raises:
    ValueError: for a bad config or workdir, before anything is compiled.
    FloatingPointError: when the loss becomes NaN or Inf; the last good checkpoint is kept.
  """
  run = _prepare(config, workdir, devices or jax.devices())
  config, total = run.config, run.durations.total_steps
  run_info.write_run_info(workdir, config, run.durations)
  init_rng, train_rng, eval_rng = jax.random.split(jax.random.key(config.seed), 3)
  process_batch = config.batch_size // jax.process_count()
  data = run.task.train_data(config, batch_size=process_batch,
                             process_index=jax.process_index(),
                             process_count=jax.process_count())
  abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                          run.abstract_state, run.state_shardings)
  ckpt = checkpoint.Checkpointer(workdir, config.keep_checkpoints)
  restored = ckpt.restore(abstract, data)
  if restored:
    state, start = restored
    logging.info("Resumed from the checkpoint at step %d.", start)
  else:
    init = steps.make_init(run.task, run.model, run.tx, config)
    state, start = jax.jit(init, out_shardings=run.state_shardings)(init_rng), 0
  writer = MetricWriter(workdir, start)
  evaluate = _Evaluator(run, workdir, eval_rng)
  train_step = jax.jit(steps.make_train_step(run.task, run.model, run.tx, run.schedule,
                                             train_rng),
                       in_shardings=(run.state_shardings, run.batch_sharding),
                       out_shardings=(run.state_shardings, None), donate_argnums=0)
  summary = {"compile_sec": 0.0, "train": {}, "eval": {}}
  try:
    with preemption.sigterm_flag() as sigterm:
      stopped = _loop(run, workdir, state, start, data, train_step, ckpt, writer, evaluate,
                      sigterm, summary)
  finally:
    ckpt.close()
    writer.close()
  if not stopped:
    run_info.write_json(workdir, "summary.json", summary)
  return summary


def _loop(run: _Run, workdir: str, state: steps.TrainState, start: int, data: Any,
          train_step: Any, ckpt: checkpoint.Checkpointer, writer: MetricWriter,
          evaluate: _Evaluator, sigterm: Any, summary: dict[str, Any]) -> bool:
  """Trains from `start` to the end; returns True if stopped early by SIGTERM.

  Fills `summary` with the last train and eval metrics and the timings.
  """
  del workdir
  config, spans = run.config, run.durations
  total = spans.total_steps
  step_fn, batch = train_step, None
  if start < total:
    batch = _global_batch(run, next(data))
    compile_start = time.perf_counter()
    step_fn = train_step.lower(state, batch).compile()
    summary["compile_sec"] = time.perf_counter() - compile_start
    logging.info("Compiled the train step in %.1fs.", summary["compile_sec"])
  clock = progress.Progress(start, total, config.batch_size)

  def fetch(step: int, metrics: Any) -> None:
    """Brings step's metrics to the host, stops on a bad loss, logs at log steps."""
    metrics = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
    if not np.isfinite(metrics["train/loss"]):
      raise FloatingPointError(
          f"Loss is {metrics['train/loss']} at step {step}; stopping. The last good checkpoint "
          f"is step {ckpt.latest_step()}.")
    summary["train"] = metrics
    if step % spans.log_every == 0 or step == total:
      speed = clock.measure(step)
      logging.info(_log_line(step, total, metrics["train/loss"], speed))
      writer.write(step, {**metrics, **{f"perf/{k}": v for k, v in speed.items()}})

  pending = None
  step = start
  for step in range(start + 1, total + 1):
    if batch is None:
      batch = _global_batch(run, next(data))
    state, metrics = step_fn(state, batch)
    batch = None
    if pending:
      fetch(*pending)
    pending = (step, metrics)
    preempted = sigterm.is_set() or ckpt.reached_preemption(step)
    save_now = step % spans.checkpoint_every == 0 or step == total or preempted
    eval_now = (step % spans.eval_every == 0 or step == total) and not preempted
    if save_now or eval_now:
      fetch(*pending)
      pending = None
      with clock.paused():
        if eval_now:
          summary["eval"] = evaluate(state.params, step)
          writer.write(step, summary["eval"])
          logging.info("step %d eval: %s", step, summary["eval"])
        if save_now:
          ckpt.save(step, state, data, config)
    if preempted:
      ckpt.wait()
      logging.warning("Stopped by SIGTERM after saving step %d.", step)
      return True
  if start == total and not summary["eval"]:
    summary["eval"] = evaluate(state.params, total)
  summary.update(step=total, train_sec=clock.train_time,
                 steps_per_sec=(total - start) / max(clock.train_time, 1e-9))
  return False
