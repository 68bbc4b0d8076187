"""Cluttered objects: a generated image dataset that needs no download and knows its boxes.

A noisy ``canvas x canvas`` grayscale image holds one class glyph (a fixed ``7 x 7`` pattern
per class, ``7..9`` pixels a side) at a random position, and distractor fragments of glyphs
outside its box. ``box`` is the glyph's tight box ``(top, left, bottom, right)``, bottom/right
exclusive. Example ``i`` draws from ``np.random.default_rng((seed, split, i))``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

GLYPH = 7  # Side of the class patterns before scaling.
_BANK_SEED = 20_150_210  # The glyphs are fixed: the same classes for every seed and split.
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Clutter:
    """How images are drawn.

    Attributes:
      canvas: image side in pixels.
      num_classes: glyph classes (at most 32).
      min_size, max_size: glyph side range in pixels (nearest-neighbour scaled from 7).
      distractors: fragments per image.
      fragment: largest fragment side (fragments are 2..fragment pixels a side).
      noise: standard deviation of the Gaussian background noise, in [0, 1] intensity.
    """

    canvas: int = 32
    num_classes: int = 10
    min_size: int = 7
    max_size: int = 9
    distractors: int = 4
    fragment: int = 4
    noise: float = 0.1

    def __post_init__(self):
        if not 1 <= self.num_classes <= 32:
            raise ValueError(f"cluttered: num_classes must be in [1, 32], got {self.num_classes}")
        if not 2 <= self.min_size <= self.max_size <= self.canvas:
            raise ValueError(
                f"cluttered: need 2 <= min_size <= max_size <= canvas, got "
                f"{self.min_size}, {self.max_size}, {self.canvas}"
            )


@functools.lru_cache(maxsize=None)
def glyphs(num_classes: int) -> np.ndarray:
    """Fixed class patterns, bool ``[num_classes, 7, 7]``: random, density 1/2, border rows and
    columns inked, pairwise different in at least 14 of 49 pixels."""
    rng = np.random.default_rng(_BANK_SEED)
    bank: list[np.ndarray] = []
    while len(bank) < num_classes:
        g = rng.random((GLYPH, GLYPH)) < 0.5
        inked = g[0].any() and g[-1].any() and g[:, 0].any() and g[:, -1].any()
        if inked and all((g != other).sum() >= 14 for other in bank):
            bank.append(g)
    return np.stack(bank)


def _scaled(glyph: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a square bool pattern to ``size x size``."""
    index = np.arange(size) * glyph.shape[0] // size
    return glyph[index][:, index]


def _overlaps(top: int, left: int, h: int, w: int, box: tuple[int, int, int, int]) -> bool:
    """Whether ``[top, top+h) x [left, left+w)`` touches ``box`` grown by one pixel."""
    return not (top + h < box[0] or top > box[2] or left + w < box[1] or left > box[3])


def render(rng: np.random.Generator, clutter: Clutter) -> tuple[np.ndarray, int, np.ndarray]:
    """One example: ``(image uint8 [canvas, canvas, 1], label, box int32 [4])``."""
    bank = glyphs(clutter.num_classes)
    n = clutter.canvas
    canvas = np.zeros((n, n), np.float32)
    label = int(rng.integers(clutter.num_classes))
    size = int(rng.integers(clutter.min_size, clutter.max_size + 1))
    top, left = (int(v) for v in rng.integers(0, n - size + 1, size=2))
    box = (top, left, top + size, left + size)
    canvas[top : top + size, left : left + size] = _scaled(bank[label], size) * rng.uniform(
        0.6, 1.0
    )
    placed = 0
    for _ in range(100 * clutter.distractors):  # Bounded: a crowded canvas gets fewer.
        if placed == clutter.distractors:
            break
        glyph = _scaled(bank[rng.integers(clutter.num_classes)], size)
        h, w = (int(v) for v in rng.integers(2, clutter.fragment + 1, size=2))
        r, c = (int(v) for v in rng.integers(0, size - max(h, w) + 1, size=2))
        y, x = int(rng.integers(0, n - h + 1)), int(rng.integers(0, n - w + 1))
        if _overlaps(y, x, h, w, box):
            continue
        piece = glyph[r : r + h, c : c + w] * rng.uniform(0.6, 1.0)
        canvas[y : y + h, x : x + w] = np.maximum(canvas[y : y + h, x : x + w], piece)
        placed += 1
    canvas += clutter.noise * rng.standard_normal((n, n)).astype(np.float32)
    image = np.clip(np.round(canvas * 255), 0, 255).astype(np.uint8)[..., None]
    return image, label, np.asarray(box, np.int32)


class ClutteredSource:
    """A grain-readable split: ``source[i] -> {'image', 'label', 'box'}``, drawn on demand."""

    def __init__(self, clutter: Clutter, size: int, seed: int, split: str):
        if split not in SPLITS:
            raise ValueError(f"cluttered: unknown split {split!r}; choose one of {SPLITS}")
        self.clutter, self._size, self._key = clutter, size, (seed, SPLITS.index(split))

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < self._size:
            raise IndexError(f"index {index} out of range for {self._size} examples")
        image, label, box = render(np.random.default_rng((*self._key, index)), self.clutter)
        return {"image": image, "label": np.int32(label), "box": box}
