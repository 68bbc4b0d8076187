"""The loss and accuracy that the classification tasks (images, sequences) share."""

import jax
import jax.numpy as jnp


def weighted_mean_loss(
    logits_BC: jax.Array, losses_B: jax.Array, labels_B: jax.Array, weight_B: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The mean of ``losses_B`` and the top-1 accuracy, each example weighted by ``weight_B``
    (0 for the padding rows of a last batch); ``denominator`` makes eval means true means."""
    correct_B = (jnp.argmax(logits_BC, -1) == labels_B).astype(jnp.float32)
    size = jnp.maximum(weight_B.sum(), 1.0)
    metrics = {"accuracy": (correct_B * weight_B).sum() / size, "denominator": weight_B.sum()}
    return (losses_B * weight_B).sum() / size, metrics
