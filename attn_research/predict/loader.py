"""`load(workdir, step=None)`: the predictor of a trained run, from its workdir alone: a
`TranslationPredictor` or an `ImagePredictor` by the task in ``config.json``, its params on
the default device.
"""

from __future__ import annotations

import dataclasses

from absl import flags

from attn_research.command_flags import at_least, checked, existing_directory
from attn_research.predict import run_files
from attn_research.predict.classifier import ImagePredictor
from attn_research.predict.translator import TranslationPredictor
from attn_research.tasks import image, translation

PREDICTORS = {translation.NAME: TranslationPredictor, image.NAME: ImagePredictor}


def load(
    workdir: str, step: int | None = None, *, checkpoint: str = "latest", average: int = 0
) -> TranslationPredictor | ImagePredictor:
    """The predictor of the run in `workdir`, at checkpoint `step` (default: the newest);
    ``checkpoint``: ``latest``, ``best`` or ``averaged``; ``average=N``: the mean params of the
    newest N checkpoints.

    Raises:
      RunFilesError: naming the file the workdir lacks (config, checkpoint, tokenizer, labels).
      ValueError: if the run's task has no predictor, or the checkpoint does not fit the config.
    """
    config = run_files.read_config(workdir)
    if config.get("task") not in PREDICTORS:
        raise ValueError(
            f"{workdir}/config.json: task {config.get('task')!r} has no predictor; "
            f"predictors exist for {sorted(PREDICTORS)}."
        )
    params, step = run_files.restore_params(workdir, step, which=checkpoint, average=average)
    return PREDICTORS[config.task].from_run(workdir, config, params, step)


@dataclasses.dataclass(frozen=True)
class RunFlags:
    """The flags by which a command names the run and checkpoint it loads."""

    workdir: flags.FlagHolder
    step: flags.FlagHolder
    checkpoint: flags.FlagHolder
    average: flags.FlagHolder

    def load(self) -> TranslationPredictor | ImagePredictor:
        """`load` of the run and checkpoint the flags name."""
        return load(
            self.workdir.value,
            self.step.value,
            checkpoint=self.checkpoint.value,
            average=self.average.value,
        )


def define_run_flags() -> RunFlags:
    """Defines ``--workdir`` (required), ``--step``, ``--checkpoint`` and ``--average``,
    checked while they are parsed (``command_flags``)."""
    workdir = checked(
        flags.DEFINE_string("workdir", None, "The trained run's workdir."), existing_directory
    )
    flags.mark_flags_as_required(["workdir"])
    return RunFlags(
        workdir,
        checked(
            flags.DEFINE_integer("step", None, "The checkpoint's step (default: the newest)."),
            at_least(0),
        ),
        flags.DEFINE_enum("checkpoint", "latest", list(run_files.CHECKPOINTS), "Which checkpoint."),
        checked(
            flags.DEFINE_integer("average", 0, "Average the params of the newest N checkpoints."),
            at_least(0),
        ),
    )
