"""Writes colour digits: a CIFAR-10-shaped class-per-folder tree of 32 x 32 JPEG files.

    python -m experiments.write_colour_digits --npz ../shared/data/mnist/mnist.npz \
        --out /tmp/colour_digits [--train 60000] [--test 10000] [--seed 0]

No colour data set can be downloaded here, so the recipe for 32 x 32 colour folders
(``vit.py:data=folder,path=DIR,colour32``) is measured on this stand-in: each MNIST digit of the
``.npz`` (Keras layout) is alpha-blended in a random colour onto a random background colour,
at a random offset in the 32 x 32 canvas, with Gaussian pixel noise, and saved as
``<out>/<train|test>/<digit>/<index>.jpg``. Digits are not mirror-symmetric, so train on it with
``--config.data.flip=False``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

from attn_research.command_flags import argparse_type, at_least, existing_file

SIDE = 32
NOISE_STD = 8.0  # in 0..255 grey levels
MIN_CONTRAST = 120.0  # least L2 distance between the digit's and the background's RGB colours
JPEG_QUALITY = 90


def colour_digit(digit_HW: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``digit_HW`` uint8 (28 x 28 ink) -> uint8 ``[32, 32, 3]``: the ink in one random colour
    over another, at a random offset, with noise."""
    while True:
        background, ink = rng.uniform(0, 255, (2, 3))
        if np.linalg.norm(background - ink) >= MIN_CONTRAST:
            break
    h, w = digit_HW.shape
    top, left = rng.integers(0, SIDE - h + 1), rng.integers(0, SIDE - w + 1)
    alpha = np.zeros((SIDE, SIDE, 1))
    alpha[top : top + h, left : left + w, 0] = digit_HW / 255.0
    image = background * (1 - alpha) + ink * alpha + rng.normal(0, NOISE_STD, (SIDE, SIDE, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_tree(images: np.ndarray, labels: np.ndarray, root: str, split: str, seed: int) -> None:
    """Writes ``images [N, 28, 28]`` as ``root/split/<label>/<index>.jpg`` colour digits."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    for label in np.unique(labels):
        os.makedirs(os.path.join(root, split, str(label)), exist_ok=True)
    for index, (digit, label) in enumerate(zip(images, labels)):
        path = os.path.join(root, split, str(label), f"{index:05d}.jpg")
        Image.fromarray(colour_digit(digit, rng)).save(path, quality=JPEG_QUALITY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--npz",
        required=True,
        type=argparse_type(str, existing_file),
        help="MNIST-style .npz (x_train, y_train, ...)",
    )
    parser.add_argument("--out", required=True, help="root of the tree to write")
    parser.add_argument(
        "--train",
        type=argparse_type(int, at_least(0)),
        default=60_000,
        help="train images (the first N)",
    )
    parser.add_argument(
        "--test",
        type=argparse_type(int, at_least(0)),
        default=10_000,
        help="test images (the first N)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with np.load(args.npz) as data:
        splits = {
            "train": (data["x_train"][: args.train], data["y_train"][: args.train]),
            "test": (data["x_test"][: args.test], data["y_test"][: args.test]),
        }
    if os.path.exists(args.out) and os.listdir(args.out):
        raise SystemExit(f"--out {args.out!r} is not empty; choose a new folder")
    for split, (images, labels) in splits.items():
        write_tree(images, labels, args.out, split, args.seed)
        print(f"{split}: {len(labels)} images under {os.path.join(args.out, split)}")


if __name__ == "__main__":
    main()
