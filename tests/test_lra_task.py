"""The LRA sequence-classification task end to end on the tiny configs, and bad config values
named before anything is compiled."""

import numpy as np
import pytest

from attn_research.train import train_and_evaluate
from experiments.configs import lra


def _run(config, workdir):
    summary = train_and_evaluate(config, str(workdir))
    assert summary["step"] > 0
    metrics = summary["eval"]
    assert 0.0 <= metrics["eval/accuracy"] <= 1.0 and np.isfinite(metrics["eval/loss"])
    return metrics


@pytest.mark.parametrize(
    "arg",
    [
        "task=listops,attention=dot_product",
        "task=listops,attention=local,window=4",
        "task=listops,attention=additive",
        "task=pathfinder,attention=local_2d,window=3",
    ],
)
def test_tiny_lra_trains(arg, tmp_path):
    _run(lra.get_config(f"{arg},tiny"), tmp_path)


def test_tiny_lra_image_trains_on_an_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (32, 8, 8, 3), dtype=np.uint8),
        y_train=np.arange(32) % 3,
        x_test=rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8),
        y_test=np.arange(8) % 3,
    )
    _run(lra.get_config(f"task=image,path={path},tiny"), tmp_path / "run")


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("data.source", "cifar", "config.data.source"),
        ("data.listops.min_len", 100, "config.data.listops.min_len"),
        ("data.num_train", 0, "config.data.num_train"),
        ("model.pool", "max", "config.model.pool"),
        ("model.attention", "local_2d", "config.model.attention"),  # ListOps has no grid
        ("model.embed_dim", 15, "config.model.embed_dim"),  # odd width, sincos positions
        ("model.name", "rnn", "config.model.name"),
    ],
)
def test_bad_values_are_named_before_compiling(field, value, message, tmp_path):
    config = lra.get_config("task=listops,tiny")
    config.model.position_embedding = "sincos"
    section, key = field.rsplit(".", 1)
    target = config
    for part in section.split("."):
        target = target[part]
    target[key] = value
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(config, str(tmp_path))


def test_configs_build_for_every_task_and_kind():
    for task in lra.TASKS:
        for kind in ("dot_product", "local", "additive"):
            config = lra.get_config(f"task={task},attention={kind}")
            assert config.model.attention == kind
    base = lra.get_config("task=listops")
    assert (base.model.num_layers, base.model.embed_dim) == (6, 512)
    assert (base.model.num_heads, base.model.mlp_dim) == (8, 2048)
    assert (base.data.listops.min_len, base.data.listops.max_len) == (500, 2000)
    assert (base.data.num_train, base.data.num_eval) == (96_000, 2_000)
