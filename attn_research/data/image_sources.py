"""Where images come from: random-access splits of ``{'image', 'label'[, 'box']}`` records.

Sources (``config.data.source``):

- ``cluttered``: the generated dataset of ``data/cluttered.py`` (no files; emits ``box``).
- ``cluttered_mnist``: the digits of the ``.npz`` at ``config.data.path`` (as ``npz``) drawn in
  clutter by ``data/cluttered_mnist.py`` (Mnih et al. 2014; emits ``box``), its train and test
  splits from the file's.
- ``npz``: a Keras-style ``.npz`` at ``config.data.path`` holding ``x_train``, ``y_train``,
  ``x_test``, ``y_test``; images uint8 ``[N, H, W]`` (grayscale) or ``[N, H, W, C]``.
- ``folder``: ``config.data.path/<split>/<class name>/<image file>``; classes are the sorted
  folder names of the train split (two or more); images in sub-folders of a class folder are
  read as that class's (the count is logged); files that are not images (by suffix) are
  skipped and classes without images in a split are warned of, with counts. Every Pillow mode
  is converted to ``channels`` (1 or 3) by ``image_modes.to_pixels`` (bit depth, palette,
  alpha, CMYK), or refused by name.
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
from absl import logging
from PIL import Image

from attn_research.data import cluttered, cluttered_mnist, image_modes

SOURCES = ("cluttered", "cluttered_mnist", "npz", "folder", "tfds")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


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
    """The sorted names of the class folders in `root` (a split's directory)."""
    if not os.path.isdir(root):
        raise ValueError(f"config.data.path: no such directory: {root!r}")
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))


def _train_classes(path: str) -> list[str]:
    """The classes of a folder source: its train split's class folders, two or more."""
    root = os.path.join(path, "train")
    classes = _folder_classes(root)
    if len(classes) < 2:
        raise ValueError(
            f"config.data.path: {root!r} holds {len(classes)} class folder(s) {classes}; a "
            f"classifier needs two or more (<path>/train/<class name>/<image file>)"
        )
    return classes


def _class_files(directory: str) -> tuple[list[str], list[str], int]:
    """``(image files, other files, image files in sub-folders)`` under a class folder, read
    recursively, in sorted order."""
    found, skipped, nested = [], [], 0
    for folder, subfolders, files in os.walk(directory):
        subfolders.sort()
        for file in sorted(files):
            path = os.path.join(folder, file)
            if file.lower().endswith(_IMAGE_SUFFIXES):
                found.append(path)
                nested += folder != directory
            else:
                skipped.append(path)
    return found, skipped, nested


@functools.lru_cache(maxsize=4)
def _folder(path: str, split: str, channels: int, image_size: int) -> ArraySplit:
    """Reads every image of ``path/split/<class>/`` (and its sub-folders) into memory (cached).

    Logs how many images came from sub-folders, and warns, with counts, of files that are not
    images and of classes without images in this split.
    """
    classes = _train_classes(path)
    root = os.path.join(path, split)
    images, labels, shape = [], [], None
    empty, skipped, nested = [], [], 0
    for name in _folder_classes(root):
        if name not in classes:
            raise ValueError(f"{root}: class folder {name!r} is not a class of the train split")
        files, others, deeper = _class_files(os.path.join(root, name))
        skipped += others
        nested += deeper
        empty += [] if files else [name]
        for file in files:
            image = image_modes.read_file(file, channels)
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
    _report(root, classes, labels, empty, skipped, nested)
    return ArraySplit(np.stack(images), np.asarray(labels, np.int32))


def _report(
    root: str,
    classes: list[str],
    labels: list[int],
    empty: list[str],
    skipped: list[str],
    nested: int,
) -> None:
    """Says what reading a folder split left out or found deeper than the class folders."""
    missing = sorted(set(classes) - {classes[i] for i in labels})
    if missing:
        logging.warning(
            "%s: %d of the %d classes have no images in this split: %s (empty folders: %s).",
            root,
            len(missing),
            len(classes),
            missing,
            sorted(empty) or "none",
        )
    if skipped:
        logging.warning(
            "%s: skipped %d files that are not images (%s), e.g. %s.",
            root,
            len(skipped),
            ", ".join(_IMAGE_SUFFIXES),
            skipped[:3],
        )
    if nested:
        logging.info(
            "%s: %d of the %d images are in sub-folders of their class folder; each counts "
            "as its class folder's.",
            root,
            nested,
            len(labels),
        )


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
        return len(_train_classes(data.path))
    return int(_npz(data.path)["train"].labels.max()) + 1


def class_names(data: ml_collections.ConfigDict) -> list[str]:
    """The ``num_classes(data)`` class names: folder names, TFDS label names, else indices."""
    names: list[str] = []
    if data.source == "folder":
        names = _train_classes(data.path)
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
