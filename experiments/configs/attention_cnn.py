r"""Attention CNN: a small conv net whose classifier reads a soft-attention pool of its feature map.

    python -m attn_research.main --config experiments/configs/attention_cnn.py \
        --workdir /tmp/cnn_cluttered
    python -m attn_research.main --config experiments/configs/attention_cnn.py:data=npz,path=../shared/data/mnist/mnist.npz \
        --workdir /tmp/cnn_mnist
    python -m attn_research.main --config experiments/configs/attention_cnn.py:data=cluttered_mnist,path=../shared/data/mnist/mnist.npz \
        --workdir /tmp/cnn_cluttered_mnist
    python -m attn_research.main --config experiments/configs/attention_cnn.py:data=cifar10 \
        --workdir /tmp/cnn_cifar --config.data.data_dir=~/tensorflow_datasets

Args (``attention_cnn.py:key=value,...``):
  attention: additive (default; Show, Attend and Tell's MLP score) | dot_product.
  data: cluttered (default) | cluttered_mnist | npz | folder | a TFDS name (see vit.py); path:
    the .npz file or folder root.
  heads: attention heads of the pooling.
  small: a minutes-long run that still learns (the studies' small variant; see vit.py).
  tiny: seconds-long run for tests.

Stages: two, (16, 32): the attention map is 16 x 16 cells of 2 pixels, each seeing 14 x 14
pixels of the 32-pixel canvas. Epochs: 3, and CLUTTERED_MNIST_EPOCHS on cluttered_mnist, whose
fresh clutter keeps giving the model new canvases (docs/images.md).

What these runs reach on the 2-core CPU is measured in docs/images.md.
"""

import ml_collections

from attn_research.data.image_config import data_config
from attn_research.tasks import image
from attn_research.train import default_config, parse_arg

CLUTTERED_MNIST_EPOCHS = 6.0


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
            "attention_options": {},
            "dropout_rate": 0.0,
        }
    )
    config.evaluation = ml_collections.ConfigDict()
    config.evaluation.num_examples = 16 if arg.tiny else 512
    config.evaluation.num_figures = 2 if arg.tiny else 6
    config.batch_size = 32 if arg.tiny else 128
    config.optimizer.learning_rate = 1e-3
    config.optimizer.weight_decay = 1e-4
    config.optimizer.grad_clip_norm = 1.0
    if arg.small and arg.data == "cluttered":
        config.data.cluttered.num_train, config.data.cluttered.num_eval = 8_000, 1_000
    config.log_every_steps = 100
    if arg.tiny:  # seconds: the tests' run
        config.total_steps = 8
    elif arg.small:  # minutes, and still learns: the studies' run
        config.total_epochs = 5.0 if arg.data == "cluttered" else 1.0
        config.optimizer.warmup_epochs = 0.2 * config.total_epochs
        config.eval_every_epochs = config.checkpoint_every_epochs = config.total_epochs
    else:
        config.total_epochs = CLUTTERED_MNIST_EPOCHS if arg.data == "cluttered_mnist" else 3.0
        config.optimizer.warmup_epochs = 0.2
        config.eval_every_epochs = config.checkpoint_every_epochs = 1.0
    return config
