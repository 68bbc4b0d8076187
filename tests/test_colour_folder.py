"""32 x 32 colour images from a class-per-folder JPEG tree: the writer, the recipe, end to end."""

import numpy as np
import pytest

import attn_research
from attn_research.data import image_sources, images
from attn_research.train import train_and_evaluate
from experiments import write_colour_digits
from experiments.configs import vit


def _strokes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28 x 28 'digits' of two classes: a vertical bar (0) or a horizontal one (1)."""
    labels = np.arange(n) % 2
    digits = np.zeros((n, 28, 28), np.uint8)
    digits[labels == 0, 4:24, 12:16] = 255
    digits[labels == 1, 12:16, 4:24] = 255
    return digits, labels


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("colour_digits"))
    for split, n in (("train", 64), ("test", 16)):
        write_colour_digits.write_tree(*_strokes(n), root, split, seed=0)
    return root


def test_colour_digit_blends_two_distinct_colours_at_an_offset():
    digit = np.zeros((28, 28), np.uint8)
    digit[10:18, 10:18] = 255
    image = write_colour_digits.colour_digit(digit, np.random.default_rng(0)).astype(float)
    assert image.shape == (32, 32, 3)
    # The ink square (8 x 8 somewhere in the middle) against the corners' background colour.
    background = np.median(image[[0, 0, -1, -1], [0, -1, 0, -1]], axis=0)
    distance = np.linalg.norm(image - background, axis=-1)
    ink = distance > write_colour_digits.MIN_CONTRAST / 2
    rows, cols = np.nonzero(ink)
    assert ink.sum() == 64 and np.ptp(rows) == np.ptp(cols) == 7
    assert 10 <= rows.min() <= 14 and 10 <= cols.min() <= 14


def test_tree_is_class_per_folder_jpeg(tree):
    data = vit.get_config(f"data=folder,path={tree},colour32,tiny").data
    train = image_sources.open_split(data, "train")
    assert image_sources.class_names(data) == ["0", "1"]
    assert len(train) == 64 and train[0]["image"].shape == (32, 32, 3)
    assert train[0]["image"].dtype == np.uint8


def test_colour32_recipe_sets_the_cifar_augmentation_and_model(tree):
    config = vit.get_config(f"data=folder,path={tree},colour32")
    data = config.data
    assert (data.image_size, data.channels, data.crop_padding, data.flip) == (32, 3, 4, True)
    np.testing.assert_allclose(data.mean, (0.4914, 0.4822, 0.4465))
    assert (config.model.patch, config.model.embed_dim) == (4, 128)
    assert config.total_epochs == vit.COLOUR32_EPOCHS
    with pytest.raises(ValueError, match="colour32.*data='npz'"):
        vit.get_config("data=npz,path=x.npz,colour32")


def test_augmentation_moves_and_mirrors_the_training_images(tree):
    data = vit.get_config(f"data=folder,path={tree},colour32,tiny").data
    record = image_sources.open_split(data, "train")[0]
    crops = [
        images.crop_and_flip(record["image"], np.random.default_rng(seed), 4, True)
        for seed in range(8)
    ]
    assert all(c.shape == (32, 32, 3) for c in crops)
    assert len({c.tobytes() for c in crops}) > 1


def test_colour32_trains_end_to_end_and_classifies_a_new_image(tree, tmp_path):
    config = vit.get_config(f"data=folder,path={tree},colour32,tiny")
    workdir = str(tmp_path / "run")
    train_and_evaluate(config, workdir)
    predictor = attn_research.load(workdir)
    assert predictor.classes == ("0", "1")
    photo = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    (result,) = predictor.classify([photo], top=2)
    assert result.image.shape == (32, 32, 3)
    np.testing.assert_allclose(sum(p for _, p in result.top), 1.0, rtol=1e-5)
