"""Where images come from: random-access splits of ``{'image', 'label'[, 'box']}`` records.

Sources (``config.data.source``):

- ``cluttered``: the generated dataset of ``data/cluttered.py`` (no files; emits ``box``).
- ``cluttered_mnist``: the digits of the ``.npz`` at ``config.data.path`` (as ``npz``) drawn in
  clutter by ``data/cluttered_mnist.py`` (Mnih et al. 2014; emits ``box``), its train and test
  splits from the file's.
- ``npz``: a Keras-style ``.npz`` at ``config.data.path`` holding ``x_train``, ``y_train``,
  ``x_test``, ``y_test``; images uint8 ``[N, H, W]`` (grayscale) or ``[N, H, W, C]``.
- ``folder``: ``config.data.path/<split>/<class name>/<image file>``; classes are the sorted
  folder names of the train split; images are read with Pillow as ``L`` (channels=1) or
  ``RGB`` (channels=3).
- ``tfds``: the TFDS dataset ``config.data.name`` read with ``tfds.data_source`` from
  ``config.data.data_dir`` (it must be prepared there; no TensorFlow needed).

Images of a source all have one shape ``[H, W, C]``: variable-size images (folders, e.g.
imagenette in TFDS) need ``config.data.image_size``, which resizes the shorter side and crops
the centre square. Everything checkable is checked when a source is opened, with a ValueError
naming the field or file: a missing file, an unknown dataset, images of inconsistent shapes,
labels outside ``[0, num_classes)``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

import ml_collections
import numpy as np
from PIL import Image

from attn_research.data import cluttered, cluttered_mnist

SOURCES = ("cluttered", "cluttered_mnist", "npz", "folder", "tfds")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclasses.dataclass(frozen=True)
class ArraySplit:
    """An in-memory split: uint8 ``images [N, H, W, C]``, int32 ``labels [N]``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {"image": self.images[index], "label": self.labels[index]}


def fit_image(image: np.ndarray, size: int) -> np.ndarray:
    """``[h, w, C]`` uint8 -> ``[size, size, C]``: resize the shorter side, crop the centre."""
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    scale = size / min(pil.size)
    w, h = max(size, round(pil.width * scale)), max(size, round(pil.height * scale))
    pil = pil.resize((w, h), Image.BILINEAR)
    left, top = (w - size) // 2, (h - size) // 2
    out = np.asarray(pil.crop((left, top, left + size, top + size)))
    return out.reshape(size, size, image.shape[-1])


def _checked_labels(labels: np.ndarray, what: str, num_classes: int) -> np.ndarray:
    """Labels as int32 ``[N]``, or ValueError naming `what` if they are not in range."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{what}: labels must be integers of shape [N], got {labels.dtype} {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{what}: labels out of range [0, {num_classes}): found {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.int32)


def _checked_images(images: np.ndarray, what: str) -> np.ndarray:
    """uint8 ``[N, H, W, C]`` with C in (1, 3), or ValueError naming `what`."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
        raise ValueError(
            f"{what}: images must be uint8 [N, H, W] or [N, H, W, 1|3], got "
            f"{images.dtype} {images.shape}"
        )
    return images


def _existing(path: str) -> str:
    if not os.path.isfile(path):
        raise ValueError(f"config.data.path: no such .npz file: {path!r}")
    return path


@functools.lru_cache(maxsize=4)
def _npz(path: str) -> dict[str, ArraySplit]:
    """The train and test splits of a Keras-style .npz (cached: read once per process)."""
    with np.load(_existing(path)) as npz:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
        if missing:
            raise ValueError(
                f"config.data.path: {path!r} lacks arrays {sorted(missing)} (has {npz.files})"
            )
        arrays = {key: npz[key] for key in npz.files}
    splits = {}
    for split in ("train", "test"):
        what = f"{path} [{split}]"
        images, labels = _checked_images(arrays[f"x_{split}"], what), arrays[f"y_{split}"]
        labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
        if len(labels) != len(images):
            raise ValueError(f"{what}: {len(images)} images but {len(labels)} labels")
        splits[split] = ArraySplit(images, _checked_labels(labels, what, np.iinfo(np.int32).max))
    if splits["train"].images.shape[1:] != splits["test"].images.shape[1:]:
        raise ValueError(
            f"{path}: images of inconsistent shape: train "
            f"{splits['train'].images.shape[1:]}, test "
            f"{splits['test'].images.shape[1:]}"
        )
    return splits


def _folder_classes(root: str) -> list[str]:
    if not os.path.isdir(root):
        raise ValueError(f"config.data.path: no such directory: {root!r}")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise ValueError(f"config.data.path: {root!r} holds no class folders")
    return classes


@functools.lru_cache(maxsize=4)
def _folder(path: str, split: str, channels: int, image_size: int) -> ArraySplit:
    """Reads every image of ``path/split/<class>/`` into memory (cached)."""
    classes = _folder_classes(os.path.join(path, "train"))
    root = os.path.join(path, split)
    images, labels, shape = [], [], None
    for name in _folder_classes(root):
        if name not in classes:
            raise ValueError(f"{root}: class folder {name!r} is not a class of the train split")
        directory = os.path.join(root, name)
        for file in sorted(os.listdir(directory)):
            if not file.lower().endswith(_IMAGE_SUFFIXES):
                continue
            file = os.path.join(directory, file)
            try:
                with Image.open(file) as pil:
                    image = np.asarray(pil.convert("L" if channels == 1 else "RGB"))
            except OSError as error:  # Truncated, corrupt or not an image at all.
                raise ValueError(
                    f"{file}: cannot read the image ({error}); remove or replace the file"
                ) from None
            image = image.reshape(*image.shape[:2], channels)
            if image_size:
                image = fit_image(image, image_size)
            if shape is not None and image.shape != shape:
                raise ValueError(
                    f"{file}: image of shape {image.shape} differs from {shape}; "
                    f"images of inconsistent shape need config.data.image_size"
                )
            shape = image.shape
            images.append(image)
            labels.append(classes.index(name))
    if not images:
        raise ValueError(f"{root}: no image files ({', '.join(_IMAGE_SUFFIXES)})")
    return ArraySplit(np.stack(images), np.asarray(labels, np.int32))


class TfdsSplit:
    """A TFDS split read by ``tfds.data_source``; images fitted to ``image_size`` if set."""

    def __init__(self, source: Sequence, image_key: str, label_key: str, image_size: int):
        self._source, self._keys, self._size = source, (image_key, label_key), image_size

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        record = self._source[index]
        image = np.asarray(record[self._keys[0]], np.uint8)
        image = image[..., None] if image.ndim == 2 else image
        if self._size:
            image = fit_image(image, self._size)
        return {"image": image, "label": np.int32(record[self._keys[1]])}


def _tfds_builder(data: ml_collections.ConfigDict):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    try:
        return tfds.builder(data.name, data_dir=data.data_dir or None)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(f"config.data.name: unknown TFDS dataset {data.name!r}") from e


def _tfds(data: ml_collections.ConfigDict, split: str) -> TfdsSplit:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    builder = _tfds_builder(data)
    try:
        source = tfds.data_source(
            data.name, split=split, data_dir=data.data_dir or None, download=False
        )
    except (AssertionError, FileNotFoundError, ValueError) as e:
        raise ValueError(
            f"config.data: TFDS dataset {data.name!r} split {split!r} is not "
            f"prepared in data_dir {builder.data_dir!r} ({e})"
        ) from e
    return TfdsSplit(source, data.image_key, data.label_key, data.image_size)


def tfds_info(data: ml_collections.ConfigDict) -> tuple[tuple[int | None, ...], int]:
    """``(image shape, num_classes)`` of a TFDS dataset from its metadata."""
    features = _tfds_builder(data).info.features
    for key in (data.image_key, data.label_key):
        if key not in features:
            raise ValueError(
                f"config.data: TFDS dataset {data.name!r} has no feature {key!r} "
                f"(has {sorted(features)})"
            )
    return tuple(features[data.image_key].shape), features[data.label_key].num_classes


def num_classes(data: ml_collections.ConfigDict) -> int:
    """``config.data.num_classes``, or the source's own count when that is 0."""
    if data.num_classes:
        return data.num_classes
    if data.source == "cluttered":
        return data.cluttered.num_classes
    if data.source == "tfds":
        return tfds_info(data)[1]
    if data.source == "folder":
        return len(_folder_classes(os.path.join(data.path, "train")))
    return int(_npz(data.path)["train"].labels.max()) + 1


def class_names(data: ml_collections.ConfigDict) -> list[str]:
    """The ``num_classes(data)`` class names: folder names, TFDS label names, else indices."""
    names: list[str] = []
    if data.source == "folder":
        names = _folder_classes(os.path.join(data.path, "train"))
    elif data.source == "tfds":
        names = list(_tfds_builder(data).info.features[data.label_key].names or ())
    return [names[i] if i < len(names) else str(i) for i in range(num_classes(data))]


def clutter(data: ml_collections.ConfigDict) -> cluttered.Clutter:
    """The cluttered dataset's drawing parameters from ``config.data.cluttered``."""
    c = data.cluttered
    return cluttered.Clutter(
        c.canvas, c.num_classes, c.min_size, c.max_size, c.distractors, c.fragment, c.noise
    )


def open_split(data: ml_collections.ConfigDict, split: str) -> Sequence[dict[str, np.ndarray]]:
    """The split named ``split`` of ``config.data``'s source, checked.

    Raises:
      ValueError: naming the field or file at fault.
    """
    if data.source not in SOURCES:
        raise ValueError(
            f"config.data.source: unknown source {data.source!r}; choose one of {SOURCES}"
        )
    if data.source == "cluttered":
        size = data.cluttered.num_train if split == data.train_split else data.cluttered.num_eval
        return cluttered.ClutteredSource(
            clutter(data),
            size,
            data.cluttered.seed,
            "train" if split == data.train_split else "test",
        )
    if data.source == "tfds":
        return _tfds(data, split)
    if data.source == "folder":
        return _folder(data.path, split, data.channels, data.image_size)
    splits = _npz(data.path)
    if split not in splits:
        raise ValueError(f"config.data: an .npz has the splits {sorted(splits)}, not {split!r}")
    if data.image_size:
        raise ValueError(
            "config.data.image_size: resizing is for folder and tfds sources; "
            "an .npz is used at its own size"
        )
    digits = splits[split]
    _checked_labels(digits.labels, f"{data.path} [{split}]", num_classes(data))
    if data.source == "npz":
        return digits
    c = data.cluttered_mnist
    drawing = cluttered_mnist.Clutter(c.canvas, c.distractors, c.fragment)
    return cluttered_mnist.ClutteredMnistSource(
        digits.images, digits.labels, drawing, c.seed, split, c.redraw and split == data.train_split
    )
