r"""The Long Range Arena's classification tasks (Tay et al. 2020) with any attention kind.

    python -m attn_research.main --config experiments/configs/lra.py:task=listops,small \
        --workdir /tmp/lra_listops_small
    python -m attn_research.main --config experiments/configs/lra.py:task=listops,attention=local,window=32,small \
        --workdir /tmp/lra_listops_local
    python -m attn_research.main --config experiments/configs/lra.py:task=image,path=/data/cifar10.npz \
        --workdir /tmp/lra_image
    python -m attn_research.main --config experiments/configs/lra.py:task=pathfinder \
        --workdir /tmp/lra_pathfinder

Args (``lra.py:key=value,...``):
  task: listops (default) | image | pathfinder.
  attention: dot_product | local | additive | local_2d (image and pathfinder) | any kind.
  window: the attention's window (local: each side; local_2d: the neighbourhood's side);
    unset: the preset's own.
  path: image: the ``.npz`` file or folder root of 32 x 32 images.
  image_data: image: npz (default) | folder | a TFDS name (cifar10, as in LRA).
  small: a minutes-long run on 2 CPU cores: ListOps of 50-200 tokens, 4k examples, a
    2-layer width-64 model; 4k Pathfinder or 1 epoch of images with the same model.
  tiny: seconds-long run for tests.

Without ``small`` or ``tiny`` these are LRA's base configs: its data sizes (ListOps 96k / 2k
examples of 500-2000 tokens; Pathfinder 160k / 20k) and models (ListOps: 6 layers, width 512,
8 heads, MLP 2048; Image: 1 layer, width 32, 1 head, MLP 64, class token; Pathfinder: 1 layer,
width 32, 2 heads, MLP 32, mean pool, fixed positions), LRA's batch sizes and learning rates with
this trainer's AdamW and cosine schedule (LRA's own ListOps schedule is rsqrt, its query-key
width half the model's on Pathfinder). What the small runs reach on the 2-core CPU is in the
docs/long_sequences.md; the base configs were not run.
"""

import ml_collections

from attn_research.data.image_config import data_config
from attn_research.tasks import sequence_classification
from attn_research.train import default_config, parse_arg

TASKS = ("listops", "image", "pathfinder")
# embed_dim, num_layers, num_heads, mlp_dim, pool, position_embedding, dropout (LRA's configs).
BASE_MODELS = {
    "listops": (512, 6, 8, 2048, "mean", "sincos", 0.1),
    "image": (32, 1, 1, 64, "token", "learned", 0.3),
    "pathfinder": (32, 1, 2, 32, "mean", "sincos", 0.1),
}
# batch_size, learning_rate, epochs (ListOps: LRA's 5000 steps of 32).
BASE_TRAINING = {
    "listops": (32, 5e-4, 5000 * 32 / 96_000),
    "image": (256, 5e-4, 200.0),
    "pathfinder": (512, 1e-3, 200.0),
}


def _data(arg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    sizes = {"listops": (96_000, 2_000), "pathfinder": (160_000, 20_000), "image": (0, 0)}
    num_train, num_eval = sizes[arg.task]
    listops = {"max_depth": 10, "max_args": 10, "min_len": 500, "max_len": 2000}
    if arg.small or arg.tiny:
        num_train, num_eval = (64, 32) if arg.tiny else (4_000, 500)
        listops.update(min_len=8, max_len=32) if arg.tiny else listops.update(
            min_len=50, max_len=200
        )
    pathfinder = {"size": 32, "contour_length": 9 if arg.tiny else 14}
    image = data_config(arg.image_data, arg.path, tiny=arg.tiny)
    return ml_collections.ConfigDict(
        {
            "source": arg.task,
            "seed": 0,  # The generators' seed (train and test are disjoint draws of it).
            "num_train": num_train,
            "num_eval": num_eval,
            "cache_dir": "",  # Where ListOps' generated splits are kept; "" = none.
            "listops": listops,
            "pathfinder": pathfinder,
            "image": image,
        }
    )


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """LRA config; see the module docstring for the args."""
    arg = parse_arg(
        arg,
        task="listops",
        attention="dot_product",
        window=0,
        path="",
        image_data="npz",
        small=False,
        tiny=False,
    )
    if arg.task not in TASKS:
        raise ValueError(f"Config arg 'task': choose one of {TASKS}, got {arg.task!r}.")
    config = default_config()
    config.task = sequence_classification.NAME
    config.data = _data(arg)
    embed_dim, num_layers, heads, mlp_dim, pool, positions, dropout = BASE_MODELS[arg.task]
    batch_size, learning_rate, epochs = BASE_TRAINING[arg.task]
    if arg.small or arg.tiny:
        embed_dim, num_layers, heads, mlp_dim = (16, 1, 2, 32) if arg.tiny else (64, 2, 4, 128)
        dropout, pool = 0.0, "mean"
        batch_size, learning_rate, epochs = (16, 1e-3, 1.0) if arg.tiny else (32, 1e-3, 4.0)
    if arg.attention != "dot_product":
        pool = "mean"  # a class token is off local_2d's grid, and sees one window of local
    options = {"window": arg.window} if arg.window else {}
    config.model = ml_collections.ConfigDict(
        {
            "name": "transformer",
            "embed_dim": embed_dim,
            "num_layers": num_layers,
            "num_heads": heads,
            "mlp_dim": mlp_dim,
            "dropout_rate": dropout,
            "attention": arg.attention,
            "attention_options": options,
            "pool": pool,
            "position_embedding": positions,
            "remat": "none",
            "scan_unroll": 1,
        }
    )
    config.batch_size = batch_size
    config.optimizer.learning_rate = learning_rate
    config.optimizer.weight_decay = 1e-2 if arg.task == "listops" else 0.0
    config.optimizer.grad_clip_norm = 1.0
    config.total_epochs = epochs
    config.optimizer.warmup_epochs = min(1.0, 0.1 * epochs)
    config.eval_every_epochs = config.checkpoint_every_epochs = epochs / (1 if arg.tiny else 4)
    config.log_every_steps = 50
    return config
