"""The image task end to end on the tiny configs, its configs, and bad input before compiling."""

import json
import os

import jax
import numpy as np
import pytest

from attn_research.train import train_and_evaluate
from experiments.configs import attention_cnn as cnn_config
from experiments.configs import vit as vit_config

VIT_KINDS = ("dot_product", "local_2d", "additive")


def _run(config, workdir):
    summary = train_and_evaluate(config, str(workdir))
    assert summary["step"] == config.total_steps
    assert os.path.isfile(os.path.join(workdir, "figures", f"attention_{summary['step']:06d}.png"))
    return summary["eval"]


def _assert_localization(metrics, names):
    for name in (*names, "uniform", "box_cells"):
        for score in ("mass_in_box", "pointing_game"):
            assert 0.0 <= metrics[f"eval/{score}/{name}"] <= 1.0
    assert metrics["eval/pointing_game/box_cells"] == 1.0
    for score in ("mass_in_box", "pointing_game"):
        heads = [v for k, v in metrics.items() if k.startswith(f"eval/{score}/{names[0]}/head")]
        assert metrics[f"eval/{score}/{names[0]}/best_head"] == max(heads)


@pytest.mark.parametrize("kind", VIT_KINDS)
def test_tiny_vit_trains_and_scores_its_attention(kind, tmp_path):
    metrics = _run(vit_config.get_config(f"attention={kind},tiny"), tmp_path)
    assert 0.0 <= metrics["eval/accuracy"] <= 1.0 and np.isfinite(metrics["eval/loss"])
    _assert_localization(metrics, ("layer1", "rollout", "layer1/head1", "layer1/best_head"))


def test_tiny_attention_cnn_trains_and_scores_its_attention(tmp_path):
    metrics = _run(cnn_config.get_config("tiny"), tmp_path)
    _assert_localization(metrics, ("attention", "attention/head0", "attention/best_head"))


def test_tiny_vit_with_mixup_and_map_pooling_on_an_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8),
        y_train=np.arange(64) % 3,
        x_test=rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8),
        y_test=np.arange(16) % 3,
    )
    config = vit_config.get_config(f"data=npz,path={path},pool=map,patch=4,tiny")
    config.data.mixup_alpha, config.data.crop_padding, config.data.flip = 0.2, 1, True
    metrics = _run(config, tmp_path / "run")
    assert "eval/mass_in_box/rollout" not in metrics  # No boxes in an npz.
    with open(tmp_path / "run" / "summary.json") as f:
        assert json.load(f)["step"] == config.total_steps


def test_tiny_vit_on_cluttered_mnist_scores_its_attention(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "digits.npz"
    digits = (rng.random((96, 28, 28)) < 0.2).astype(np.uint8) * 255
    np.savez(
        path,
        x_train=digits[:64],
        y_train=np.arange(64) % 10,
        x_test=digits[64:],
        y_test=np.arange(32) % 10,
    )
    config = vit_config.get_config(f"data=cluttered_mnist,path={path},tiny")
    assert config.model.patch == 10 and tuple(config.model.stem) == vit_config.GREY_STEM
    metrics = _run(config, tmp_path / "run")
    _assert_localization(metrics, ("layer1", "rollout", "layer1/head1", "layer1/best_head"))


@pytest.mark.parametrize(
    "arg",
    [
        f"attention={k},data={d}"
        for k in VIT_KINDS
        for d in ("cluttered", "cluttered_mnist", "npz", "cifar10")
    ]
    + [f"size={s}" for s in vit_config.SIZES]
    + ["pool=map,window=5"],
)
def test_vit_configs_build(arg):
    config = vit_config.get_config(arg)
    assert config.model.name == "vit" and config.task == "image"
    assert config.model.pool != "token" or config.model.attention != "local_2d"


@pytest.mark.parametrize(
    "arg", ["", "attention=dot_product,heads=2", "data=npz", "data=cluttered_mnist", "data=cifar10"]
)
def test_cnn_configs_build(arg):
    assert cnn_config.get_config(arg).model.name == "attention_cnn"


@pytest.mark.parametrize("get_config", [vit_config.get_config, cnn_config.get_config])
def test_small_configs_shrink_data_and_schedule_together(get_config):
    full, small = get_config(""), get_config("small")
    assert small.model == full.model

    def examples(config):
        return config.data.cluttered.num_train * config.total_epochs

    assert examples(small) < examples(full)
    # One evaluation and one checkpoint, at the end; warmup a fifth of the run.
    assert small.eval_every_epochs == small.checkpoint_every_epochs == small.total_epochs
    assert small.optimizer.warmup_epochs == pytest.approx(0.2 * small.total_epochs)
    assert get_config("small,data=npz").total_epochs == 1.0


def test_vit_heads_default_to_one_on_cluttered_data():
    assert vit_config.get_config("").model.num_heads == 1
    assert vit_config.get_config("heads=4").model.num_heads == 4
    assert vit_config.get_config("data=npz").model.num_heads == vit_config.SIZES["mu"][2]


def test_vit_stem_defaults_to_grey_on_grey_data():
    def stem(arg):
        return tuple(vit_config.get_config(arg).model.stem)

    assert stem("") == stem("data=npz") == stem("data=cifar10,stem=grey") == vit_config.GREY_STEM
    assert stem("stem=none") == stem("data=cifar10") == ()
    with pytest.raises(ValueError, match="'stem': choose grey or none, got 'rgb'"):
        stem("stem=rgb")


@pytest.fixture
def no_compiling(monkeypatch):
    """Makes any jit an error: bad input must be refused before anything compiles."""

    def refuse(*args, **kwargs):
        raise AssertionError("jax.jit called before the input was checked")

    monkeypatch.setattr(jax, "jit", refuse)


def _bad_npz(tmp_path, x_test_shape=(4, 8, 8), labels=None):
    path = tmp_path / "bad.npz"
    np.savez(
        path,
        x_train=np.zeros((8, 8, 8), np.uint8),
        y_train=np.zeros(8, int) if labels is None else labels,
        x_test=np.zeros(x_test_shape, np.uint8),
        y_test=np.zeros(4, int),
    )
    return str(path)


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing", "config.data.path: no such .npz file"),
        ("shapes", "inconsistent shape"),
        ("labels", r"labels out of range \[0, 3\)"),
        ("tfds", "config.data.name: unknown TFDS dataset"),
        ("local_2d_token", "config.model.pool: window_2d: .* class token"),
        ("patch", "config.model.patch: 3 does not divide"),
        ("remat", "config.model.remat: unknown 'everything'"),
        ("unroll", "config.model.scan_unroll: layers per loop iteration"),
    ],
)
def test_bad_input_is_refused_before_compiling(case, message, tmp_path, no_compiling):
    del no_compiling
    arg = {
        "missing": lambda: f"data=npz,path={tmp_path / 'nope.npz'}",
        "shapes": lambda: f"data=npz,path={_bad_npz(tmp_path, x_test_shape=(4, 9, 9))}",
        "labels": lambda: f"data=npz,path={_bad_npz(tmp_path, labels=np.arange(8))}",
        "tfds": lambda: "data=no_such_dataset_xyz",
        "local_2d_token": lambda: "attention=local_2d,pool=token",
        "patch": lambda: "patch=3",
        "remat": lambda: "",
        "unroll": lambda: "",
    }[case]()
    config = vit_config.get_config(arg + ",tiny")
    if case == "labels":
        config.data.num_classes = 3
    if case == "remat":
        config.model.remat = "everything"
    if case == "unroll":
        config.model.scan_unroll = 0
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(config, str(tmp_path / "run"))
