"""What a run would build, told without training: `python -m attn_research.main ... --dry_run`.

`describe(config)` checks the config as a run does, builds the mesh, the model and the
optimizer, and traces the initialization with `jax.eval_shape` (nothing compiled or
allocated). It reports the resolved config and durations, the parameter count (in all and per
top-level module), the mesh, and the kernel `attention.kernels.auto` picks for each attention (a scanned stack
shares one line). The task's own files go to a temporary directory, not the workdir.
"""

import contextlib
import logging
import math
import tempfile
from collections.abc import Iterator, Sequence

import jax
import ml_collections

from attn_research import tasks
from attn_research.train import trainer
from attn_research.train.config import check_config

_KERNEL_LOG = "attention kernel auto"


class _Collect(logging.Handler):
    """Keeps the messages that start with `_KERNEL_LOG`."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(_KERNEL_LOG):
            self.lines.append(message)


@contextlib.contextmanager
def _kernel_choices() -> Iterator[list[str]]:
    """Collects the kernel choices logged (through absl's logger) inside the block."""
    logger = logging.getLogger("absl")
    collect, level = _Collect(), logger.level
    logger.addHandler(collect)
    logger.setLevel(min(level or logging.INFO, logging.INFO))
    try:
        yield collect.lines
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)


def _count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def describe(config: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None) -> str:
    """The report of a dry run of `config` on `devices` (default: all), as text.

    Raises:
      ValueError: for a bad config, naming the field, as `train_and_evaluate` would.
    """
    task = tasks.get_task(config.get("task", ""))
    config = check_config(config, task.config_keys)
    with tempfile.TemporaryDirectory() as scratch, _kernel_choices() as kernels:
        run = trainer.prepare(config, task, scratch, devices or jax.devices())
    params = run.abstract_state.params
    mesh = run.batch_sharding.mesh
    modules = (
        [f"  {name}: {_count(sub):,}" for name, sub in params.items()]
        if isinstance(params, dict)
        else []
    )
    platforms = sorted({device.platform for device in mesh.devices.flat})
    return "\n".join(
        [
            "config:",
            str(run.config).rstrip(),
            f"durations: {run.durations}",
            f"parameters: {_count(params):,}",
            *modules,
            f"mesh: {dict(mesh.shape)} over {mesh.devices.size} {'/'.join(platforms)} devices",
            "attention kernels:",
            *([f"  {line}" for line in dict.fromkeys(kernels)] or ["  (none chosen by auto)"]),
        ]
    )
