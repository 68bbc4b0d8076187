"""Classify images with a trained run: `python -m attn_research.classify --workdir W IMAGE...`.

    python -m attn_research.classify --workdir W cat.png digits.npz --top 3 --plot /tmp/maps

takes PNG and JPEG files and .npz arrays (one image or a stack), and prints for each image the
top-K classes with their probabilities; --plot DIR writes each image with its attention maps
over it, --html FILE the attention explorer (a map selector per image). See
`attn_research.predict`.
"""

import sys

from absl import flags, logging

from attn_research import predict
from attn_research.command_flags import (
    at_least,
    checked,
    existing_file,
    new_directory,
    new_file,
    problem,
    run_command,
)
from attn_research.evaluation import explorer
from attn_research.predict import classifier, figures, loader
from attn_research.predict import explorer as predict_explorer

_RUN = loader.define_run_flags()
_TOP = checked(flags.DEFINE_integer("top", 5, "How many classes to print per image."), at_least(1))
_PLOT = checked(
    flags.DEFINE_string("plot", None, "Directory for one attention overlay per image."),
    new_directory,
)
_HTML = checked(
    flags.DEFINE_string("html", None, "Write the attention explorer page here."), new_file
)


def main(argv: list[str]) -> None:
    paths = argv[1:]
    if not paths:
        sys.exit("error: give one or more IMAGE files (PNG, JPEG or .npz)")
    for path in paths:
        found = problem(path, existing_file)
        if found:
            sys.exit(f"error: IMAGE {found}")
    try:
        predictor = _RUN.load()
        if not isinstance(predictor, predict.ImagePredictor):
            sys.exit(
                f"error: {_RUN.workdir.value} holds a {predictor.config.task!r} run, not images"
            )
        named = [item for path in paths for item in classifier.read_images(path)]
        results = predictor.classify([a for _, a in named], [n for n, _ in named], _TOP.value)
    except (predict.RunFilesError, ValueError) as error:
        sys.exit(f"error: {error}")
    for result in results:
        ranked = "  ".join(f"{name} {p:.3f}" for name, p in result.top)
        print(f"{result.name}\t{ranked}")
    title = f"{predictor.config.model.name} step {predictor.step}"
    if _HTML.value:
        explorer.write(_HTML.value, predict_explorer.image_page(results, title))
    if _PLOT.value:
        written = figures.image_overlays(results, _PLOT.value, title)
        logging.info("Wrote %d overlays to %s.", len(written), _PLOT.value)


def run() -> None:
    """The console script: absl parses sys.argv, then `main`."""
    run_command(main, __name__)


if __name__ == "__main__":
    run()
