"""Config parsing, duration resolution and the rejection of bad configs before compiling."""

import os
from unittest import mock

import jax
import pytest
import train_toy_config

from attn_research.train import durations, parse_arg, train_and_evaluate


def test_parse_arg_types_come_from_defaults():
    arg = parse_arg(
        "attention=local,window=32,tiny,rate=0.5,causal=false",
        attention="dense",
        window=0,
        tiny=False,
        rate=0.1,
        causal=True,
    )
    assert arg.to_dict() == {
        "attention": "local",
        "window": 32,
        "tiny": True,
        "rate": 0.5,
        "causal": False,
    }
    assert isinstance(arg.window, int) and isinstance(arg.rate, float)


def test_parse_arg_defaults_when_empty():
    assert parse_arg(None, tiny=False, window=8).to_dict() == {"tiny": False, "window": 8}
    assert parse_arg("", tiny=False).tiny is False


@pytest.mark.parametrize(
    "arg, match",
    [
        ("windw=3", "windw"),  # Unknown key.
        ("window=abc", "window"),  # Wrong type.
        ("window", "window"),  # Bare word for a non-boolean.
        ("tiny=maybe", "tiny"),
        ("tiny,tiny", "tiny"),
    ],
)
def test_parse_arg_errors_name_the_key(arg, match):
    with pytest.raises(ValueError, match=match):
        parse_arg(arg, tiny=False, window=0)


def test_config_file_args():
    config = train_toy_config.get_config("tiny,layers=3,dtype=bfloat16")
    assert (config.model.num_layers, config.dtype, config.total_steps) == (3, "bfloat16", 60)
    with pytest.raises(ValueError, match="layer"):
        train_toy_config.get_config("layer=3")


def test_durations_in_epochs_follow_the_batch_size():
    config = train_toy_config.get_config("tiny")
    config.total_steps = None
    config.total_epochs = 2.0
    config.eval_every_steps = None
    config.eval_every_epochs = 0.5
    config.optimizer.warmup_steps = None
    config.optimizer.warmup_epochs = 0.25
    resolved = durations.resolve_durations(config, num_train_examples=1024)
    assert (
        resolved.steps_per_epoch,
        resolved.total_steps,
        resolved.eval_every,
        resolved.warmup_steps,
    ) == (32, 64, 16, 8)
    config.batch_size = 64  # An override must not leave a stale schedule.
    resolved = durations.resolve_durations(config, num_train_examples=1024)
    assert (resolved.total_steps, resolved.eval_every, resolved.warmup_steps) == (32, 8, 4)
    assert resolved.checkpoint_every == 10  # Given in steps, unchanged.


def test_durations_defaults_and_errors():
    config = train_toy_config.get_config("tiny")
    config.checkpoint_every_steps = None
    config.log_every_steps = 1000
    resolved = durations.resolve_durations(config, 1024)
    assert (resolved.checkpoint_every, resolved.log_every) == (60, 60)  # End of run only.
    config.total_epochs = 1.0
    with pytest.raises(ValueError, match="total_steps/_epochs: set only one"):
        durations.resolve_durations(config, 1024)
    config.total_steps = None
    config.total_epochs = None
    with pytest.raises(ValueError, match="total_steps/_epochs: exactly one"):
        durations.resolve_durations(config, 1024)


def _set(path, value):
    def change(config):
        *parents, key = path.split(".")
        for parent in parents:
            config = config[parent]
        with config.ignore_type():
            config[key] = value

    return change


def _unknown_key(config):
    config.learning_rate = 0.1


@pytest.mark.parametrize(
    "change, field",
    [
        (_unknown_key, "config.learning_rate: unknown field"),
        (_set("optimizer.learnig_rate", 0.1), "config.optimizer.learnig_rate: unknown field"),
        (_set("batch_size", "32"), "config.batch_size: .* cannot be casted to type <class .int.>"),
        (
            _set("optimizer.learning_rate", "fast"),
            "config.optimizer.learning_rate: .* type <class .float.>",
        ),
        (_set("optimizer.nesterov", 1), "config.optimizer.nesterov: .* type <class .bool.>"),
        (_set("optimizer.learning_rate", -1e-3), "config.optimizer.learning_rate: must be > 0"),
        (_set("batch_size", 36), "config.batch_size: 36 is not divisible by the 8"),
        (_set("eval_batch_size", 12), "config.eval_batch_size: 12 is not divisible"),
        (_set("batch_size", 2048), "config.batch_size: 2048 is larger than the training set"),
        (_set("optimizer.name", "adagrad"), "config.optimizer.name: unknown value 'adagrad'"),
        (_set("optimizer.schedule", "linear"), "config.optimizer.schedule: unknown value"),
        (_set("dtype", "float16"), "config.dtype: unknown value"),
        (_set("task", "translate_typo"), "config.task: unknown task 'translate_typo'"),
        (_set("mesh.model", 3), "config.mesh: 8 devices do not split"),
        (_set("batch_axes", ("fsdp",)), "config.batch_axes"),
        (_set("param_sharding", ((r"kernel$", ("model",)),)), "config.param_sharding"),
        (_set("model.dropout", 1.5), "config.model.dropout"),  # The task's validate().
        (_set("total_steps", -5), "config.total_steps/_epochs: must be positive"),
    ],
)
def test_bad_config_fails_before_compiling(tmp_path, change, field):
    config = train_toy_config.get_config("tiny")
    change(config)
    with mock.patch.object(jax, "jit", side_effect=AssertionError("compiled")):
        with pytest.raises(ValueError, match=field.replace("(", r"\(")):
            train_and_evaluate(config, str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_workdir(tmp_path):
    tmp_path.chmod(0o500)
    with pytest.raises(ValueError, match="workdir"):
        train_and_evaluate(train_toy_config.get_config("tiny"), str(tmp_path / "run"))


def test_workdir_that_is_a_file(tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(ValueError, match="workdir .* is not writable"):
        train_and_evaluate(train_toy_config.get_config("tiny"), str(tmp_path / "run"))
