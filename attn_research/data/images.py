"""Image input pipelines: augmentation, normalization and batching with grain.

Train (one infinite, checkpointable iterator, a function of ``seed`` only): shuffle, repeat,
this process's slice, a fresh draw for a source that redraws (``source.draw``), random crop
with zero padding and flip (seeded by (seed, element)), normalize, batch, mixup (seeded by
(seed, batch)).

Batches hold ``image`` float32 ``[B, H, W, C]`` = ``(x / 255 - mean) / std`` and ``label``
int32 ``[B]``; with mixup (Zhang et al. 2018, ``x = lam x_i + (1 - lam) x_j``,
``lam ~ Beta(alpha, alpha)``) also ``soft_label`` float32 ``[B, num_classes]``. Eval batches
add ``weight`` float32 ``[B]`` (0 on padding, scaled so the trainer's means are exact) and
``box`` int32 ``[B, 4]`` when the source has boxes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import grain
import ml_collections
import numpy as np

Batch = dict[str, np.ndarray]
Record = dict[str, np.ndarray]


def normalize(image_HWC: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 ``[..., C]`` -> float32 ``(x / 255 - mean) / std`` (mean, std of length 1 or C)."""
    x = image_HWC.astype(np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def crop_and_flip(
    image_HWC: np.ndarray, rng: np.random.Generator, padding: int, flip: bool
) -> np.ndarray:
    """A random ``H x W`` crop of the image zero-padded by ``padding``; a coin-flip mirror."""
    if padding:
        h, w = image_HWC.shape[:2]
        padded = np.pad(image_HWC, ((padding, padding), (padding, padding), (0, 0)))
        top, left = rng.integers(0, 2 * padding + 1, size=2)
        image_HWC = padded[top : top + h, left : left + w]
    if flip and rng.random() < 0.5:
        image_HWC = image_HWC[:, ::-1]
    return image_HWC


def mixup(batch: Batch, rng: np.random.Generator, alpha: float, num_classes: int) -> Batch:
    """Mixes each example with the batch reversed: ``lam x + (1 - lam) x[::-1]``."""
    lam = np.float32(rng.beta(alpha, alpha))
    one_hot = np.eye(num_classes, dtype=np.float32)[batch["label"]]
    return {
        **batch,
        "image": lam * batch["image"] + (1 - lam) * batch["image"][::-1],
        "soft_label": lam * one_hot + (1 - lam) * one_hot[::-1],
    }


def train_iterator(
    source: Sequence[Record],
    data: ml_collections.ConfigDict,
    *,
    seed: int,
    batch_size: int,
    process_index: int,
    process_count: int,
    num_classes: int,
) -> grain.DatasetIterator:
    """This process's infinite train iterator (module doc).

    Args:
      source: records ``{'image': uint8 [H, W, C], 'label': int}``; with ``redraw`` true, its
        ``draw(index, rng)`` gives a fresh record each read.
      data: ``config.data`` (``crop_padding``, ``flip``, ``mixup_alpha``, ``mean``, ``std``).
      seed: seeds the order, the augmentation and mixup.
      batch_size: examples per batch on this process.
      process_index, process_count: this process's slice of every epoch.
      num_classes: for mixup's soft labels.
    """

    def augment(record: Record, rng: np.random.Generator) -> Batch:
        image = crop_and_flip(record["image"], rng, data.crop_padding, data.flip)
        return {"image": normalize(image, data.mean, data.std), "label": np.int32(record["label"])}

    def mix(index: int, batch: Batch) -> Batch:
        return mixup(batch, np.random.default_rng((seed, index)), data.mixup_alpha, num_classes)

    if getattr(source, "redraw", False):
        dataset = grain.MapDataset.range(len(source)).shuffle(seed=seed).repeat()
        dataset = dataset[process_index::process_count].random_map(
            lambda index, rng: source.draw(int(index), rng), seed=seed + 1
        )
    else:
        dataset = grain.MapDataset.source(source).shuffle(seed=seed).repeat()
        dataset = dataset[process_index::process_count]
    dataset = dataset.random_map(augment, seed=seed).batch(batch_size, drop_remainder=True)
    if data.mixup_alpha > 0:
        dataset = dataset.map_with_index(mix)
    return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=0)))


def eval_batches(
    source: Sequence[Record],
    data: ml_collections.ConfigDict,
    *,
    batch_size: int,
    process_index: int,
    process_count: int,
) -> Iterable[Batch]:
    """This process's eval batches: every example once, the last batch padded (see above)."""
    size = len(source)
    if size == 0:
        raise ValueError("config.data: the eval split is empty")
    local = grain.MapDataset.source(source)[process_index::process_count]
    num_batches = math.ceil(math.ceil(size / process_count) / batch_size)
    weight = np.float32(num_batches * batch_size * process_count / size)
    blank = {key: np.zeros_like(value) for key, value in local[0].items()}

    def record(index: int) -> Batch:
        real = index < len(local)
        example = local[index] if real else blank
        return {
            **example,
            "image": normalize(example["image"], data.mean, data.std),
            "label": np.int32(example["label"]),
            "weight": weight if real else np.float32(0),
        }

    return grain.MapDataset.range(num_batches * batch_size).map(record).batch(batch_size)
