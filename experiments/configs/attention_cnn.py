"""Attention CNN: a small conv net whose classifier reads a soft-attention pool of its feature map.

    python -m attn_research.main --config experiments/configs/attention_cnn.py \
        --workdir /tmp/cnn_cluttered
    python -m attn_research.main --config experiments/configs/attention_cnn.py:data=npz,path=../shared/data/mnist/mnist.npz \
        --workdir /tmp/cnn_mnist
    python -m attn_research.main --config experiments/configs/attention_cnn.py:data=cifar10 \
        --workdir /tmp/cnn_cifar --config.data.data_dir=~/tensorflow_datasets

Args (``attention_cnn.py:key=value,...``):
  attention: additive (default; Show, Attend and Tell's MLP score) | dot_product.
  data: cluttered (default) | npz | folder | a TFDS name; path: the .npz file or folder root.
  heads: attention heads of the pooling.
  small: a minutes-long run that still learns (the studies' small variant; see vit.py).
  tiny: seconds-long run for tests.

Stages: two, (16, 32), so the attention map is 16 x 16 cells of 2 pixels, each cell seeing 14 x 14
pixels (its receptive field) of the 32-pixel canvas. The earlier three stages (16, 32, 64) gave an
8 x 8 map whose cells see 32 x 32 pixels, the whole canvas: every cell could report the object,
and the map spread beyond it.

Measured on the quiet 2-core machine, cluttered data (additive, 3 epochs of 20k = 468 steps),
seeds 0 / 1 / 2 (--config.seed): 99.95% / 99.90% / 99.95% test accuracy, 0.81 / 0.92 / 0.96 of
the attention mass inside the object box (0.76 / 0.89 / 0.91 after one epoch; a map spread
evenly over the cells the box touches scores 0.80); 1 min 40 s per run (about 155 CPU-s).
Three stages (16, 32, 64): 99.95% / 100.0% / 99.95% but 0.62 / 0.44 / 0.45 of the mass in the
box (the box-cells reference of their 4-pixel cells: 0.56).
"""

import ml_collections

from attn_research.data.image_config import data_config
from attn_research.tasks import image
from attn_research.train import default_config, parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Attention-CNN config; see the module docstring for the args."""
    arg = parse_arg(
        arg, attention="additive", data="cluttered", path="", heads=1, small=False, tiny=False
    )
    config = default_config()
    config.task = image.NAME
    config.data = data_config(arg.data, arg.path, tiny=arg.tiny)
    config.model = ml_collections.ConfigDict(
        {
            "name": "attention_cnn",
            "stages": (8, 16) if arg.tiny else (16, 32),
            "num_heads": arg.heads,
            "attention": arg.attention,
            "dropout_rate": 0.0,
        }
    )
    config.evaluation = ml_collections.ConfigDict({"num_examples": 512, "num_figures": 6})

    config.batch_size = 128
    config.optimizer.learning_rate = 1e-3
    config.optimizer.weight_decay = 1e-4
    config.optimizer.grad_clip_norm = 1.0
    config.total_epochs = 3.0
    config.optimizer.warmup_epochs = 0.2
    config.eval_every_epochs = 1.0
    config.checkpoint_every_epochs = 1.0
    config.log_every_steps = 100
    if arg.small:
        image.small(config)
    return image.tiny(config) if arg.tiny else config
