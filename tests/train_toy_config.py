"""Config of the toy task (tests/train_toy_task.py), run by the trainer tests.

    python -m attn_research.main --config tests/train_toy_config.py:tiny --workdir /tmp/toy

Measured on the shared 2-core CPU machine (1 device): the full run (600 steps) reaches 0.984
eval accuracy in 2.6 s of training after a 3 s compile; tiny (60 steps) reaches 0.949.
"""

import os
import sys

import ml_collections

from attn_research.train import default_config, parse_arg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_toy_task  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Toy config; args: tiny, layers=<int>, dtype=float32|bfloat16."""
    arg = parse_arg(arg, tiny=False, layers=2, dtype="float32")
    config = default_config()
    config.task = train_toy_task.NAME
    config.dtype = arg.dtype
    config.batch_size = 32
    config.total_steps = 60 if arg.tiny else 600
    config.log_every_steps = 10
    config.eval_every_steps = 20
    config.checkpoint_every_steps = 10
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-2
    config.optimizer.warmup_steps = 5

    config.model = ml_collections.ConfigDict(
        {"hidden": 16 if arg.tiny else 64, "num_layers": arg.layers, "dropout": 0.1}
    )
    config.data = ml_collections.ConfigDict(
        {
            "seed": 0,
            "num_train": 1024,
            "num_eval": 256,
            "features": 8,
            "classes": 4,
            "delay_sec": 0.0,
            "nan_at_step": 0,
            "signal_at_step": 0,
            "signal_at_startup": False,
            "signal": "SIGINT",
            "signal_count": 1,
        }
    )
    return config


def with_changes(arg: str = "tiny", **changes) -> ml_collections.ConfigDict:
    """`get_config(arg)` with `changes`, where `model__hidden=32` sets config.model.hidden."""
    config = get_config(arg)
    for path, value in changes.items():
        *parents, key = path.split("__")
        node = config
        for parent in parents:
            node = node[parent]
        node[key] = value
    return config
