"""``config.data`` of image tasks: every field with its default, and presets by dataset.

``data_config(data, path)`` takes the image configs' ``data=`` and ``path=`` args: ``data`` is
``cluttered``, ``cluttered_mnist``, ``npz``, ``folder``, or a TFDS image classification
dataset (``mnist``, ``cifar10``, ``imagenette``, ...).
"""

from __future__ import annotations

import ml_collections

# Per-channel mean and std of the training images, in [0, 1] intensity.
_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cluttered_mnist": ((0.0431,), (0.1877,)),  # MNIST's train digits on the 60 x 60 canvas.
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_COLOUR_AUGMENTED = ("cifar10", "cifar100", "imagenette", "svhn_cropped")


def colour32(config: ml_collections.ConfigDict) -> None:
    """Sets ``config.data`` (in place) for 32 x 32 RGB images: random crops zero-padded by 4 and
    flips (He et al. 2016's CIFAR-10 augmentation); folders are normalized with CIFAR-10's channel
    statistics, TFDS data with its own.
    """
    config.image_size, config.channels = 32, 3
    config.crop_padding, config.flip = 4, True
    if config.source == "folder":
        config.mean, config.std = _STATS["cifar10"]


def cluttered_config(tiny: bool = False) -> ml_collections.ConfigDict:
    """``config.data.cluttered``: see ``attn_research.data.cluttered.Clutter``."""
    return ml_collections.ConfigDict(
        {
            "seed": 0,  # The dataset's seed (train and test are disjoint draws of it).
            "num_train": 512 if tiny else 20_000,
            "num_eval": 128 if tiny else 2_000,
            "canvas": 32,
            "num_classes": 10,
            "min_size": 7,
            "max_size": 9,
            "distractors": 4,
            "fragment": 4,
            "noise": 0.1,
        }
    )


def cluttered_mnist_config() -> ml_collections.ConfigDict:
    """``config.data.cluttered_mnist`` (``data.cluttered_mnist.Clutter``); ``redraw``: new clutter
    for every train digit at each read, as RAM's data is drawn."""
    return ml_collections.ConfigDict(
        {"seed": 0, "canvas": 60, "distractors": 4, "fragment": 8, "redraw": True}
    )


def data_config(
    data: str = "cluttered", path: str = "", *, tiny: bool = False
) -> ml_collections.ConfigDict:
    """``config.data`` for ``data`` (a source, or a TFDS name) and ``path`` (npz, folder)."""
    config = ml_collections.ConfigDict()
    config.source = data if data in ("cluttered", "cluttered_mnist", "npz", "folder") else "tfds"
    config.name = data if config.source == "tfds" else ""  # TFDS dataset name.
    config.path = path  # .npz file or folder root (required for those sources).
    config.data_dir = ""  # TFDS data_dir ("" = TFDS's default).
    config.train_split = "train"
    config.eval_split = "test"
    config.image_key = "image"  # TFDS feature names.
    config.label_key = "label"
    config.image_size = 0  # Resize + centre-crop to this side (folder, tfds); 0 = as stored.
    config.channels = 3  # Folder images are read as L (1) or RGB (3).
    config.num_classes = 0  # 0 = from the source (TFDS metadata, folders, max npz label + 1).
    config.crop_padding = 0  # Random crop after zero padding by this many pixels; 0 = off.
    config.flip = False  # Random horizontal flips.
    config.mixup_alpha = 0.0  # Mixup's Beta(alpha, alpha); 0 = off.
    mean, std = _STATS.get(data, _STATS["mnist"] if data == "npz" else ((0.5,), (0.5,)))
    config.mean, config.std = mean, std
    if data in _COLOUR_AUGMENTED:
        config.crop_padding, config.flip = 4, True
    config.cluttered = cluttered_config(tiny)
    config.cluttered_mnist = cluttered_mnist_config()
    return config
