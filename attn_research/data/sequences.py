"""The Long Range Arena's classification data as token sequences, and their grain pipelines.

Sources (``config.data.source``) give records ``{'tokens': int32 [T], 'length': int32,
'label': int32}``, ``tokens`` right-padded with 0:

- ``listops``: generated expressions (``data/listops.py``), ``T = listops.max_len``.
- ``pathfinder``: generated images (``data/pathfinder.py``), row-major, ``T = size * size``.
- ``image``: an image source of ``data/image_sources.py`` (``config.data.image``) in grey,
  ``L = (19595 R + 38470 G + 7471 B + 2^15) >> 16`` (Pillow's ``L``), row-major.

Eval batches hold every example once, the last padded with ``weight`` 0 examples.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import grain
import ml_collections
import numpy as np

from attn_research.data import image_sources, listops, pathfinder

SOURCES = ("listops", "pathfinder", "image")
PIXEL_LEVELS = 256
Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Split:
    """``tokens [N, T]`` (any int dtype), ``lengths int32 [N]``, ``labels int32 [N]``."""

    tokens: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {
            "tokens": self.tokens[index].astype(np.int32),
            "length": self.lengths[index],
            "label": self.labels[index],
        }


def grey(images_NHWC: np.ndarray) -> np.ndarray:
    """uint8 ``[N, H, W, 1|3]`` -> uint8 ``[N, H, W]``, ITU-R 601 luma for colour images."""
    if images_NHWC.shape[-1] == 1:
        return images_NHWC[..., 0]
    r, g, b = (images_NHWC[..., c].astype(np.uint32) for c in range(3))
    return ((19595 * r + 38470 * g + 7471 * b + (1 << 15)) >> 16).astype(np.uint8)


def _pixels(images_NHW: np.ndarray, labels: np.ndarray) -> Split:
    n = len(images_NHW)
    tokens = images_NHW.reshape(n, -1)
    return Split(tokens, np.full(n, tokens.shape[1], np.int32), labels.astype(np.int32))


def listops_spec(data: ml_collections.ConfigDict) -> listops.Spec:
    return listops.Spec(**data.listops.to_dict())


def pathfinder_spec(data: ml_collections.ConfigDict) -> pathfinder.Spec:
    return pathfinder.Spec(**data.pathfinder.to_dict())


def open_split(data: ml_collections.ConfigDict, train: bool) -> Split:
    """The train or eval split of ``config.data``.

    Raises:
      ValueError: naming the ``config.data`` field at fault.
    """
    if data.source not in SOURCES:
        raise ValueError(f"config.data.source: unknown {data.source!r}; choose one of {SOURCES}")
    name = "train" if train else "test"
    size = (data.num_train if train else data.num_eval) if data.source != "image" else 0
    if data.source == "listops":
        return Split(*listops.split(listops_spec(data), data.seed, name, size, data.cache_dir))
    if data.source == "pathfinder":
        return _pixels(*pathfinder.split(pathfinder_spec(data), data.seed, name, size))
    image = data.image
    records = image_sources.open_split(image, image.train_split if train else image.eval_split)
    if isinstance(records, image_sources.ArraySplit):
        return _pixels(grey(records.images), records.labels)
    images = np.stack([records[i]["image"] for i in range(len(records))])
    return _pixels(grey(images), np.array([records[i]["label"] for i in range(len(records))]))


def vocab_size(data: ml_collections.ConfigDict) -> int:
    """Token ids are below this."""
    return len(listops.TOKENS) if data.source == "listops" else PIXEL_LEVELS


def num_classes(data: ml_collections.ConfigDict) -> int:
    if data.source == "listops":
        return listops.NUM_CLASSES
    if data.source == "pathfinder":
        return 2
    return image_sources.num_classes(data.image)


def grid(data: ml_collections.ConfigDict) -> tuple[int, int] | None:
    """The pixel grid ``(H, W)`` of image sequences (for ``local_2d``); None for ListOps."""
    if data.source == "listops":
        return None
    if data.source == "pathfinder":
        return (data.pathfinder.size, data.pathfinder.size)
    records = image_sources.open_split(data.image, data.image.train_split)
    return tuple(records[0]["image"].shape[:2])


def train_iterator(
    split: Split, *, seed: int, batch_size: int, process_index: int, process_count: int
) -> grain.DatasetIterator:
    """The infinite train iterator of this process (see the module docstring)."""
    dataset = (
        grain.MapDataset.source(split)
        .shuffle(seed=seed)
        .repeat()[process_index::process_count]
        .batch(batch_size, drop_remainder=True)
    )
    return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=0)))


def eval_batches(
    split: Split, *, batch_size: int, process_index: int, process_count: int
) -> Iterable[Batch]:
    """This process's eval batches: every example once; ``weight`` 0 marks padding."""
    if len(split) == 0:
        raise ValueError("config.data: the eval split is empty")
    local = grain.MapDataset.source(split)[process_index::process_count]
    num_batches = math.ceil(math.ceil(len(split) / process_count) / batch_size)
    blank = {key: np.zeros_like(value) for key, value in local[0].items()}

    def record(index: int) -> Batch:
        real = index < len(local)
        return {**(local[index] if real else blank), "weight": np.float32(real)}

    return grain.MapDataset.range(num_batches * batch_size).map(record).batch(batch_size)


def check(data: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the ``config.data`` field that cannot be used."""
    if data.source not in SOURCES:
        raise ValueError(f"config.data.source: unknown {data.source!r}; choose one of {SOURCES}")
    if data.source != "image":
        for name in ("num_train", "num_eval"):
            if data[name] < 1:
                raise ValueError(f"config.data.{name}: must be >= 1, got {data[name]}")
    if data.source == "listops":
        listops_spec(data).check("config.data.listops")
    elif data.source == "pathfinder":
        pathfinder_spec(data).check("config.data.pathfinder")
