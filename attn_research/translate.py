"""Translate with a trained run: `python -m attn_research.translate --workdir W`.

    echo "The cat sat on the mat." | python -m attn_research.translate --workdir W --alignments

reads one sentence a line (stdin or --input) and writes one translation a line, in the input's
order (stdout or --output); an empty line gives an empty line. --alignments appends ' ||| ' and
Pharaoh links i-j (source word i, target word j), --plot DIR writes a word x word attention
heatmap per sentence, --html FILE the attention explorer (hover a target word to see the source
words it attends to). See `attn_research.predict`.
"""

import sys

from absl import app, flags, logging

from attn_research import predict
from attn_research.evaluation import explorer
from attn_research.predict import explorer as predict_explorer
from attn_research.predict import figures, pharaoh

_WORKDIR = flags.DEFINE_string("workdir", None, "The trained run's workdir.")
_STEP = flags.DEFINE_integer("step", None, "The checkpoint's step (default: the newest).")
_CHECKPOINT = flags.DEFINE_enum(
    "checkpoint", "latest", ["latest", "best", "averaged"], "Which checkpoint."
)
_AVERAGE = flags.DEFINE_integer("average", 0, "Average the params of the newest N checkpoints.")
_INPUT = flags.DEFINE_string("input", None, "Sentences, one a line (default: stdin).")
_OUTPUT = flags.DEFINE_string("output", None, "Where translations go (default: stdout).")
_BEAM = flags.DEFINE_integer("beam", None, "Beam size; 1 is greedy (default: the run's).")
_ALPHA = flags.DEFINE_float("alpha", None, "Length penalty exponent (default: the run's).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Sentences per batch (default: the run's).")
_ALIGNMENTS = flags.DEFINE_bool("alignments", False, "Append ' ||| ' and Pharaoh i-j links.")
_PLOT = flags.DEFINE_string("plot", None, "Directory for one attention heatmap per sentence.")
_HTML = flags.DEFINE_string("html", None, "Write the attention explorer page here.")
flags.mark_flags_as_required(["workdir"])


def main(argv: list[str]) -> None:
    del argv
    try:
        predictor = predict.load(
            _WORKDIR.value, _STEP.value, checkpoint=_CHECKPOINT.value, average=_AVERAGE.value
        )
    except (predict.RunFilesError, ValueError) as error:
        sys.exit(f"error: {error}")
    if not isinstance(predictor, predict.TranslationPredictor):
        sys.exit(f"error: {_WORKDIR.value} holds a {predictor.config.task!r} run, not translation")
    if (_ALIGNMENTS.value or _PLOT.value or _HTML.value) and not predictor.has_attention:
        logging.warning(
            "This model (%s, attention %r) has no attention: no alignments, heatmaps or explorer.",
            predictor.config.model.name,
            predictor.config.model.get("attention"),
        )
    source = open(_INPUT.value, encoding="utf-8") if _INPUT.value else sys.stdin
    with source:
        lines = [line.rstrip("\n") for line in source]
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


if __name__ == "__main__":
    app.run(main)
