"""The single trainer: `train_and_evaluate(config, workdir)` and its helpers."""

from attn_research.train.config import default_config
from attn_research.train.config_args import parse_arg
from attn_research.train.trainer import train_and_evaluate

__all__ = ["default_config", "parse_arg", "train_and_evaluate"]
