"""Metrics to TensorBoard (tensorboardX) and to `<workdir>/metrics.jsonl` (one JSON object per
line, {"step": 100, "train/loss": 0.3, ...}); only process 0 writes.

PNG figures that evaluators draw into `<workdir>/figures/` go to TensorBoard as images of their
step, tagged `figures/<file name without its step>`. The config goes to the HParams tab at each
run start, flattened to dotted names; metric signatures (sacrebleu's) go as text.
"""

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import tensorboardX
from PIL import Image
from tensorboardX.summary import hparams

JSONL_NAME = "metrics.jsonl"
FIGURES_DIR = "figures"
_STEP_SUFFIX = re.compile(r"(_step)?_\d+$")


def flat_hparams(config: ml_collections.ConfigDict) -> dict[str, bool | int | float | str]:
    """The config's leaves by dotted path; what TensorBoard's HParams cannot show (None, tuples,
    lists) as their text."""
    out = {}

    def visit(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                visit(f"{prefix}{key}.", value)
        else:
            keep = isinstance(node, (bool, int, float, str))
            out[prefix[:-1]] = node if keep else str(node)

    visit("", config.to_dict())
    return out


def figure_tag(file_name: str) -> str:
    """The TensorBoard tag of a figure file: `figures/<name>` without the step in its name."""
    return f"{FIGURES_DIR}/{_STEP_SUFFIX.sub('', os.path.splitext(file_name)[0])}"


class MetricWriter:
    """Writes scalar metrics of process 0 to TensorBoard and JSONL."""

    def __init__(self, workdir: str, resume_step: int):
        """Opens the writers; metrics after `resume_step` are dropped, so a resumed run's
        `metrics.jsonl` is that of an uninterrupted run."""
        self._active = jax.process_index() == 0
        if not self._active:
            return
        self._jsonl_path = os.path.join(workdir, JSONL_NAME)
        _drop_records_after(self._jsonl_path, resume_step)
        self._jsonl = open(self._jsonl_path, "a", encoding="utf-8")
        self._tensorboard = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))
        self._figures = os.path.join(workdir, FIGURES_DIR)
        self._seen = self._figure_times()  # Figures of an earlier run are not logged again.

    def _figure_times(self) -> dict[str, int]:
        """{file name: modification time in ns} of the PNG figures."""
        if not os.path.isdir(self._figures):
            return {}
        return {
            entry.name: entry.stat().st_mtime_ns
            for entry in os.scandir(self._figures)
            if entry.name.endswith(".png")
        }

    def _write_figures(self, step: int) -> None:
        """Adds the figures written since the last call to TensorBoard as images of `step`."""
        times = self._figure_times()
        for name in sorted(times):
            if self._seen.get(name) == times[name]:
                continue
            with Image.open(os.path.join(self._figures, name)) as image:
                pixels = np.asarray(image.convert("RGB"))
            self._tensorboard.add_image(figure_tag(name), pixels, step, dataformats="HWC")
        self._seen = times

    def write_config(
        self, config: ml_collections.ConfigDict, signatures: Mapping[str, str]
    ) -> None:
        """Writes the config as hyper-parameters and each metric's signature as text."""
        if not self._active:
            return
        writer = self._tensorboard._get_file_writer()  # add_hparams would open another run.
        for summary in hparams(flat_hparams(config), metric_dict={}):
            writer.add_summary(summary)
        for metric, text in signatures.items():
            self._tensorboard.add_text(f"signatures/{metric}", text)

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        """Writes scalar `metrics` of `step`, and the figures drawn since the last write."""
        if not self._active:
            return
        record = {"step": step, **{name: float(value) for name, value in metrics.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        for name, value in metrics.items():
            self._tensorboard.add_scalar(name, float(value), step)
        self._write_figures(step)

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
