"""Resume after SIGKILL and SIGTERM: the launched `attn_research.main` process ends bit-identical
to an uninterrupted run."""

import json
import os
import signal
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


def _launch(workdir, *overrides):
  """Starts a training process on the tiny toy config (8 CPU devices via XLA_FLAGS)."""
  command = [sys.executable, "-m", "attn_research.main", f"--config={_CONFIG}:tiny",
             f"--workdir={workdir}", *overrides]
  return subprocess.Popen(command, cwd=_ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


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
  with open(os.path.join(reference, "summary.json")) as a, open(
      os.path.join(workdir, "summary.json")) as b:
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
