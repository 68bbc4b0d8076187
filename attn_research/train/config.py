"""The trainer's config fields, their defaults, and their validation.

Experiment configs start from `default_config()`, so every trainer field can be overridden
(`--config.optimizer.learning_rate=3e-4`). The task owns and checks the top-level keys in
`Task.config_keys` (e.g. `model`, `data`); any other unknown key is an error.

Durations are pairs `<name>_steps` / `<name>_epochs`, at most one of each set (`total_*`:
exactly one), resolved at run time by `durations.resolve_durations`; `DURATIONS` lists them.
"""

from collections.abc import Iterable, Sequence

import ml_collections
from ml_collections.config_dict import placeholder

from attn_research.names import unknown_field_error

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "inverse_sqrt", "halving")
DTYPES = ("float32", "bfloat16")
BEST_MODES = ("max", "min")
# The `<name>_steps` / `<name>_epochs` pairs, by their paths without the suffix.
DURATIONS = (
    "total",
    "log_every",
    "eval_every",
    "checkpoint_every",
    "optimizer.warmup",
    "optimizer.halve_after",
    "optimizer.halve_every",
)


def _duration(config: ml_collections.ConfigDict, name: str) -> None:
    """Adds the `<name>_steps` / `<name>_epochs` placeholder pair to `config`."""
    config[f"{name}_steps"] = placeholder(int)
    config[f"{name}_epochs"] = placeholder(float)


def default_config() -> ml_collections.ConfigDict:
    """Returns every trainer field with its default value."""
    config = ml_collections.ConfigDict()
    config.task = ""  # Registered task name, see `attn_research.tasks`.
    config.seed = 0  # Seeds parameters, dropout and (through the task) data order.
    config.dtype = "float32"  # Compute dtype handed to the task's model; params stay float32.
    config.batch_size = 128  # Global examples per train step, over all processes.
    config.eval_batch_size = placeholder(int)  # Defaults to batch_size.
    for name in DURATIONS:
        if "." not in name:
            _duration(config, name)
    config.keep_checkpoints = 3  # Newest checkpoints kept on disk.
    # The best checkpoint by an eval metric (e.g. "eval/bleu"; "" keeps none), apart from the
    # newest ones (`train.best`); best_mode "max" or "min".
    config.best_metric = ""
    config.best_mode = "max"
    config.early_stopping_evals = 0  # Evaluations without a new best that end the run; 0: off.
    # > 0: every parameter drawn uniformly from [-init_uniform, init_uniform] instead of by the
    # model's initializers (Sutskever et al. 2014, Luong et al. 2015 use 0.1); 0: the model's.
    config.init_uniform = 0.0

    config.optimizer = ml_collections.ConfigDict()
    opt = config.optimizer
    opt.name = "adamw"  # One of OPTIMIZERS.
    opt.learning_rate = 1e-3  # Peak learning rate.
    opt.schedule = "cosine"  # One of SCHEDULES, after a linear warmup.
    _duration(opt, "warmup")
    # halving: the peak, halved after halve_after_* and again every halve_every_* (default 1
    # epoch) after that (Luong et al. 2015).
    _duration(opt, "halve_after")
    _duration(opt, "halve_every")
    opt.end_learning_rate_fraction = 0.0  # Cosine decays to this fraction of the peak.
    opt.b1 = 0.9
    opt.b2 = 0.999
    opt.eps = 1e-8
    opt.momentum = 0.9  # sgd only; 0 disables momentum.
    opt.nesterov = False  # sgd only.
    opt.weight_decay = 0.0  # Decoupled (adamw) or L2-style added to gradients (adam, sgd).
    opt.no_decay = r"(bias|scale|embedding)"  # Regex on param paths exempt from decay.
    opt.grad_clip_norm = 0.0  # Global-norm clipping; 0 disables.
    opt.grad_accum_steps = 1  # Train steps per optimizer update (optax.MultiSteps).

    # Device mesh: axis name -> size; one size may be -1 (all remaining devices).
    config.mesh = ml_collections.ConfigDict({"data": -1})
    config.batch_axes = ("data",)  # Mesh axes the batch dimension is split over.
    # (regex on the param path, PartitionSpec as a tuple); first match wins; default replicated.
    config.param_sharding = ()
    return config


def check_paths(config: ml_collections.ConfigDict, paths: Sequence[str]) -> None:
    """Raises `unknown_field_error` for the first of `paths` ('optimizer.lr') not in `config`.

    A path through a value that is not a ConfigDict (a tuple, a dataclass) is not checked.
    """
    for path in paths:
        node, parts = config, path.split(".")
        for depth, part in enumerate(parts, 1):
            if not isinstance(node, ml_collections.ConfigDict):
                break
            if part not in node:
                raise unknown_field_error(".".join(parts[:depth]), node.keys())
            node = node[part]


def _update(
    merged: ml_collections.ConfigDict,
    config: ml_collections.ConfigDict,
    prefix: str,
    free_keys: Iterable[str],
) -> None:
    """Sets every field of ``config`` on ``merged`` (the defaults), recursing into sub-configs;
    ml_collections checks types. Unknown keys, wrong types or a value where a sub-config belongs
    raise ValueError naming the field. ``mesh`` is replaced whole (its axis names are free).
    """
    for key in config.keys():
        path, value = prefix + key, config[key]
        if key not in merged:
            if key not in free_keys:
                raise unknown_field_error(path, merged.keys())
            merged[key] = value
        elif isinstance(merged[key], ml_collections.ConfigDict) and key != "mesh":
            if not isinstance(value, ml_collections.ConfigDict):
                raise ValueError(f"config.{path}: expected a ConfigDict, got {value!r}.")
            _update(merged[key], value, path + ".", ())
        else:
            try:
                merged[key] = value
            except TypeError as error:
                raise ValueError(f"config.{path}: {error}") from None


def _check_positive(
    config: ml_collections.ConfigDict, *paths: str, allow_zero: bool = False
) -> None:
    """Raises ValueError naming the first field in `paths` that is not positive."""
    for path in paths:
        value = config
        for part in path.split("."):
            value = value[part]
        if value is not None and (value < 0 or (value == 0 and not allow_zero)):
            raise ValueError(
                f"config.{path}: must be {'>= 0' if allow_zero else '> 0'}, got {value}."
            )


def _check_choice(path: str, value: str, choices: tuple[str, ...]) -> None:
    """Raises ValueError naming config.<path> unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"config.{path}: unknown value {value!r}; choose one of {choices}.")


def check_config(
    config: ml_collections.ConfigDict, task_keys: Iterable[str]
) -> ml_collections.ConfigDict:
    """`default_config()` updated by `config` (`mesh` replaced, not merged), its trainer fields
    checked; `task_keys` are the top-level keys the task owns and checks. Checks that need the
    devices or the dataset size are done where those are known.

    Raises:
      ValueError: naming the first offending field.
    """
    merged = default_config()
    _update(merged, ml_collections.ConfigDict(config.to_dict()), "", tuple(task_keys))
    _check_choice("optimizer.name", merged.optimizer.name, OPTIMIZERS)
    _check_choice("optimizer.schedule", merged.optimizer.schedule, SCHEDULES)
    _check_choice("dtype", merged.dtype, DTYPES)
    _check_choice("best_mode", merged.best_mode, BEST_MODES)
    if merged.best_metric and not merged.best_metric.startswith("eval/"):
        raise ValueError(
            f"config.best_metric: {merged.best_metric!r} is not an eval metric (eval/<name>)."
        )
    if merged.early_stopping_evals and not merged.best_metric:
        raise ValueError("config.early_stopping_evals: needs config.best_metric to watch.")
    _check_positive(
        merged,
        "batch_size",
        "eval_batch_size",
        "keep_checkpoints",
        "optimizer.learning_rate",
        "optimizer.grad_accum_steps",
    )
    _check_positive(
        merged,
        "early_stopping_evals",
        "optimizer.weight_decay",
        "optimizer.grad_clip_norm",
        "optimizer.eps",
        "optimizer.momentum",
        "optimizer.end_learning_rate_fraction",
        "init_uniform",
        allow_zero=True,
    )
    return merged
