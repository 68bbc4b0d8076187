"""Launched `attn_research.main` processes: resumed after SIGKILL, SIGTERM or Ctrl-C (SIGINT)
they end bit-identical to an uninterrupted run; launched as two processes they train like one.
Also what only a process of its own shows: signals during start-up, a second SIGINT, a second
run on a workdir, and the command line's errors and durations."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import train_toy_config

from attn_research.train import train_and_evaluate
from attn_research.train.checkpoint import load_state

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = os.path.join(_ROOT, "tests", "train_toy_config.py")


def _launch(workdir, *overrides, env=None):
    """Starts a training process on the tiny toy config (8 CPU devices via XLA_FLAGS)."""
    command = [
        sys.executable,
        "-m",
        "attn_research.main",
        f"--config={_CONFIG}:tiny",
        f"--workdir={workdir}",
        *overrides,
    ]
    return subprocess.Popen(
        command, cwd=_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )


def _wait_for_checkpoint(process, workdir, timeout=120):
    """Returns once a checkpoint is complete; fails if the process ends first."""
    directory = os.path.join(workdir, "checkpoints")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()[-3000:]
        if os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory)):
            return
        time.sleep(0.02)
    raise TimeoutError("no checkpoint appeared")


def _comparable_metrics(workdir):
    """metrics.jsonl without the timing fields."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in records]


def _assert_same_run(reference, workdir):
    assert load_state(workdir)["step"] == 60
    jax.tree.map(np.testing.assert_array_equal, load_state(reference), load_state(workdir))
    assert _comparable_metrics(workdir) == _comparable_metrics(reference)
    with (
        open(os.path.join(reference, "summary.json")) as a,
        open(os.path.join(workdir, "summary.json")) as b,
    ):
        assert json.load(a)["eval"] == json.load(b)["eval"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the same config."""
    workdir = str(tmp_path_factory.mktemp("reference"))
    train_and_evaluate(train_toy_config.get_config("tiny"), workdir)
    return workdir


def _finish(workdir):
    """Runs the interrupted workdir to the end in a fresh process."""
    process = _launch(workdir)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert "Resumed from the checkpoint at step" in stderr


def test_sigkill_then_resume_is_bit_identical(tmp_path, reference):
    workdir = str(tmp_path)
    process = _launch(workdir, "--config.data.delay_sec=0.05")
    _wait_for_checkpoint(process, workdir)
    time.sleep(0.15)  # Land somewhere between checkpoints.
    process.kill()
    process.communicate()
    assert not os.path.exists(os.path.join(workdir, "summary.json"))  # It was killed mid-run.
    _finish(workdir)
    _assert_same_run(reference, workdir)


def test_sigterm_saves_the_current_step_and_exits_cleanly(tmp_path, reference):
    workdir = str(tmp_path)
    process = _launch(workdir, "--config.data.delay_sec=0.05")
    _wait_for_checkpoint(process, workdir)
    time.sleep(0.15)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    step = load_state(workdir)["step"]
    assert "Stopped by SIGTERM after saving step %d" % step in stderr
    assert 10 < step < 60  # Saved at the signal, before the end.
    assert not os.path.exists(os.path.join(workdir, "summary.json"))
    _finish(workdir)
    _assert_same_run(reference, workdir)


def test_first_sigint_saves_the_step_and_exits_cleanly(tmp_path, reference):
    workdir = str(tmp_path)
    process = _launch(workdir, "--config.data.signal_at_step=15")  # Ctrl-C at step 15.
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert "Stopped by SIGINT after saving step 15" in stderr
    assert load_state(workdir)["step"] == 15
    assert not os.path.exists(os.path.join(workdir, "summary.json"))
    _finish(workdir)
    _assert_same_run(reference, workdir)


def test_second_sigint_aborts_without_saving(tmp_path):
    workdir = str(tmp_path)
    process = _launch(workdir, "--config.data.signal_at_step=15", "--config.data.signal_count=2")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0 and "KeyboardInterrupt: second SIGINT" in stderr
    assert load_state(workdir)["step"] == 10  # The last checkpoint before the signals.


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_signal_during_start_up_exits_cleanly_saying_nothing_was_saved(tmp_path, name):
    process = _launch(
        str(tmp_path), "--config.data.signal_at_startup", f"--config.data.signal={name}"
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert f"Stopped by {name} during start-up, before the first step: nothing new" in stderr
    assert "(no checkpoint yet)" in stderr
    assert not os.path.exists(tmp_path / "checkpoints" / "10")


def test_a_second_process_on_a_running_workdir_refuses_naming_the_first(tmp_path):
    workdir = str(tmp_path)
    first = _launch(workdir, "--config.data.delay_sec=0.05")
    _wait_for_checkpoint(first, workdir)
    second = _launch(workdir)
    _, stderr = second.communicate(timeout=120)
    first.kill()
    first.communicate()
    assert second.returncode != 0
    assert f"ValueError: workdir {workdir!r} is in use by the run of process {first.pid}" in stderr


def test_command_line_errors_and_durations(tmp_path):
    process = _launch(str(tmp_path / "typo"), "--config.optimizer.lerning_rate=0.1")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "ValueError: config.optimizer.lerning_rate: unknown field; did you mean " in stderr
    assert "AttributeError" not in stderr
    # The toy config gives total_steps; a duration in epochs on the command line replaces it.
    process = _launch(str(tmp_path / "epochs"), "--config.total_epochs=0.25")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert load_state(str(tmp_path / "epochs"))["step"] == 8  # 0.25 * 1024 / 32.


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one(tmp_path):
    """2 processes x 4 devices, each reading its own half of every batch, vs 1 process x 8."""
    reference, workdir = str(tmp_path / "reference"), str(tmp_path / "two")
    config = train_toy_config.get_config("tiny")
    # Without dropout: its masks follow an example's place in the batch, which differs here.
    config.model.dropout = 0.0
    train_and_evaluate(config, reference)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    address = f"--coordinator_address=localhost:{_free_port()}"
    processes = [
        _launch(
            workdir,
            address,
            "--num_processes=2",
            f"--process_id={i}",
            "--config.model.dropout=0.0",
            env=env,
        )
        for i in range(2)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints", "60", "data"))) == [
        "commit_success.txt",
        "process_0-of-2.json",
        "process_1-of-2.json",
    ]
    # The same examples make up each global batch, in another order: equal up to float sums.
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
        load_state(reference)["params"],
        load_state(workdir)["params"],
    )
