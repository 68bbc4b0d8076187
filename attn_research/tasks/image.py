"""Image classification: ViT or attention CNN on any image source, with attention-map evaluation.

Config (``experiments/configs/vit.py``): ``model`` (``name`` of ``MODELS`` and the model's
fields but ``num_classes`` and ``dtype``), ``data`` (``data.image_sources``, ``data.images``),
``evaluation`` (``num_examples`` whose maps are scored against their boxes, ``num_figures``
drawn into ``<workdir>/figures/attention_<step>.png``).

Metrics: ``loss``, ``accuracy`` and, on sources with boxes, each map's ``mass_in_box/<map>``
and ``pointing_game/<map>`` (``evaluation.attention_maps.localization``; docs/images.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from attn_research import tasks
from attn_research.data import image_sources, images
from attn_research.evaluation import attention_maps, explorer, image_figures
from attn_research.models import fields
from attn_research.models.attention_cnn import AttentionCNN
from attn_research.models.vit import ViT
from attn_research.tasks import classification

NAME = "image"
# What a trained run needs to classify new images without its data set: written into the
# workdir when training starts (``ImageTask.use_workdir``).
LABELS_NAME = "labels.json"
MODELS: Mapping[str, type[nn.Module]] = {"vit": ViT, "attention_cnn": AttentionCNN}


def _check_model_on(model: nn.Module, image_shape: tuple[int, ...]) -> None:
    """Raises ValueError naming the ``config.model`` field that does not fit these images."""
    if not isinstance(model, ViT):
        return
    height, width = image_shape[:2]
    if height % model.patch or width % model.patch:
        raise ValueError(
            f"config.model.patch: {model.patch} does not divide the images' {height}x{width} "
            "pixels."
        )
    grid = (height // model.patch, width // model.patch)
    tokens = grid[0] * grid[1] + len(model.prefix_roles())
    try:
        model.spec.positions.check(tokens, tokens, grid)
    except ValueError as error:
        field = "num_registers" if model.num_registers else "pool"
        raise ValueError(f"config.model.{field}: {error}") from None


class ImageTask(tasks.Task):
    """Image classification with ``config.model`` on ``config.data``."""

    config_keys = ("model", "data", "evaluation")

    def _split(self, config: ml_collections.ConfigDict, train: bool):
        data = config.data
        return image_sources.open_split(data, data.train_split if train else data.eval_split)

    def _image_shape(self, config: ml_collections.ConfigDict) -> tuple[int, int, int]:
        return tuple(self._split(config, train=True)[0]["image"].shape)

    def use_workdir(self, config: ml_collections.ConfigDict, workdir: str) -> None:
        """Writes ``<workdir>/labels.json``: the class names (``image_sources.class_names``)
        and the image shape ``[H, W, C]`` the model takes."""
        if jax.process_index() == 0:
            labels = {
                "classes": image_sources.class_names(config.data),
                "image_shape": list(self._image_shape(config)),
            }
            with open(os.path.join(workdir, LABELS_NAME), "w", encoding="utf-8") as f:
                json.dump(labels, f, indent=1)

    def validate(self, config: ml_collections.ConfigDict) -> None:
        data = config.data
        for path, value in (
            ("data.crop_padding", data.crop_padding),
            ("data.mixup_alpha", data.mixup_alpha),
            ("data.image_size", data.image_size),
            ("evaluation.num_examples", config.evaluation.num_examples),
            ("evaluation.num_figures", config.evaluation.num_figures),
        ):
            if value < 0:
                raise ValueError(f"config.{path}: must be >= 0, got {value}.")
        shapes = [tuple(self._split(config, train)[0]["image"].shape) for train in (True, False)]
        if shapes[0] != shapes[1]:
            raise ValueError(
                f"config.data: images of inconsistent shape: {shapes[0]} in "
                f"{data.train_split!r}, {shapes[1]} in {data.eval_split!r}."
            )
        for name in ("mean", "std"):
            if len(data[name]) not in (1, shapes[0][-1]):
                raise ValueError(
                    f"config.data.{name}: needs 1 or {shapes[0][-1]} values, got {data[name]}."
                )
        _check_model_on(self.make_model(config), shapes[0])  # the model checks its fields

    def make_model(self, config: ml_collections.ConfigDict) -> nn.Module:
        name = config.model.get("name")
        if name not in MODELS:
            raise ValueError(
                f"config.model.name: unknown model {name!r}; choose one of {sorted(MODELS)}."
            )
        return fields.build(
            MODELS[name],
            config.model.to_dict(),
            num_classes=image_sources.num_classes(config.data),
            dtype=jnp.dtype(config.dtype),
        )

    def init_params(self, model: nn.Module, rng: jax.Array, config: ml_collections.ConfigDict):
        return model.init(rng, jnp.zeros((1, *self._image_shape(config))))["params"]

    def num_train_examples(self, config: ml_collections.ConfigDict) -> int:
        return len(self._split(config, train=True))

    def train_data(
        self,
        config: ml_collections.ConfigDict,
        *,
        batch_size: int,
        process_index: int,
        process_count: int,
    ) -> grain.DatasetIterator:
        return images.train_iterator(
            self._split(config, train=True),
            config.data,
            seed=config.seed,
            batch_size=batch_size,
            process_index=process_index,
            process_count=process_count,
            num_classes=image_sources.num_classes(config.data),
        )

    def eval_data(
        self,
        config: ml_collections.ConfigDict,
        *,
        batch_size: int,
        process_index: int,
        process_count: int,
    ) -> Iterable[images.Batch]:
        return images.eval_batches(
            self._split(config, train=False),
            config.data,
            batch_size=batch_size,
            process_index=process_index,
            process_count=process_count,
        )

    def loss(self, params, batch, rng, model, train, config):
        logits_BC = model.apply({"params": params}, batch["image"], train, rngs={"dropout": rng})
        if "soft_label" in batch:
            losses_B = optax.softmax_cross_entropy(logits_BC, batch["soft_label"])
        else:
            losses_B = optax.softmax_cross_entropy_with_integer_labels(logits_BC, batch["label"])
        weight_B = batch.get("weight", jnp.ones_like(losses_B))
        return classification.weighted_mean_loss(logits_BC, losses_B, batch["label"], weight_B)

    def evaluators(self, config: ml_collections.ConfigDict):
        if not (config.evaluation.num_examples or config.evaluation.num_figures):
            return ()
        return (AttentionEvaluator(config, self._split(config, train=False)),)


class AttentionEvaluator:
    """Attention maps of fixed eval examples: mass inside their boxes, and a figure."""

    def __init__(self, config: ml_collections.ConfigDict, split):
        count = min(len(split), max(config.evaluation.num_examples, config.evaluation.num_figures))
        records = [split[i] for i in range(count)]
        self._raw = np.stack([r["image"] for r in records])
        self._images = images.normalize(self._raw, config.data.mean, config.data.std)
        self._labels = np.array([r["label"] for r in records])
        self._boxes = np.stack([r["box"] for r in records]) if "box" in records[0] else None
        self._num_scored = min(count, config.evaluation.num_examples)
        self._num_figures = min(count, config.evaluation.num_figures)
        self._compute = jax.jit(self._maps, static_argnums=0)
        self._names = None  # the maps' names, traced once (the model does not change)

    @staticmethod
    def _maps(model: nn.Module, params: Any, images_BHWC: jax.Array):
        """``(maps [B, M, h, w], head maps [B, L, H, h, w], predictions [B])``
        (``attention_maps.maps_and_heads``)."""
        maps_BMhw, heads_BLHhw = attention_maps.maps_and_heads(model, params, images_BHWC)
        predictions_B = jnp.argmax(model.apply({"params": params}, images_BHWC), axis=-1)
        return maps_BMhw, heads_BLHhw, predictions_B

    def __call__(self, params: Any, model: nn.Module, step: int, workdir: str) -> dict[str, float]:
        maps_BMhw, heads_BLHhw, predictions_B = jax.device_get(
            self._compute(model, params, self._images)
        )
        metrics = {}
        if self._names is None:
            self._names = attention_maps.map_names(model, params, self._images)
        names = self._names
        if self._boxes is not None and self._num_scored:
            n = self._num_scored
            metrics = attention_maps.localization(
                {name: maps_BMhw[:n, m] for m, name in enumerate(names)},
                {name: heads_BLHhw[:n, m] for m, name in enumerate(names[: heads_BLHhw.shape[1]])},
                self._boxes[:n],
                *self._raw.shape[1:3],
            )
        if self._num_figures and jax.process_index() == 0:
            n = self._num_figures
            title = f"{type(model).__name__} {getattr(model, 'attention', '')}, step {step}"
            image_figures.save_attention_figure(
                os.path.join(workdir, "figures", f"attention_{step:06d}.png"),
                self._raw[:n],
                maps_BMhw[:n],
                names,
                labels=self._labels[:n],
                predictions=predictions_B[:n],
                boxes_B4=None if self._boxes is None else self._boxes[:n],
                title=title,
            )
            items = [
                (f"y={label} pred={prediction}", raw, attention_maps.views(names, maps, heads))
                for label, prediction, raw, maps, heads in zip(
                    self._labels[:n], predictions_B[:n], self._raw[:n], maps_BMhw[:n], heads_BLHhw
                )
            ]
            page = explorer.image_page(items, title)
            explorer.write(os.path.join(workdir, "figures", "explorer.html"), page)
        return metrics


tasks.register_task(NAME, ImageTask)
