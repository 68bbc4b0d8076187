"""Translate with a trained run: `python -m attn_research.translate --workdir W`.

    echo "The cat sat on the mat." | python -m attn_research.translate --workdir W --alignments

reads one sentence a line (stdin or --input) and writes one translation a line, in the input's
order (stdout or --output); an empty line gives an empty line. --alignments appends ' ||| ' and
Pharaoh links i-j (source word i, target word j), --plot DIR writes a word x word attention
heatmap per sentence, --html FILE the attention explorer (hover a target word to see the source
words it attends to). See `attn_research.predict`.
"""

import sys

from absl import flags, logging

from attn_research import predict
from attn_research.command_flags import (
    at_least,
    checked,
    existing_file,
    finite_at_least,
    new_directory,
    new_file,
    run_command,
)
from attn_research.data import text_files
from attn_research.evaluation import explorer
from attn_research.predict import explorer as predict_explorer
from attn_research.predict import figures, loader, pharaoh

_RUN = loader.define_run_flags()
_INPUT = checked(
    flags.DEFINE_string("input", None, "Sentences, one a line (default: stdin)."), existing_file
)
_OUTPUT = checked(
    flags.DEFINE_string("output", None, "Where translations go (default: stdout)."), new_file
)
_BEAM = checked(
    flags.DEFINE_integer("beam", None, "Beam size; 1 is greedy (default: the run's)."),
    at_least(1),
)
_ALPHA = checked(
    flags.DEFINE_float("alpha", None, "Length penalty exponent (default: the run's)."),
    finite_at_least(0.0),
)
_BATCH = checked(
    flags.DEFINE_integer("batch_size", None, "Sentences per batch (default: the run's)."),
    at_least(1),
)
_ALIGNMENTS = flags.DEFINE_bool("alignments", False, "Append ' ||| ' and Pharaoh i-j links.")
_PLOT = checked(
    flags.DEFINE_string("plot", None, "Directory for one attention heatmap per sentence."),
    new_directory,
)
_HTML = checked(
    flags.DEFINE_string("html", None, "Write the attention explorer page here."), new_file
)


def main(argv: list[str]) -> None:
    del argv
    try:
        if _INPUT.value:
            lines = text_files.read_lines(_INPUT.value)
        else:
            lines = text_files.decode_lines(sys.stdin.buffer.read(), "<stdin>")
        predictor = _RUN.load()
    except (predict.RunFilesError, ValueError) as error:
        sys.exit(f"error: {error}")
    if not isinstance(predictor, predict.TranslationPredictor):
        sys.exit(
            f"error: {_RUN.workdir.value} holds a {predictor.config.task!r} run, not translation"
        )
    if (_ALIGNMENTS.value or _PLOT.value or _HTML.value) and not predictor.has_attention:
        logging.warning(
            "This model (%s, attention %r) has no attention: no alignments, heatmaps or explorer.",
            predictor.config.model.name,
            predictor.config.model.get("attention"),
        )
    translations = predictor.translate(
        lines, beam_size=_BEAM.value, alpha=_ALPHA.value, batch_size=_BATCH.value
    )
    text = "".join(pharaoh.output_line(t, _ALIGNMENTS.value) + "\n" for t in translations)
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    title = f"{predictor.config.model.name} step {predictor.step}"
    if _PLOT.value and predictor.has_attention:
        paths = figures.translation_heatmaps(translations, _PLOT.value, title)
        logging.info("Wrote %d heatmaps to %s.", len(paths), _PLOT.value)
    if _HTML.value and predictor.has_attention:
        explorer.write(_HTML.value, predict_explorer.translation_page(translations, title))


def run() -> None:
    """The console script: absl parses sys.argv, then `main`."""
    run_command(main, __name__)


if __name__ == "__main__":
    run()
