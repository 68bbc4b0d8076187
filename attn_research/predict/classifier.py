"""Classifying new images with a trained image model, with its attention maps.

The run's ``labels.json`` gives the class names and the image shape ``[H, W, C]``. An image
is brought to it as training brings its source's images: ``data.image_modes.to_pixels``,
resized and centre-cropped when the run has ``data.image_size``, normalized with the run's
mean and std; another size for a run that never resized is refused, naming both shapes.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from PIL import Image

from attn_research import tasks
from attn_research.data import image_modes, image_sources, images
from attn_research.predict import attention, run_files
from attn_research.tasks import image as image_task


@dataclasses.dataclass(frozen=True)
class Classification:
    """One classified image.

    Attributes:
      name: where the image came from (a file, ``file.npz[i]``, or its index).
      image: uint8 ``[H, W, C]`` as the model saw it (before normalization).
      top: the ``k`` most probable ``(class name, probability)``, most probable first.
      probabilities: float32 ``[num_classes]``.
      maps: float32 ``[M, h, w]`` attention maps over the model's grid, named by `map_names`.
      head_maps: float32 ``[L, H, h, w]``, each head of the first L maps.
    """

    name: str
    image: np.ndarray
    top: tuple[tuple[str, float], ...]
    probabilities: np.ndarray
    maps: np.ndarray
    map_names: tuple[str, ...]
    head_maps: np.ndarray


def read_images(path: str) -> list[tuple[str, np.ndarray]]:
    """``(name, uint8 [H, W] or [H, W, C])`` of an image file, or of every image of an .npz (its
    one array, or ``image``, ``images`` or ``x``).

    Raises:
      ValueError: naming the file if it cannot be read as images.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    if path.lower().endswith(".npz"):
        try:
            with np.load(path) as npz:
                keys = [k for k in ("image", "images", "x") if k in npz.files] or npz.files
                if len(keys) != 1:
                    raise ValueError(
                        f"{path}: holds arrays {npz.files}; name the images 'image', 'images' "
                        f"or 'x'"
                    )
                array = npz[keys[0]]
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path}: cannot read it as an .npz archive ({error})") from None
        if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3)):
            return [(path, array)]
        if array.ndim in (3, 4):
            return [(f"{path}[{i}]", a) for i, a in enumerate(array)]
        raise ValueError(f"{path}: array {keys[0]!r} of shape {array.shape} is not images")
    return [(path, image_modes.read_file(path, 3))]


def _parse_labels(path: str) -> dict[str, Any]:
    """``labels.json``: ``classes`` (names, at least 2), ``image_shape`` ``[H, W, 1 or 3]``."""
    labels = run_files.read_json_object(path, ("classes", "image_shape"))
    classes, shape = labels["classes"], labels["image_shape"]
    if not isinstance(classes, list) or len(classes) < 2:
        raise ValueError(f"'classes' must list two or more names, got {classes!r}")
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(isinstance(n, int) and n > 0 for n in shape)
        or shape[-1] not in (1, 3)
    ):
        raise ValueError(f"'image_shape' must be [H, W, 1 or 3], got {shape!r}")
    return labels


class ImagePredictor:
    """A trained image model: ``classify(images) -> [Classification]`` (see the module doc)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        params: Any,
        classes: Sequence[str],
        image_shape: tuple[int, int, int],
        step: int,
    ):
        """`params` on device, fitting ``task.make_model(config)`` with ``len(classes)`` classes;
        `step` is the checkpoint's."""
        self.config, self.params, self.step = config, params, step
        self.classes, self.image_shape = tuple(classes), tuple(image_shape)
        self.model = tasks.get_task(config.task).make_model(config)
        self._forward = jax.jit(self._outputs)
        self.map_names = attention.map_names(
            self.model, params, np.zeros((1, *self.image_shape), np.float32)
        )

    @classmethod
    def from_run(
        cls, workdir: str, config: ml_collections.ConfigDict, params: Any, step: int
    ) -> ImagePredictor:
        """The predictor of an image run's workdir (class names from its ``labels.json``)."""
        labels = run_files.read_run_file(
            os.path.join(workdir, image_task.LABELS_NAME),
            _parse_labels,
            "it holds the class names and image shape, which the image task writes when "
            "training starts (runs trained before it did lack it)",
            'Write it as {"classes": [names in label order], "image_shape": [H, W, C]}',
        )
        config.data.num_classes = len(labels["classes"])
        model = tasks.get_task(config.task).make_model(config)
        shape = tuple(labels["image_shape"])
        abstract = jax.eval_shape(
            lambda: model.init(jax.random.key(0), np.zeros((1, *shape), np.float32))["params"]
        )
        params = run_files.place_params(params, abstract, f"The checkpoint of step {step}")
        return cls(config, params, labels["classes"], shape, step)

    def _outputs(self, params: Any, images_BHWC: jax.Array) -> tuple[jax.Array, ...]:
        """``(probabilities [B, classes], maps [B, M, h, w], head maps [B, L, H, h, w])``."""
        logits_BC = self.model.apply({"params": params}, images_BHWC)
        return jax.nn.softmax(logits_BC), *attention.image_maps(self.model, params, images_BHWC)

    def prepare(self, image: np.ndarray, name: str = "image") -> np.ndarray:
        """uint8 ``[H, W, C]`` of the model's shape from an image ``[h, w]`` or ``[h, w, c]``.

        Raises:
          ValueError: naming the shapes, for an image the training pipeline would not have brought
            to the model's shape, or one that is not 8-bit.
        """
        height, width, channels = self.image_shape
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"{name}: {image.dtype} pixels; the model reads uint8 (0..255)")
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[-1] not in (1, 3):
            raise ValueError(f"{name}: shape {image.shape} is not an image [H, W, 1 or 3]")
        if image.shape[-1] != channels:
            pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
            image = image_modes.to_pixels(pil, channels, name)
        if self.config.data.get("image_size"):
            image = image_sources.fit_image(image, self.config.data.image_size)
        if image.shape != self.image_shape:
            raise ValueError(
                f"{name}: an image of {image.shape[0]}x{image.shape[1]} pixels; the model takes "
                f"{height}x{width}x{channels}, and its training resized nothing "
                f"(config.data.image_size is 0), so neither does prediction"
            )
        return image

    def classify(
        self, inputs: Sequence[np.ndarray], names: Sequence[str] | None = None, top: int = 5
    ) -> list[Classification]:
        """The `top` classes and the attention maps of each image of `inputs`, in order."""
        names = list(names) if names is not None else [str(i) for i in range(len(inputs))]
        prepared = [self.prepare(x, n) for x, n in zip(inputs, names)]
        if not prepared:
            return []
        # Batches of the run's size, or of the next power of two above a smaller input count
        # (at most log2(batch size) + 1 compilations).
        batch = self.config.get("eval_batch_size") or self.config.batch_size
        batch = min(batch, 1 << (len(prepared) - 1).bit_length())
        raw = np.stack(prepared)
        normalized = images.normalize(raw, self.config.data.mean, self.config.data.std)
        probabilities, maps, heads = [], [], []
        for start in range(0, len(raw), batch):
            chunk = normalized[start : start + batch]
            padded = np.zeros((batch, *chunk.shape[1:]), np.float32)
            padded[: len(chunk)] = chunk
            p_BC, maps_BMhw, heads_BLHhw = jax.device_get(self._forward(self.params, padded))
            probabilities.append(p_BC[: len(chunk)])
            maps.append(maps_BMhw[: len(chunk)])
            heads.append(heads_BLHhw[: len(chunk)])
        probabilities, maps = np.concatenate(probabilities), np.concatenate(maps)
        heads = np.concatenate(heads)
        k = min(top, len(self.classes))
        out = []
        for i, p in enumerate(probabilities):
            best = np.argsort(-p, kind="stable")[:k]
            ranked = tuple((self.classes[c], float(p[c])) for c in best)
            out.append(
                Classification(names[i], raw[i], ranked, p, maps[i], self.map_names, heads[i])
            )
        return out
