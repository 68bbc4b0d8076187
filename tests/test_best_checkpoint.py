"""The best checkpoint by an eval metric, early stopping, and checkpoint averaging."""

import json
import os

import jax
import numpy as np
import pytest
import train_toy_config

from attn_research import average_checkpoints
from attn_research.predict import run_files
from attn_research.train import checkpoint, train_and_evaluate


def _config(**changes):
    config = train_toy_config.get_config("tiny")
    config.eval_every_steps = 10
    for key, value in changes.items():
        config[key] = value
    return config


def _eval_losses(workdir) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    return {r["step"]: r["eval/loss"] for r in records if "eval/loss" in r}


def _assert_trees_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.fixture(scope="module")
def every_checkpoint(tmp_path_factory):
    """A toy run keeping all its checkpoints (every 10 steps)."""
    workdir = str(tmp_path_factory.mktemp("all"))
    train_and_evaluate(_config(keep_checkpoints=10), workdir)
    return workdir


def test_the_best_checkpoint_has_the_best_metric_and_survives_the_rolling_deletion(
    every_checkpoint, tmp_path
):
    # "max" of a falling loss: the best is an early evaluation, long deleted from the rolling
    # checkpoints (keep 1).
    workdir = str(tmp_path)
    train_and_evaluate(
        _config(keep_checkpoints=1, best_metric="eval/loss", best_mode="max"), workdir
    )
    losses = _eval_losses(workdir)
    best_step = max(losses, key=losses.get)
    assert best_step < max(losses)
    assert run_files.complete_steps(workdir) == [max(losses)]
    params, step = run_files.restore_params(workdir, which="best")
    assert step == best_step
    # The same training keeping every checkpoint: the best's params are that step's.
    _assert_trees_equal(params, checkpoint.load_state(every_checkpoint, best_step)["params"])


def test_early_stopping_ends_the_run_after_n_evaluations_without_a_new_best(tmp_path):
    workdir = str(tmp_path)
    summary = train_and_evaluate(
        _config(best_metric="eval/loss", best_mode="max", early_stopping_evals=2), workdir
    )
    losses = _eval_losses(workdir)
    best_step = max(losses, key=losses.get)
    assert summary["early_stopped"] == {"step": best_step + 20, "best_step": best_step}
    assert summary["step"] == best_step + 20 == max(losses)
    assert run_files.complete_steps(workdir)[-1] == best_step + 20  # saved where it stopped


def test_averaged_params_are_the_mean_of_the_checkpoints_params(every_checkpoint):
    steps = run_files.complete_steps(every_checkpoint)[-3:]
    trees = [checkpoint.load_state(every_checkpoint, s)["params"] for s in steps]
    expected = jax.tree.map(lambda *leaves: sum(leaves) / len(leaves), *trees)
    params, step = run_files.restore_params(every_checkpoint, average=3)
    assert step == steps[-1]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), params, expected)
    # The command writes the same average as a checkpoint of its own.
    average_checkpoints.average_checkpoints(every_checkpoint, last=3)
    written, written_step = run_files.restore_params(every_checkpoint, which="averaged")
    assert written_step == steps[-1]
    _assert_trees_equal(written, params)
    assert run_files.complete_steps(every_checkpoint)[-3:] == steps  # rolling ones untouched


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"early_stopping_evals": 2}, "config.early_stopping_evals: needs config.best_metric"),
        ({"best_metric": "bleu"}, "config.best_metric: 'bleu' is not an eval metric"),
        ({"best_metric": "eval/loss", "best_mode": "lowest"}, "config.best_mode: unknown"),
    ],
)
def test_bad_best_settings_are_named(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(_config(**changes), str(tmp_path))
