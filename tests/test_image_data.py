"""Image data: the cluttered generator, npz/folder/TFDS sources, the grain pipeline, bad input."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from attn_research.data import cluttered, image_sources, images
from attn_research.data.image_config import data_config


def _record(seed: int, index: int, **clutter):
    return cluttered.ClutteredSource(cluttered.Clutter(**clutter), 64, seed, "train")[index]


def test_cluttered_box_holds_exactly_the_glyph():
    for index in range(20):
        record = _record(3, index, distractors=0, noise=0.0)
        top, left, bottom, right = record["box"]
        inked = np.argwhere(record["image"][..., 0] > 0)
        assert inked.size
        # All glyph pixels inside the box, and the box is tight around them.
        assert (inked.min(0) == (top, left)).all()
        assert (inked.max(0) == (bottom - 1, right - 1)).all()


def test_cluttered_distractors_stay_outside_the_box_and_the_label_is_the_glyph():
    bank = cluttered.glyphs(10)
    for index in range(20):
        record = _record(5, index, noise=0.0)
        top, left, bottom, right = record["box"]
        size = bottom - top
        assert right - left == size and 7 <= size <= 9
        inside = record["image"][top:bottom, left:right, 0] > 0
        pattern = bank[record["label"]][np.arange(size) * 7 // size][:, np.arange(size) * 7 // size]
        np.testing.assert_array_equal(inside, pattern)
        outside = record["image"][..., 0].copy()
        outside[top:bottom, left:right] = 0
        assert outside.any()  # The distractors are there, outside the box.


def test_cluttered_is_deterministic_for_a_seed():
    a, b, c = _record(1, 7), _record(1, 7), _record(2, 7)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert not np.array_equal(a["image"], c["image"])
    assert cluttered.glyphs(10).shape == (10, 7, 7)


def test_real_mnist_npz(shared_data):
    path = shared_data / "mnist" / "mnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    data = data_config("npz", str(path))
    train, test = (image_sources.open_split(data, s) for s in ("train", "test"))
    assert (train.images.shape, test.images.shape) == ((60000, 28, 28, 1), (10000, 28, 28, 1))
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32
    assert set(np.unique(train.labels)) == set(range(10))
    assert image_sources.num_classes(data) == 10


def _write_npz(path, x_train, y_train, x_test, y_test):
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


def _images(n, h=6, w=6, *channels):
    return np.random.default_rng(0).integers(0, 256, (n, h, w, *channels), dtype=np.uint8)


def test_npz_colour_and_bad_input(tmp_path):
    good = _write_npz(
        tmp_path / "good.npz",
        _images(8, 6, 6, 3),
        np.arange(8) % 4,
        _images(4, 6, 6, 3),
        np.arange(4),
    )
    split = image_sources.open_split(data_config("npz", good), "test")
    assert split[2]["image"].shape == (6, 6, 3) and split[2]["label"] == 2

    shapes = _write_npz(
        tmp_path / "shapes.npz", _images(8), np.zeros(8, int), _images(4, 7, 7), np.zeros(4, int)
    )
    with pytest.raises(ValueError, match="inconsistent shape"):
        image_sources.open_split(data_config("npz", shapes), "train")
    labels = _write_npz(tmp_path / "labels.npz", _images(8), np.arange(8), _images(4), np.arange(4))
    data = data_config("npz", labels)
    data.num_classes = 5
    with pytest.raises(ValueError, match=r"labels out of range \[0, 5\)"):
        image_sources.open_split(data, "train")
    negative = _write_npz(
        tmp_path / "neg.npz", _images(8), -np.ones(8, int), _images(4), np.zeros(4, int)
    )
    with pytest.raises(ValueError, match="labels out of range"):
        image_sources.open_split(data_config("npz", negative), "train")
    with pytest.raises(ValueError, match="config.data.path: no such .npz file"):
        image_sources.open_split(data_config("npz", str(tmp_path / "missing.npz")), "train")
    np.savez(tmp_path / "partial.npz", x_train=_images(2))
    with pytest.raises(ValueError, match="lacks arrays"):
        image_sources.open_split(data_config("npz", str(tmp_path / "partial.npz")), "train")


def _write_folder(root, sizes):
    for split, classes in sizes.items():
        for name, (count, size) in classes.items():
            os.makedirs(root / split / name, exist_ok=True)
            for i in range(count):
                Image.fromarray(_images(1, *size, 3)[0]).save(root / split / name / f"{i}.png")


def test_folder_source(tmp_path):
    _write_folder(
        tmp_path, {"train": {"cat": (3, (8, 8)), "dog": (2, (8, 8))}, "test": {"dog": (2, (8, 8))}}
    )
    data = data_config("folder", str(tmp_path))
    train = image_sources.open_split(data, "train")
    assert train.images.shape == (5, 8, 8, 3) and list(train.labels) == [0, 0, 0, 1, 1]
    assert list(image_sources.open_split(data, "test").labels) == [1, 1]
    data.channels = 1
    assert image_sources.open_split(data, "train").images.shape == (5, 8, 8, 1)


def test_folder_of_mixed_sizes_needs_image_size(tmp_path):
    _write_folder(
        tmp_path, {"train": {"a": (1, (8, 8)), "b": (1, (10, 12))}, "test": {"a": (1, (8, 8))}}
    )
    data = data_config("folder", str(tmp_path))
    with pytest.raises(ValueError, match="inconsistent shape need config.data.image_size"):
        image_sources.open_split(data, "train")
    data.image_size = 6
    assert image_sources.open_split(data, "train").images.shape == (2, 6, 6, 3)
    with pytest.raises(ValueError, match="no such directory"):
        image_sources.open_split(data_config("folder", str(tmp_path / "nope")), "train")


def test_tfds_by_name_with_mock_data():
    with tfds.testing.mock_data(num_examples=12):
        data = data_config("mnist")
        split = image_sources.open_split(data, "train")
        assert len(split) == 12
        record = split[3]
        assert record["image"].shape == (28, 28, 1) and record["image"].dtype == np.uint8
        assert 0 <= record["label"] < 10
        assert image_sources.num_classes(data) == 10
        with pytest.raises(ValueError, match="config.data.name: unknown TFDS dataset"):
            image_sources.open_split(data_config("no_such_dataset_xyz"), "train")


def _source(n=10, h=4, w=4):
    return image_sources.ArraySplit(_images(n, h, w, 1), np.arange(n, dtype=np.int32) % 3)


def test_train_iterator_is_deterministic_and_resumable():
    data = data_config("npz", "unused.npz")
    data.crop_padding, data.flip, data.mixup_alpha = 1, True, 0.4

    def iterator():
        return images.train_iterator(
            _source(), data, seed=7, batch_size=4, process_index=0, process_count=1, num_classes=3
        )

    first = iterator()
    for _ in range(3):
        next(first)
    state = first.get_state()
    expected = [next(first) for _ in range(4)]
    resumed = iterator()
    resumed.set_state(state)
    for batch, want in zip((next(resumed) for _ in range(4)), expected):
        for key in ("image", "label", "soft_label"):
            np.testing.assert_array_equal(batch[key], want[key])
    assert expected[0]["image"].shape == (4, 4, 4, 1) and expected[0]["image"].dtype == np.float32
    np.testing.assert_allclose(expected[0]["soft_label"].sum(-1), 1.0, rtol=1e-6)


def test_eval_batches_weights_give_the_exact_mean_over_examples():
    source, data = _source(n=11), data_config("npz", "unused.npz")
    for count in (1, 2):
        batches = [
            b
            for p in range(count)
            for b in images.eval_batches(
                source, data, batch_size=3, process_index=p, process_count=count
            )
        ]
        assert len(batches) % count == 0
        global_batch = 3 * count
        mean = np.mean([(b["weight"] * b["label"]).sum() for b in batches]) * count / global_batch
        np.testing.assert_allclose(mean, source.labels.mean(), rtol=1e-6)
        assert sum((b["weight"] > 0).sum() for b in batches) == 11
