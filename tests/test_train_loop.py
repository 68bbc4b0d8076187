"""End to end, in process: `train_and_evaluate` on the toy task (tests/train_toy_task.py)."""

import json
import os

import jax
import numpy as np
import pytest
import train_toy_config

from attn_research.train import train_and_evaluate
from attn_research.train.checkpoint import load_state

_config = train_toy_config.with_changes


def _records(workdir, prefix):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return {r["step"]: r for r in records if any(k.startswith(prefix) for k in r)}


def test_loss_decreases_in_bfloat16_with_float32_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    workdir = "run"  # relative, as a user types it: checkpoints (orbax) need it made absolute
    summary = train_and_evaluate(_config("tiny,dtype=bfloat16"), workdir)
    train = _records(workdir, "train/")
    assert train[60]["train/loss"] < 0.6 * train[10]["train/loss"]
    assert summary["eval"]["eval/accuracy"] > 0.8
    assert summary["eval"]["eval/loss"] < _records(workdir, "eval/")[20]["eval/loss"]
    state = load_state(workdir)
    assert state["step"] == 60
    assert {leaf.dtype for leaf in jax.tree.leaves(state["params"])} == {np.dtype("float32")}
    assert summary["num_params"] == sum(leaf.size for leaf in jax.tree.leaves(state["params"]))
    # What the workdir records about the run.
    with open(os.path.join(workdir, "summary.json")) as f:
        written = json.load(f)
    assert written["eval"] == summary["eval"]
    assert written["signatures"] == {"eval/param_norm": "l2 norm of every parameter"}
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["dtype"] == "bfloat16"
    with open(os.path.join(workdir, "run_info.json")) as f:
        info = json.load(f)
    assert info["versions"]["jax"] == jax.__version__ and "git_commit" in info
    assert info["durations"]["total_steps"] == 60
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert {"perf/steps_per_sec", "perf/examples_per_sec", "perf/eta_sec"} <= set(train[10])


GOLDEN_LOSS_1, GOLDEN_LOSS_2, GOLDEN_LOSS_3 = (
    2.0497193336486816,
    2.2973804473876953,
    1.9621479511260986,
)


def test_golden_first_steps(tmp_path):
    """Recorded for seed 0 on 8 CPU devices (float32); a change here changes every result."""
    train_and_evaluate(_config(total_steps=3, log_every_steps=1), str(tmp_path))
    train = _records(str(tmp_path), "train/")
    # Warmup starts at zero, so steps 1 and 2 see the initial parameters; step 3 sees one update.
    assert [train[step]["train/learning_rate"] for step in (1, 2)] == pytest.approx([0.0, 2e-3])
    assert train[1]["train/loss"] == pytest.approx(GOLDEN_LOSS_1, rel=1e-5)
    assert train[2]["train/loss"] == pytest.approx(GOLDEN_LOSS_2, rel=1e-5)
    assert train[3]["train/loss"] == pytest.approx(GOLDEN_LOSS_3, rel=1e-5)


def test_one_and_eight_devices_agree(tmp_path):
    one, eight = str(tmp_path / "one"), str(tmp_path / "eight")
    train_and_evaluate(_config(total_steps=20), one, devices=jax.devices()[:1])
    sharded = _config(
        total_steps=20,
        mesh={"data": 4, "model": 2},
        param_sharding=(
            (r"blocks/.*kernel$", (None, None, "model")),
            (r"Dense_0/kernel$", (None, "model")),
        ),
    )
    train_and_evaluate(sharded, eight)
    params_one, params_eight = load_state(one)["params"], load_state(eight)["params"]
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6),
        params_one,
        params_eight,
    )
    eval_one, eval_eight = _records(one, "eval/")[20], _records(eight, "eval/")[20]
    assert eval_one["eval/loss"] == pytest.approx(eval_eight["eval/loss"], rel=1e-4)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path):
    config = _config(checkpoint_every_steps=5, data__nan_at_step=13)
    with pytest.raises(FloatingPointError, match="at step 13.*last sane checkpoint .* is step 10"):
        train_and_evaluate(config, str(tmp_path))
    state = load_state(str(tmp_path))
    assert state["step"] == 10
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state["params"]))
    assert not os.path.exists(tmp_path / "summary.json")


def _truncate_files(directory):
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)


def test_corrupted_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    workdir = str(tmp_path)
    train_and_evaluate(_config(total_steps=30), workdir)
    uninterrupted = load_state(workdir)["params"]
    _truncate_files(os.path.join(workdir, "checkpoints", "30", "state"))
    train_and_evaluate(_config(total_steps=30), workdir)
    assert "Checkpoint at step 30 does not restore" in caplog.text
    assert os.listdir(os.path.join(workdir, "checkpoints_corrupt", "30"))  # Kept, not deleted.
    # Resumed from step 20 and redid steps 21-30 exactly.
    jax.tree.map(np.testing.assert_array_equal, uninterrupted, load_state(workdir)["params"])


def test_resuming_with_a_changed_config_warns(tmp_path, caplog):
    train_and_evaluate(_config(total_steps=10), str(tmp_path))
    train_and_evaluate(_config(total_steps=12), str(tmp_path))
    assert "differs from the checkpoint's (saved, now): {'total_steps': (10, 12)}" in caplog.text
