r"""Entry point: `python -m attn_research.main --config <file>.py[:args] --workdir <dir>`.

    python -m attn_research.main --config experiments/configs/<name>.py:tiny --workdir /tmp/run \
        --config.optimizer.learning_rate=3e-4

For several processes (multi-host), start one per host with --coordinator_address,
--num_processes and --process_id (or the JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID environment variables); on Cloud TPU, --distributed alone lets JAX find them.

--print_config prints the config file's docstring (its arguments) and the resolved config, and
exits; --dry_run also builds the model without compiling and prints its parameter count, the
mesh and the kernel `auto` picks for each attention (`attn_research.train.dry_run`), and exits.

An unknown `--config.<path>` is a ValueError naming it and the closest known field. Of the two
fields of a duration (`--config.total_steps` / `--config.total_epochs`), the one given on the
command line wins over the config file's, and of two given there, the one given later.
"""

import ast
import logging as std_logging
import os
import re

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from attn_research import tasks
from attn_research.command_flags import at_least, checked, run_command
from attn_research.train import dry_run, train_and_evaluate
from attn_research.train.config import check_config, check_paths
from attn_research.train.durations import prefer_given

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:args].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() with auto-detection."
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    os.environ.get("JAX_COORDINATOR_ADDRESS"),
    "host:port of process 0, for multi-process runs.",
)
_NUM_PROCESSES = checked(
    flags.DEFINE_integer(
        "num_processes",
        int(os.environ.get("JAX_NUM_PROCESSES", "1")),
        "Number of processes of a multi-process run.",
    ),
    at_least(1),
)
_PROCESS_ID = checked(
    flags.DEFINE_integer(
        "process_id",
        int(os.environ.get("JAX_PROCESS_ID", "0")),
        "Index of this process in a multi-process run.",
    ),
    at_least(0),
)
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print the config file's arguments and the resolved config; exit."
)
_DRY_RUN = flags.DEFINE_bool(
    "dry_run",
    False,
    "Print the resolved config, parameter count, mesh and attention kernels; exit untrained.",
)
flags.mark_flags_as_required(["config", "workdir"])


def _quiet_orbax(record: std_logging.LogRecord) -> bool:
    """Drops orbax's INFO lines and its errors' tracebacks (the trainer reports a failed save
    once); keeps its warning and error lines."""
    if "/orbax/" not in record.pathname:
        return True
    record.exc_info = record.exc_text = None
    return record.levelno >= std_logging.WARNING


def _config_spec(argv: list[str]) -> str | None:
    """The `--config` value ('file.py:args') in `argv`, or None, read by absl on its own: the full
    parse exits on `--help` before it has read the config flag, and a bad override fails it."""
    scratch = flags.FlagValues()
    flags.DEFINE_string("config", None, "", flag_values=scratch)
    scratch(argv, known_only=True)
    return scratch.config


def _given_paths(argv: list[str]) -> list[str]:
    """The paths of the `--config.<path>[=value]` flags in `argv`.

    This must read `argv` itself: ml_collections lists the overrides while it parses but keeps
    the list private, and its public `override_values` exist only after a parse that an
    unknown path has failed.
    """
    return [m.group(1) for m in map(re.compile(r"-{1,2}(?:no)?config\.([^=]+)").match, argv) if m]


def _config_file_doc(spec: str) -> str:
    """The docstring of the config file of `spec` ('file.py:args'): its command and arguments."""
    path = spec.partition(":")[0]
    with open(path, encoding="utf-8") as f:
        return ast.get_docstring(ast.parse(f.read(), path)) or f"{path} has no docstring."


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing; an unknown `--config.<path>` raises ValueError naming it, and
    --help with a --config shows the config file's arguments (its docstring) first."""
    spec = _config_spec(argv)
    asks_help = {"--help", "--helpfull", "-help", "-helpfull"} & set(argv)
    if asks_help and spec is not None and os.path.isfile(spec.partition(":")[0]):
        print(_config_file_doc(spec), end="\n\n")
    try:
        return app.parse_flags_with_usage(argv)  # A failed flag check exits naming the flag.
    except (AttributeError, KeyError) as error:  # What ml_collections raises for a bad path.
        failure = error
    if spec is not None:  # Outside the `except`: the ValueError alone is shown.
        check_paths(flags.FLAGS["config"].parser.parse(spec), _given_paths(argv))
    raise failure


def main(argv: list[str]) -> None:
    del argv
    logging.get_absl_handler().addFilter(_quiet_orbax)
    if _NUM_PROCESSES.value > 1:
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    elif _DISTRIBUTED.value:
        jax.distributed.initialize()
    logging.info(
        "Process %d of %d, devices: %s", jax.process_index(), jax.process_count(), jax.devices()
    )
    config = _CONFIG.value
    prefer_given(config, list(config_flags.get_override_values(flags.FLAGS["config"])))
    if _PRINT_CONFIG.value:
        print(_config_file_doc(config_flags.get_config_filename(flags.FLAGS["config"])))
        print(check_config(config, tasks.get_task(config.get("task", "")).config_keys))
    elif _DRY_RUN.value:
        print(dry_run.describe(config))
    else:
        train_and_evaluate(config, _WORKDIR.value)


def run() -> None:
    """The console script `attn-train`: absl parses sys.argv, then `main`."""
    run_command(main, __name__, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
