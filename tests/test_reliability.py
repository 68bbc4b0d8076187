"""Faults and bad input, in process: what docs/training.md's reliability section promises.

Each test breaks one thing (a changed model, a full disk, a diverging run, a taken workdir, a
corpus that is not UTF-8, ...) and checks that the run says what is wrong and loses nothing.
The faults that need a process of their own (signals, a second run) are in
test_train_launch.py.
"""

import errno
import json
import logging
import os
import subprocess
import sys

import grain
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import train_toy_config
from PIL import Image

from attn_research.attention import attend
from attn_research.data import image_sources, translation
from attn_research.data import tokenizer as tokenizer_lib
from attn_research.data.image_config import data_config
from attn_research.train import (
    checkpoint,
    config,
    durations,
    health,
    train_and_evaluate,
    workdir_lock,
)
from attn_research.train.checkpoint import load_state

_config = train_toy_config.with_changes


def _saved_steps(workdir):
    names = os.listdir(os.path.join(workdir, "checkpoints"))
    return sorted(int(name) for name in names if name.isdigit())


def test_resuming_with_a_changed_model_refuses_and_moves_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    workdir = str(tmp_path)
    train_and_evaluate(_config(total_steps=20), workdir)
    saved = load_state(workdir)
    with pytest.raises(checkpoint.CheckpointMismatchError) as error:
        train_and_evaluate(_config(total_steps=20, model__hidden=32), workdir)
    message = str(error.value)
    assert "config.model.hidden: saved 16, now 32" in message
    assert "params/Dense_0/kernel: saved (8, 16), now (8, 32)" in message
    assert isinstance(error.value, ValueError)
    assert _saved_steps(workdir) == [10, 20]
    assert not os.path.exists(tmp_path / "checkpoints_corrupt")
    # The original config still resumes from the newest checkpoint.
    train_and_evaluate(_config(total_steps=30), workdir)
    assert "Resumed from the checkpoint at step 20" in caplog.text
    assert load_state(workdir, 20)["params"].keys() == saved["params"].keys()
    assert load_state(workdir)["step"] == 30


def test_unknown_field_names_the_closest_known_one():
    given = _config()
    given.optimizer.lerning_rate = 0.1
    with pytest.raises(ValueError, match="optimizer.lerning_rate: unknown field; did you mean 'le"):
        config.check_config(given, ("model", "data"))
    with pytest.raises(
        ValueError, match=r"config.model.hiden: unknown field; did you mean 'hidden'"
    ):
        config.check_paths(_config(), ["total_steps", "model.hiden"])
    config.check_paths(_config(), ["total_steps", "model.hidden", "param_sharding.0"])


def test_duration_given_last_wins():
    given = _config(total_steps=None, total_epochs=2.0)
    durations.prefer_given(given, ["model.hidden", "total_steps"])
    assert (given.total_steps, given.total_epochs) == (None, None)  # total_steps set later.
    given = _config(total_steps=600, total_epochs=2.0, optimizer__warmup_epochs=1.0)
    durations.prefer_given(given, ["total_epochs", "total_steps", "optimizer.warmup_epochs"])
    assert (given.total_steps, given.total_epochs) == (600, None)
    assert (given.optimizer.warmup_steps, given.optimizer.warmup_epochs) == (None, 1.0)


def test_nan_right_after_a_save_names_the_older_sane_checkpoint(tmp_path):
    # The loss of step 11 (from the parameters saved at 10) is NaN: checkpoint 10 is not sane.
    with pytest.raises(FloatingPointError) as error:
        train_and_evaluate(_config(checkpoint_every_steps=5, data__nan_at_step=11), str(tmp_path))
    message = str(error.value)
    assert "Loss is nan at step 11" in message
    assert "last sane checkpoint" in message and "is step 5." in message
    assert "newer ones [10]" in message and "learning_rate, now 0.01" in message
    assert _saved_steps(str(tmp_path)) == [5, 10]


def test_exploding_loss_warns_with_a_hint(tmp_path, caplog):
    summary = train_and_evaluate(
        _config(
            total_steps=20,
            log_every_steps=1,
            optimizer__learning_rate=1e4,
            optimizer__warmup_steps=0,
        ),
        str(tmp_path),
    )
    first = _first_loss(str(tmp_path))
    assert summary["train"]["train/loss"] > health.LOSS_FACTOR * first  # Finite, but exploded.
    assert "times the first step's" in caplog.text and "lower the learning rate" in caplog.text


def _first_loss(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return next(json.loads(line)["train/loss"] for line in f if "train/loss" in line)


@pytest.mark.parametrize("where", ["in save", "in the background"])
def test_full_disk_stops_at_the_first_failed_save_and_resumes(tmp_path, monkeypatch, where):
    """The disk fills up at step 30: grain writes the data iterator's state within `save`,
    orbax writes the config in a background commit."""
    workdir, tried = str(tmp_path), []

    def write(directory):
        tried.append(str(directory))
        if "/30" in str(directory):
            raise OSError(errno.ENOSPC, "No space left on device")

    if where == "in save":
        handler, name = grain.checkpoint.CheckpointHandler, "save"
        original = handler.save

        def full_disk(self, directory, *args, **kwargs):
            write(directory)
            return original(self, directory, *args, **kwargs)

    else:
        handler, name = ocp.JsonCheckpointHandler, "_save_fn"
        original = handler._save_fn

        async def full_disk(self, item, directory):
            write(directory)
            return await original(self, item, directory)

    monkeypatch.setattr(handler, name, full_disk)
    with pytest.raises(checkpoint.CheckpointSaveError) as error:
        train_and_evaluate(_config(), workdir)
    message = str(error.value)
    assert "checkpoint of step 30" in message and "No space left on device" in message
    assert "steps [10, 20] are intact" in message
    assert not any("/40" in directory for directory in tried)  # Stopped: 40 was never saved.
    assert _saved_steps(workdir) == [10, 20]
    assert not os.path.exists(tmp_path / "summary.json")
    monkeypatch.setattr(handler, name, original)  # Space freed.
    assert train_and_evaluate(_config(), workdir)["step"] == 60


def test_a_second_run_on_a_workdir_refuses_and_a_stale_lock_is_taken_over(tmp_path, caplog):
    workdir = str(tmp_path)
    with workdir_lock.hold(workdir):
        with pytest.raises(ValueError, match=f"in use by the run of process {os.getpid()} on"):
            train_and_evaluate(_config(total_steps=10), workdir)
    assert not os.path.exists(tmp_path / "checkpoints")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (tmp_path / workdir_lock.LOCK_NAME).write_text(f"{dead} on a host\n")  # Left by a kill -9.
    assert train_and_evaluate(_config(total_steps=10), workdir)["step"] == 10
    assert f"Taking over the stale lock of {dead} on a host" in caplog.text
    assert (tmp_path / workdir_lock.LOCK_NAME).read_text() == ""  # Released.


def test_a_finished_run_resumed_keeps_its_train_metrics_in_the_summary(tmp_path):
    workdir = str(tmp_path)
    first = train_and_evaluate(_config(total_steps=10), workdir)
    again = train_and_evaluate(_config(total_steps=10), workdir)
    with open(tmp_path / "summary.json") as f:
        written = json.load(f)
    assert first["train"] and written["train"] == pytest.approx(first["train"])
    assert written["eval"] == pytest.approx(first["eval"]) and again["step"] == 10


def test_tsv_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("go\tve\nI ran\tcorrí\n".encode("utf-8") + "café\tcafé\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"corpus.txt:3: not UTF-8 .*b'\\xe9' at column 4"):
        translation.read_tsv(str(path))
    path.write_bytes("go\tve\r\nI ran\tcorrí\r\n".encode("utf-8"))
    assert translation.read_tsv(str(path)) == (["go", "I ran"], ["ve", "corrí"])


def test_truncated_image_in_a_folder_is_named(tmp_path):
    for split in ("train", "test"):
        for name in ("cat", "dog"):  # A classifier needs two classes.
            os.makedirs(tmp_path / split / name)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / split / name / "a.jpg")
    whole = (tmp_path / "train" / "cat" / "a.jpg").read_bytes()
    (tmp_path / "train" / "cat" / "b.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"train/cat/b.jpg: cannot read the image"):
        image_sources.open_split(data_config("folder", str(tmp_path)), "train")


def test_vocab_size_above_what_the_corpus_yields_warns(tmp_path, caplog):
    texts = ["the cat sat on the mat", "a dog ran in the park"] * 20
    path = str(tmp_path / "tok.model")
    learned = tokenizer_lib.load_or_train(path, texts, 2000).vocab_size
    assert learned < 2000
    assert f"vocab_size is 2000, but the tokenizer {path} has only {learned} pieces" in caplog.text
    caplog.clear()
    tokenizer_lib.load_or_train(path, texts, learned)
    assert "vocab_size" not in caplog.text


@pytest.mark.parametrize(
    "kind, kernel",
    [("dot_product", kernel) for kernel in ("dense", "chunked", "jax_nn", "auto")]
    + [("local", kernel) for kernel in ("dense", "chunked", "band", "auto")],
)
def test_attention_refuses_empty_sequences_and_integer_inputs(kind, kernel):
    options = {"kind": kind, "kernel": kernel, **({"window": 4} if kind == "local" else {})}
    for t_q, t_k in ((0, 0), (3, 0), (0, 3)):
        q, kv = jnp.zeros((2, t_q, 2, 8)), jnp.zeros((2, t_k, 2, 8))
        with pytest.raises(ValueError, match=f"at least one query and one key, got Tq={t_q}"):
            attend(q, kv, kv, **options)
    ints = jnp.zeros((2, 4, 2, 8), jnp.int32)
    with pytest.raises(ValueError, match="q must be floating point, got dtype int32"):
        attend(ints, ints, ints, **options)
