"""Metrics to TensorBoard event files (tensorboardX) and to `<workdir>/metrics.jsonl`.

One JSON object per line: {"step": 100, "train/loss": 0.3, ...}. Only process 0 writes; on the
other processes the writer does nothing.
"""

import json
import os
from collections.abc import Mapping

import jax
import tensorboardX

JSONL_NAME = "metrics.jsonl"


class MetricWriter:
    """Writes scalar metrics of process 0 to TensorBoard and JSONL."""

    def __init__(self, workdir: str, resume_step: int):
        """Opens the writers; metrics after `resume_step` from an interrupted run are dropped.

        A run killed after its last checkpoint logged steps that the resumed run will redo; dropping
        them keeps `metrics.jsonl` identical to that of an uninterrupted run.
        """
        self._active = jax.process_index() == 0
        if not self._active:
            return
        self._jsonl_path = os.path.join(workdir, JSONL_NAME)
        _drop_records_after(self._jsonl_path, resume_step)
        self._jsonl = open(self._jsonl_path, "a", encoding="utf-8")
        self._tensorboard = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        """Writes scalar `metrics` of `step`."""
        if not self._active:
            return
        record = {"step": step, **{name: float(value) for name, value in metrics.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        for name, value in metrics.items():
            self._tensorboard.add_scalar(name, float(value), step)

    def close(self) -> None:
        """Flushes and closes the files."""
        if self._active:
            self._jsonl.close()
            self._tensorboard.close()


def _drop_records_after(path: str, step: int) -> None:
    """Rewrites the JSONL file at `path` without the records of steps after `step`."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(kept)
