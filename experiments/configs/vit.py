r"""Vision Transformer with any attention kind, on generated, local or TFDS images.

    python -m attn_research.main --config experiments/configs/vit.py:attention=dot_product \
        --workdir /tmp/vit_cluttered
    python -m attn_research.main --config experiments/configs/vit.py:data=npz,path=../shared/data/mnist/mnist.npz \
        --workdir /tmp/vit_mnist
    python -m attn_research.main --config experiments/configs/vit.py:data=cluttered_mnist,path=../shared/data/mnist/mnist.npz \
        --workdir /tmp/vit_cluttered_mnist
    python -m attn_research.main --config experiments/configs/vit.py:data=npz,attention=local_2d \
        --workdir /tmp/vit_mnist_local --config.data.path=/path/to/other.npz
    python -m attn_research.main --config experiments/configs/vit.py:data=cifar10,size=s \
        --workdir /tmp/vit_cifar --config.data.data_dir=~/tensorflow_datasets

Args (``vit.py:key=value,...``):
  attention: dot_product | local_2d | additive (any registered kind).
  data: cluttered (default, generated, with object boxes) | cluttered_mnist (the digits of an
    .npz in clutter, with boxes; the 100 x 100 variant: --config.data.cluttered_mnist.canvas=100
    --config.data.cluttered_mnist.distractors=8) | npz | folder | a TFDS name.
  path: the .npz file or folder root (required for cluttered_mnist, npz and folder).
  size: nano (default on cluttered) | mu (default on MNIST-like data) | ti | s | b
    (ViT-Ti/S/B, 12 layers).
  heads: attention heads (default: the size's; 1 on cluttered, see below).
  patch: patch side; default 7 for MNIST-like data (npz, mnist, fashion_mnist), 10 for
    cluttered_mnist (it divides both canvases, 60 and 100), else 4.
  window: the attention's window (local_2d: the neighbourhood's odd side); unset: the
    preset's own.
  pool: token | gap | map; default token, gap for local_2d (a class token is off the grid).
  registers: register tokens (Darcet et al. 2023; default 0), not with local_2d.
  stem: grey (GREY_STEM: two 3 x 3 convolutions before the patches; the default on the grey
    data: cluttered, cluttered_mnist and MNIST-like) | none (patches straight from the pixels;
    the default elsewhere).
  MNIST-like data (28 x 28 grey images) get the recipe of docs/images.md: ViT mu with 7 x 7
    patches after GREY_STEM, AdamW's weight decay GREY28_WEIGHT_DECAY, crops padded by 2.
  cluttered_mnist and the generated cluttered glyphs get the same stem.
  colour32: the recipe for 32 x 32 colour images from a folder (CIFAR-10 laid out as
    ``train/<class>/*.jpg``) or TFDS: RGB resized to 32, crops of the image padded by 4, flips
    (``image_config.colour32``), ViT mu with 4 x 4 patches (64 tokens), for COLOUR32_EPOCHS
    epochs.
  small: a minutes-long run that still learns (the studies' small variant): cluttered with
    8k training images, or 1 epoch of other data.
  tiny: seconds-long run for tests.

What these runs reach on the 2-core CPU is measured in docs/images.md.
"""

import ml_collections

from attn_research.data.image_config import colour32, data_config
from attn_research.tasks import image
from attn_research.train import default_config, parse_arg

_MNIST_LIKE = ("npz", "mnist", "fashion_mnist")  # 28 x 28 images: 4 x 4 patches of 7 x 7.
_PATCH = {"cluttered_mnist": 10}  # See the patch arg above.
_GREY = (*_MNIST_LIKE, "cluttered", "cluttered_mnist")  # the data that gets GREY_STEM by default
COLOUR32_EPOCHS = 10.0
GREY_STEM = (16, 16)  # 3 x 3 conv channels before the patches of grey images (models.vit.ViT.stem)
GREY28_WEIGHT_DECAY = 0.05  # Touvron et al. 2021 (DeiT)
# embed_dim, num_layers, heads, mlp_dim (Dosovitskiy et al. 2021; Touvron et al. 2021 for Ti and S).
SIZES = {
    "nano": (64, 4, 4, 128),
    "mu": (128, 4, 4, 256),
    "ti": (192, 12, 3, 768),
    "s": (384, 12, 6, 1536),
    "b": (768, 12, 12, 3072),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """ViT config; see the module docstring for the args."""
    arg = parse_arg(
        arg,
        attention="dot_product",
        data="cluttered",
        path="",
        size="",
        heads=0,
        patch=0,
        window=0,
        pool="",
        registers=0,
        stem="",
        colour32=False,
        small=False,
        tiny=False,
    )
    mnist_like = arg.data in _MNIST_LIKE
    if arg.colour32 and (mnist_like or arg.data.startswith("cluttered")):
        raise ValueError(
            f"Config arg 'colour32': for folder or TFDS colour images, not data={arg.data!r}."
        )
    size = arg.size or (
        "mu" if mnist_like or arg.colour32 or arg.data == "cluttered_mnist" else "nano"
    )
    if size not in SIZES:
        raise ValueError(f"Config arg 'size': choose one of {sorted(SIZES)}, got {arg.size!r}.")
    stem = arg.stem or ("grey" if arg.data in _GREY else "none")
    if stem not in ("grey", "none"):
        raise ValueError(f"Config arg 'stem': choose grey or none, got {arg.stem!r}.")
    config = default_config()
    config.task = image.NAME
    config.data = data_config(arg.data, arg.path, tiny=arg.tiny)
    if arg.colour32:
        colour32(config.data)
    embed_dim, num_layers, heads, mlp_dim = (16, 1, 2, 32) if arg.tiny else SIZES[size]
    # One head on the cluttered data: the maps average heads (docs/images.md).
    heads = arg.heads or (1 if arg.data == "cluttered" and not arg.tiny else heads)
    config.model = ml_collections.ConfigDict(
        {
            "name": "vit",
            "patch": arg.patch or _PATCH.get(arg.data, 7 if mnist_like else 4),
            "stem": GREY_STEM if stem == "grey" else (),
            "embed_dim": embed_dim,
            "num_layers": num_layers,
            "num_heads": heads,
            "mlp_dim": mlp_dim,
            "dropout_rate": 0.0,
            "attention": arg.attention,
            "attention_options": {"window": arg.window} if arg.window else {},
            "pool": arg.pool or ("gap" if arg.attention == "local_2d" else "token"),
            "num_registers": arg.registers,
            "position_embedding": "learned",
            "remat": "dots",  # the backward pass keeps only Dense outputs (docs/training.md)
            "scan_unroll": 1,  # layers per scanned-loop iteration
        }
    )
    config.evaluation = ml_collections.ConfigDict()
    config.evaluation.num_examples = 16 if arg.tiny else 512
    config.evaluation.num_figures = 2 if arg.tiny else 6
    config.batch_size = 32 if arg.tiny else 128
    config.optimizer.learning_rate = 1e-3
    config.optimizer.weight_decay = GREY28_WEIGHT_DECAY if mnist_like else 1e-4
    config.optimizer.grad_clip_norm = 1.0
    if mnist_like:
        config.data.crop_padding = 2
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
        config.total_epochs = 8.0 if mnist_like else (COLOUR32_EPOCHS if arg.colour32 else 15.0)
        config.optimizer.warmup_epochs = 0.5
        config.eval_every_epochs = config.checkpoint_every_epochs = 2.0
    return config
