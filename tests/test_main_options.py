"""`--dry_run` for every config file in experiments/configs/ (its `tiny` variant), in process:
the report holds the parameter count of the model the trainer would build, the mesh and the
kernel `auto` picks; nothing is written to the workdir."""

import importlib
import pathlib
import subprocess
import sys

import jax
import pytest

from attn_research import tasks
from attn_research.train import dry_run
from attn_research.train.config import check_config

_CONFIGS = sorted(
    p.stem for p in (pathlib.Path(__file__).parent.parent / "experiments/configs").glob("*.py")
)


@pytest.mark.parametrize("name", [c for c in _CONFIGS if c != "__init__"])
def test_dry_run_reports_every_config(name, tmp_path):
    config = importlib.import_module(f"experiments.configs.{name}").get_config("tiny")
    report = dry_run.describe(config.copy_and_resolve_references())
    # The reference: the task's own initialization, shapes only, outside the trainer.
    task = tasks.get_task(config.task)
    config = check_config(config, task.config_keys)
    task.use_workdir(config, str(tmp_path))
    model = task.make_model(config)
    params = jax.eval_shape(lambda rng: task.init_params(model, rng, config), jax.random.key(0))
    count = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
    assert f"parameters: {count:,}\n" in report
    assert f"mesh: {{'data': {jax.device_count()}}}" in report
    assert "attention kernels:\n  " in report
    assert "config:\n" in report and f"task: {config.task}" in report


def test_dry_run_names_auto_kernel_choices():
    config = importlib.import_module("experiments.configs.vit").get_config(
        "attention=local_2d,tiny"
    )
    assert "attention kernel auto -> " in dry_run.describe(config)


def _main(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attn_research.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=pathlib.Path(__file__).parent.parent,
    )


def test_print_config_and_help_show_the_config_files_arguments(tmp_path):
    config = "--config=experiments/configs/vit.py:tiny"
    shown = _main(config, f"--workdir={tmp_path}", "--print_config", "--config.batch_size=12")
    assert shown.returncode == 0, shown.stderr
    assert "Args (``vit.py:key=value,...``):" in shown.stdout
    assert "\nbatch_size: 12\n" in shown.stdout and "\nmodel:\n" in shown.stdout
    assert not list(tmp_path.iterdir())
    helped = _main(config, "--helpfull")
    assert "Args (``vit.py:key=value,...``):" in helped.stdout and "--dry_run" in helped.stdout
    assert "--workdir /tmp/run \\\n" in helped.stdout  # main's docstring keeps its backslash.
