"""Cluttered translated MNIST (Mnih et al. 2014, "Recurrent Models of Visual Attention", RAM).

Example ``i`` of a split is its digit ``i`` (uint8 ``[N, h, w]`` digits) at a uniformly random
position of a blank ``canvas x canvas`` image, plus ``distractors`` random ``fragment x
fragment`` crops of other digits of the split, added and clipped to ``[0, 1]``; the paper uses
a 60 x 60 canvas with 4 fragments of 8 x 8 (and 100 x 100 with 8). ``box`` is the tight box of
the digit's ink, ``(top, left, bottom, right)``, bottom/right exclusive. Example ``i`` draws
from ``np.random.default_rng((seed, split, i))``. With ``redraw`` (train only), the pipeline
draws each digit anew at every read, as RAM generates its data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Clutter:
    """How images are drawn.

    Attributes:
      canvas: image side in pixels (at least the digits' side).
      distractors: fragments per image.
      fragment: side of the square fragments (at most the digits' side).
    """

    canvas: int = 60
    distractors: int = 4
    fragment: int = 8

    def check(self, digit_shape: tuple[int, int]) -> None:
        """Raises ValueError if digits of ``digit_shape`` cannot be drawn this way."""
        if not max(digit_shape) <= self.canvas:
            raise ValueError(
                f"cluttered_mnist: canvas {self.canvas} is smaller than the digits {digit_shape}"
            )
        if not 1 <= self.fragment <= min(digit_shape):
            raise ValueError(
                f"cluttered_mnist: fragment must be in [1, {min(digit_shape)}], got {self.fragment}"
            )
        if self.distractors < 0:
            raise ValueError(f"cluttered_mnist: distractors must be >= 0, got {self.distractors}")


def ink_box(digit_hw: np.ndarray) -> np.ndarray:
    """Tight box ``(top, left, bottom, right)`` int32 ``[4]`` of a digit's non-zero pixels
    (the whole digit when it has none)."""
    rows, cols = np.flatnonzero(digit_hw.any(axis=1)), np.flatnonzero(digit_hw.any(axis=0))
    if not len(rows):
        return np.asarray((0, 0, *digit_hw.shape), np.int32)
    return np.asarray((rows[0], cols[0], rows[-1] + 1, cols[-1] + 1), np.int32)


def render(
    rng: np.random.Generator, digits_NHW: np.ndarray, index: int, clutter: Clutter
) -> tuple[np.ndarray, np.ndarray]:
    """Digit ``index`` of ``digits_NHW`` (uint8) in clutter: ``(image uint8 [canvas, canvas, 1],
    box int32 [4])``."""
    n, (h, w), f = clutter.canvas, digits_NHW.shape[1:], clutter.fragment
    canvas = np.zeros((n, n), np.float32)
    top, left = int(rng.integers(n - h + 1)), int(rng.integers(n - w + 1))
    canvas[top : top + h, left : left + w] = digits_NHW[index] / 255.0
    for _ in range(clutter.distractors):
        other = int(rng.integers(len(digits_NHW) - 1))
        other += other >= index  # Any digit of the split but this one.
        r, c = int(rng.integers(h - f + 1)), int(rng.integers(w - f + 1))
        y, x = (int(v) for v in rng.integers(n - f + 1, size=2))
        canvas[y : y + f, x : x + f] += digits_NHW[other, r : r + f, c : c + f] / 255.0
    image = np.round(np.clip(canvas, 0.0, 1.0) * 255).astype(np.uint8)[..., None]
    return image, ink_box(digits_NHW[index]) + np.asarray((top, left, top, left), np.int32)


class ClutteredMnistSource:
    """A grain-readable split: ``source[i] -> {'image', 'label', 'box'}``, drawn on demand.

    Args:
      digits: uint8 ``[N, h, w]`` (or ``[N, h, w, 1]``) digits of the split, ``N >= 2``.
      labels: int ``[N]``, their labels.
      clutter: the drawing parameters; seed: the data's seed; split: ``train`` or ``test``.
      redraw: whether a train pipeline draws each digit anew at every read (``draw``).
    """

    def __init__(
        self,
        digits: np.ndarray,
        labels: np.ndarray,
        clutter: Clutter,
        seed: int,
        split: str,
        redraw: bool = False,
    ):
        if split not in SPLITS:
            raise ValueError(f"cluttered_mnist: unknown split {split!r}; choose one of {SPLITS}")
        digits = digits[..., 0] if digits.ndim == 4 and digits.shape[-1] == 1 else digits
        if digits.ndim != 3 or digits.dtype != np.uint8 or len(digits) < 2:
            raise ValueError(
                f"cluttered_mnist: needs at least 2 uint8 grey digits [N, h, w], got "
                f"{digits.dtype} {digits.shape}"
            )
        clutter.check(digits.shape[1:])
        if redraw and split != "train":
            raise ValueError("cluttered_mnist: redraw is for the train split; eval draws are fixed")
        self.clutter, self._digits, self._labels = clutter, digits, labels
        self._key = (seed, SPLITS.index(split))
        self.redraw = redraw

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} examples")
        return self.draw(index, np.random.default_rng((*self._key, index)))

    def draw(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Digit ``index`` in clutter drawn from ``rng``: ``{'image', 'label', 'box'}``."""
        image, box = render(rng, self._digits, index, self.clutter)
        return {"image": image, "label": np.int32(self._labels[index]), "box": box}
