"""Cluttered MNIST (Mnih et al. 2014) from an .npz: boxes, distractors, clipping, determinism,
and new clutter each epoch (redraw)."""

import numpy as np
import pytest

from attn_research.data import image_sources, images
from attn_research.data.image_config import data_config


def _digits(n: int, first_value: int, seed: int) -> np.ndarray:
    """``[n, 28, 28]`` uint8 digits: each an ink rectangle of its own value, off the border."""
    rng = np.random.default_rng(seed)
    digits = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        top, left = rng.integers(1, 12, size=2)
        bottom, right = top + rng.integers(9, 16), left + rng.integers(9, 16)
        digits[i, top:bottom, left:right] = first_value + i
    return digits


@pytest.fixture
def npz(tmp_path):
    """Train digits valued 1..40, test digits 101..120: a pixel tells which digit it came from."""
    path = tmp_path / "digits.npz"
    np.savez(
        path,
        x_train=_digits(40, 1, 0),
        y_train=np.arange(40) % 10,
        x_test=_digits(20, 101, 1),
        y_test=np.arange(20) % 10,
    )
    return str(path)


def _split(npz: str, split: str = "train", **clutter):
    data = data_config("cluttered_mnist", npz)
    data.cluttered_mnist.update(clutter)
    return image_sources.open_split(data, split)


def _ink_box(image_hw: np.ndarray) -> tuple[int, ...]:
    ink = np.argwhere(image_hw > 0)
    return (*ink.min(0), *(ink.max(0) + 1))


def test_shapes_labels_and_the_100_pixel_variant(npz):
    train, test = _split(npz), _split(npz, "test")
    assert (len(train), len(test)) == (40, 20)
    record = train[3]
    assert record["image"].shape == (60, 60, 1) and record["image"].dtype == np.uint8
    assert record["label"] == 3 and record["box"].dtype == np.int32
    assert _split(npz, canvas=100, distractors=8)[0]["image"].shape == (100, 100, 1)
    assert image_sources.num_classes(data_config("cluttered_mnist", npz)) == 10


def test_box_is_the_tight_ink_box_of_the_placed_digit(npz):
    digits = np.load(npz)["x_train"]
    bare, cluttered = _split(npz, distractors=0), _split(npz)
    for i in range(len(bare)):
        image, box = bare[i]["image"][..., 0], bare[i]["box"]
        # Without distractors the only ink is the digit's: its tight box, holding the digit's ink.
        assert tuple(box) == _ink_box(image)
        top, left, bottom, right = box
        np.testing.assert_array_equal(image[top:bottom, left:right] > 0, True)
        ink = digits[i][digits[i] > 0]
        assert image.sum() == ink.astype(int).sum() and (image[image > 0] == i + 1).all()
        # Distractors are drawn after the digit: the same seed places it at the same position.
        np.testing.assert_array_equal(cluttered[i]["box"], box)


@pytest.mark.parametrize("split, values", [("train", range(1, 41)), ("test", range(101, 121))])
def test_distractors_are_crops_of_other_digits_of_the_same_split(npz, split, values):
    seen = set()
    for i, record in enumerate(_split(npz, split, distractors=1)):
        image = record["image"][..., 0].astype(int)
        own = (i + 1) if split == "train" else (i + 101)
        top, left, bottom, right = record["box"]
        outside = image.copy()
        outside[top:bottom, left:right] = 0
        found = set(np.unique(outside)) - {0}
        # One fragment outside the digit: one value, another digit's, within 8 x 8 pixels.
        assert len(found) <= 1 and own not in found and found <= set(values)
        if found:
            ink = np.argwhere(outside > 0)
            assert (ink.max(0) - ink.min(0) < 8).all()
        seen |= found
    assert len(seen) > 5


def test_intensities_are_clipped(tmp_path):
    path = tmp_path / "full.npz"
    full = np.full((4, 28, 28), 200, np.uint8)
    np.savez(path, x_train=full, y_train=np.arange(4), x_test=full, y_test=np.arange(4))
    image = _split(str(path), canvas=28, distractors=3)[0]["image"]
    # The digit covers the canvas; every fragment adds 200 more: sums above 255 clip to 255.
    assert set(np.unique(image)) == {200, 255}


def test_deterministic_per_seed_and_readable_in_any_order(npz):
    forward = [r["image"] for r in _split(npz)]
    backward = [_split(npz)[i]["image"] for i in reversed(range(40))][::-1]
    np.testing.assert_array_equal(forward, backward)
    other_seed = [r["image"] for r in _split(npz, seed=1)]
    assert not np.array_equal(forward, other_seed)


def test_bad_clutter_is_refused(npz):
    with pytest.raises(ValueError, match="canvas 20"):
        _split(npz, canvas=20)
    with pytest.raises(ValueError, match="fragment"):
        _split(npz, fragment=30)


def _epochs(data, count: int) -> list[dict[int, tuple[int, ...]]]:
    """Per epoch of the train iterator (one batch of all 40 digits, no distractors): each
    digit's ink box on the canvas, the digit told by its pixel value (1..40)."""
    source = image_sources.open_split(data, "train")
    iterator = images.train_iterator(
        source, data, seed=0, batch_size=40, process_index=0, process_count=1, num_classes=10
    )
    epochs = []
    for _ in range(count):
        batch = next(iterator)
        pixels = np.rint((batch["image"][..., 0] * data.std[0] + data.mean[0]) * 255).astype(int)
        epoch = {}
        for image, label in zip(pixels, batch["label"]):
            value = int(image.max())
            assert label == (value - 1) % 10  # the label travels with its digit
            epoch[value] = _ink_box(image)
        assert sorted(epoch) == list(range(1, 41))  # every digit once an epoch
        epochs.append(epoch)
    return epochs


def test_redraw_places_each_train_digit_anew_each_epoch(npz):
    data = data_config("cluttered_mnist", npz)
    data.cluttered_mnist.distractors = 0
    data.cluttered_mnist.redraw = False
    fixed = _epochs(data, 2)
    assert fixed[0] == fixed[1]  # without redraw, digit i is always the same canvas
    data.cluttered_mnist.redraw = True
    train, test = image_sources.open_split(data, "train"), image_sources.open_split(data, "test")
    assert train.redraw and not test.redraw  # evaluation stays a fixed draw
    np.testing.assert_array_equal(test[5]["image"], _split(npz, "test", distractors=0)[5]["image"])
    first, second = _epochs(data, 2)
    moved = sum(first[d] != second[d] for d in first)
    assert moved >= 36, moved  # a new position for (almost) every digit
    assert (first, second) == tuple(_epochs(data, 2))  # the same seed draws the same epochs


def test_redraw_is_for_the_train_split(npz):
    data = data_config("cluttered_mnist", npz)
    digits = image_sources.open_split(data, "test")
    with pytest.raises(ValueError, match="redraw is for the train split"):
        type(digits)(
            np.load(npz)["x_test"], np.load(npz)["y_test"], digits.clutter, 0, "test", True
        )


def test_on_real_mnist(shared_data):
    path = shared_data / "mnist" / "mnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    test = _split(str(path), "test")
    y_test = np.load(path)["y_test"]
    assert len(test) == 10_000
    for i in (0, 1, 9_999):
        record = test[i]
        top, left, bottom, right = record["box"]
        assert record["label"] == y_test[i] and 0 <= top < bottom <= 60 and 0 <= left < right <= 60
        assert bottom - top <= 28 and right - left <= 28
        assert record["image"][top:bottom, left:right].max() > 0
