"""Average the params of a run's last checkpoints into a new checkpoint.

    python -m attn_research.average_checkpoints --workdir W --last 5

writes the leaf-wise mean of the newest N complete checkpoints' params as
``<workdir>/checkpoints_averaged/<newest step>/params``, which ``--checkpoint averaged`` (and
``attn_research.load(W, checkpoint="averaged")``) reads; ``--average N`` on the commands
averages at load time instead.
"""

import os
import sys

from absl import flags, logging

from attn_research.command_flags import at_least, checked, existing_directory, run_command
from attn_research.predict import run_files
from attn_research.train import best

_WORKDIR = checked(
    flags.DEFINE_string("workdir", None, "The trained run's workdir."), existing_directory
)
_LAST = checked(
    flags.DEFINE_integer("last", 5, "How many of the newest checkpoints to average."), at_least(1)
)
_STEP = checked(
    flags.DEFINE_integer("step", None, "The newest step to average (default: the newest)."),
    at_least(0),
)
flags.mark_flags_as_required(["workdir"])


def average_checkpoints(workdir: str, last: int, step: int | None = None) -> str:
    """Writes the average of the newest `last` checkpoints up to `step`; returns its path.

    Raises:
      ValueError: if `last` < 1 (nothing is written).
      RunFilesError: if there are fewer than `last` complete checkpoints, or one is damaged.
    """
    if last < 1:
        raise ValueError(f"last: must be >= 1 checkpoint to average, got {last}")
    params, newest = run_files.restore_params(workdir, step, average=last)
    directory = os.path.join(workdir, run_files.AVERAGED_DIRECTORY)
    best.save_params(directory, newest, params)
    return os.path.join(directory, str(newest))


def main(argv: list[str]) -> None:
    del argv
    try:
        path = average_checkpoints(_WORKDIR.value, _LAST.value, _STEP.value)
    except (run_files.RunFilesError, ValueError) as error:
        sys.exit(f"error: {error}")
    logging.info("Wrote the average of %d checkpoints to %s.", _LAST.value, path)


def run() -> None:
    """The console script: absl parses sys.argv, then `main`."""
    run_command(main, __name__)


if __name__ == "__main__":
    run()
