"""Applying trained image models: `attn_research.load`, `predictor.classify` and the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import attn_research
from attn_research.data import image_sources, images
from attn_research.tasks.image import AttentionEvaluator
from attn_research.train import train_and_evaluate
from experiments.configs import attention_cnn, vit


def _train(tmp_path_factory, module, arg: str) -> str:
    workdir = str(tmp_path_factory.mktemp("run"))
    train_and_evaluate(module.get_config(arg), workdir)
    return workdir


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    return _train(tmp_path_factory, vit, "tiny")


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    return _train(tmp_path_factory, attention_cnn, "tiny")


def _eval_images(predictor, n=6):
    split = image_sources.open_split(predictor.config.data, predictor.config.data.eval_split)
    return np.stack([split[i]["image"] for i in range(n)])


def test_training_saves_class_names_and_image_shape(vit_run):
    labels = json.loads(open(f"{vit_run}/labels.json").read())
    assert labels["classes"] == [str(i) for i in range(10)]  # cluttered classes are numbered
    assert labels["image_shape"] == [32, 32, 1]
    page = open(f"{vit_run}/figures/explorer.html").read()
    assert page.count('class="item"') == 2 and 'data-layer="rollout"' in page
    assert 'data-layer="layer1" data-head="head 2"' in page  # every head, as the predictor's


@pytest.mark.parametrize("run", ["vit_run", "cnn_run"])
def test_classes_and_maps_equal_the_training_time_evaluation(run, request):
    predictor = attn_research.load(request.getfixturevalue(run))
    raw = _eval_images(predictor)
    normalized = images.normalize(raw, predictor.config.data.mean, predictor.config.data.std)
    maps, heads, predictions = AttentionEvaluator._maps(
        predictor.model, predictor.params, normalized
    )
    results = predictor.classify(list(raw), top=3)
    assert [r.top[0][0] for r in results] == [str(int(p)) for p in predictions]
    np.testing.assert_allclose(np.stack([r.maps for r in results]), maps, atol=1e-6)
    np.testing.assert_allclose(np.stack([r.head_maps for r in results]), heads, atol=1e-6)
    for r in results:
        assert len(r.top) == 3 and r.top[0][1] >= r.top[1][1] >= r.top[2][1]
        np.testing.assert_allclose(r.probabilities.sum(), 1.0, rtol=1e-5)
        assert r.maps.shape[0] == len(r.map_names)


def test_rgb_images_are_converted_and_other_sizes_refused_with_both_shapes(vit_run):
    predictor = attn_research.load(vit_run)
    (gray,) = _eval_images(predictor, 1)
    rgb = np.repeat(gray, 3, axis=-1)
    (from_rgb,), (from_gray,) = predictor.classify([rgb]), predictor.classify([gray])
    np.testing.assert_allclose(from_rgb.probabilities, from_gray.probabilities, atol=1e-6)
    with pytest.raises(ValueError, match=r"img: an image of 28x40 pixels; the model takes 32x32x1"):
        predictor.classify([np.zeros((28, 40), np.uint8)], ["img"])
    with pytest.raises(ValueError, match="float64 pixels"):
        predictor.classify([np.zeros((32, 32))])


def test_folder_runs_resize_as_training_did(tmp_path):
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(4):
                image = Image.new("RGB", (20, 14), (200, 10 * i, 10))
                image.save(tmp_path / "data" / split / name / f"{i}.png")
    config = vit.get_config(f"data=folder,path={tmp_path / 'data'},tiny")
    config.data.image_size = 8
    config.model.patch = 4
    config.batch_size = 8
    workdir = str(tmp_path / "run")
    train_and_evaluate(config, workdir)
    predictor = attn_research.load(workdir)
    assert predictor.classes == ("cat", "dog")
    (result,) = predictor.classify([np.zeros((30, 50, 3), np.uint8)], top=2)
    assert result.image.shape == (8, 8, 3)
    assert {name for name, _ in result.top} == {"cat", "dog"}


def test_cli_reads_png_jpeg_and_npz_and_draws_overlays(cnn_run, tmp_path):
    predictor = attn_research.load(cnn_run)
    raw = _eval_images(predictor, 3)
    Image.fromarray(raw[0][..., 0]).save(tmp_path / "a.png")
    Image.fromarray(raw[1][..., 0]).convert("RGB").save(tmp_path / "b.jpg", quality=95)
    np.savez(tmp_path / "c.npz", images=raw[1:3])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "attn_research.classify",
            f"--workdir={cnn_run}",
            "--top=2",
            f"--plot={tmp_path / 'plots'}",
            str(tmp_path / "a.png"),
            str(tmp_path / "b.jpg"),
            str(tmp_path / "c.npz"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [
        str(tmp_path / "a.png"),
        str(tmp_path / "b.jpg"),
        f"{tmp_path / 'c.npz'}[0]",
        f"{tmp_path / 'c.npz'}[1]",
    ]
    expected = predictor.classify(list(raw[[0, 1, 2]]), top=2)
    assert lines[0].split("\t")[1] == "  ".join(f"{n} {p:.3f}" for n, p in expected[0].top)
    assert lines[3].split("\t")[1] == "  ".join(f"{n} {p:.3f}" for n, p in expected[2].top)
    assert len(list((tmp_path / "plots").glob("attention_*.png"))) == 4


def test_cli_refuses_a_wrong_size_naming_the_shapes(cnn_run, tmp_path):
    Image.new("L", (10, 12)).save(tmp_path / "small.png")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "attn_research.classify",
            f"--workdir={cnn_run}",
            str(tmp_path / "small.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        done.returncode != 0 and "an image of 12x10 pixels; the model takes 32x32x1" in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_a_local_2d_vit_classifies_as_its_evaluation_does(tmp_path_factory):
    predictor = attn_research.load(_train(tmp_path_factory, vit, "attention=local_2d,tiny"))
    raw = _eval_images(predictor, 4)
    normalized = images.normalize(raw, predictor.config.data.mean, predictor.config.data.std)
    maps, _, predictions = AttentionEvaluator._maps(predictor.model, predictor.params, normalized)
    results = predictor.classify(list(raw))
    assert [r.top[0][0] for r in results] == [str(int(p)) for p in predictions]
    np.testing.assert_allclose(np.stack([r.maps for r in results]), maps, atol=1e-6)
