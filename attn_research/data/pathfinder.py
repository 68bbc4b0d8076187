"""Pathfinder (Linsley et al. 2018), as used by the Long Range Arena (Tay et al. 2020).

A ``size x size`` grey image holds two dashed curves of ``contour_length`` dashes and
``distractors`` short ones. Two markers (3 x 3 squares) sit at both ends of the first curve
(label 1) or at one end of each long curve (label 0). A curve walks unit steps, turning at most
``max_turn`` per dash, drawing ``dash`` of every ``dash + gap`` steps; other curves keep
``gap + 2`` pixels away, so connection can be read off the pixels. The rendering is this
project's own. Image ``i`` draws from ``numpy.random.default_rng((seed, split, i))``; labels
alternate (``i % 2``).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

CURVE, MARKER = 128, 255
SPLITS = ("train", "test")
_TRIES = 50  # placements of one curve before the image is started again
_IMAGES = 200  # images started again before the spec is declared too crowded
_TURNS = 8  # turns one dash tries before its curve is given up


@dataclasses.dataclass(frozen=True)
class Spec:
    """How images are drawn; ``contour_length`` 14 is the level LRA's Pathfinder uses."""

    size: int = 32
    contour_length: int = 14
    distractors: int = 4
    distractor_length: int = 3
    dash: int = 1
    gap: int = 1
    max_turn: float = np.pi / 3

    def check(self, field: str) -> None:
        """Raises ValueError naming ``field.<attribute>`` for a spec that cannot be drawn."""
        for name in ("size", "contour_length", "distractor_length", "dash"):
            if getattr(self, name) < 1:
                raise ValueError(f"{field}.{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("distractors", "gap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{field}.{name}: must be >= 0, got {getattr(self, name)}")


def _curve(
    rng: np.random.Generator, spec: Spec, dashes: int, taken: np.ndarray
) -> np.ndarray | None:
    """The drawn pixels ``int [n, 2]`` (row, col) of one curve clear of ``taken``, None if it
    cannot go on: each dash tries a few turns and takes the first that stays in the image and
    off ``taken``."""
    point = rng.uniform(spec.size / 4, 3 * spec.size / 4, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    pixels = []
    for _ in range(dashes):
        for _ in range(_TURNS):
            turned = angle + rng.uniform(-spec.max_turn, spec.max_turn)
            step = np.array([np.sin(turned), np.cos(turned)])
            dash = np.floor(point + 0.5 + np.arange(spec.dash)[:, None] * step).astype(int)
            inside = (dash >= 0).all() and (dash < spec.size).all()
            if inside and not taken[dash[:, 0], dash[:, 1]].any():
                break
        else:
            return None
        pixels.append(dash)
        angle, point = turned, point + (spec.dash + spec.gap) * step
    return np.unique(np.concatenate(pixels), axis=0)


def _square(centre: np.ndarray, size: int) -> np.ndarray:
    """The pixels of the 3 x 3 marker at ``centre``, clipped to the image."""
    offsets = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], indexing="ij"), -1).reshape(-1, 2)
    return np.clip(centre + offsets, 0, size - 1)


def _place(
    rng: np.random.Generator, spec: Spec, dashes: int, taken: np.ndarray, marked: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A curve clear of ``taken`` (bool ``[size, size]``, updated), with its two ends' markers:
    ``(curve pixels, marker at the first end, marker at the last end)``; None if none fits."""
    for _ in range(_TRIES):
        pixels = _curve(rng, spec, dashes, taken)
        if pixels is None:
            continue
        ends = (_square(pixels[0], spec.size), _square(pixels[-1], spec.size))
        footprint = np.concatenate([pixels, *ends]) if marked else pixels
        if taken[footprint[:, 0], footprint[:, 1]].any():
            continue
        reach = spec.gap + 1  # the clearance: no other curve within reach of this one
        for dr in range(-reach, reach + 1):
            for dc in range(-reach, reach + 1):
                r = np.clip(footprint[:, 0] + dr, 0, spec.size - 1)
                c = np.clip(footprint[:, 1] + dc, 0, spec.size - 1)
                taken[r, c] = True
        return pixels, *ends
    return None


def example(spec: Spec, seed: int, split: str, index: int) -> tuple[np.ndarray, int]:
    """Image ``uint8 [size, size]`` and label (1: the markers are connected) of one example."""
    rng = np.random.default_rng((seed, SPLITS.index(split), index))
    label = index % 2
    for _ in range(_IMAGES):
        image = np.zeros((spec.size, spec.size), np.uint8)
        taken = np.zeros_like(image, bool)
        long = [_place(rng, spec, spec.contour_length, taken, marked=True) for _ in range(2)]
        if None in long:
            continue
        short = [
            _place(rng, spec, spec.distractor_length, taken, marked=False)
            for _ in range(spec.distractors)
        ]
        if None in short:
            continue
        for pixels, *_ in long + short:
            image[pixels[:, 0], pixels[:, 1]] = CURVE
        markers = (long[0][1], long[0][2]) if label else (long[0][1], long[1][2])
        for square in markers:
            image[square[:, 0], square[:, 1]] = MARKER
        return image, label
    raise ValueError(f"pathfinder: no image of {spec} fits in {_IMAGES} tries; draw less")


@functools.lru_cache(maxsize=8)
def split(spec: Spec, seed: int, name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [size, H, W], labels int32 [size])`` of the split ``name``."""
    examples = [example(spec, seed, name, i) for i in range(size)]
    images = np.stack([image for image, _ in examples])
    return images, np.array([label for _, label in examples], np.int32)
