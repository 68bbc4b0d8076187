"""Align given sentence pairs with a trained translator's attention: `python -m attn_research.align`.

    python -m attn_research.align --workdir W --source en.txt --target es.txt --output links.txt
    python -m attn_research.align --workdir W --source en.txt --target es.txt \\
        --gold gold.txt [--gold_format naacl] [--reverse] --json scores.json

teacher-forces each target line on its source line and writes one line of Pharaoh links
``i-j`` (source word i, target word j, 0-based whitespace words) per pair. --method picks the
read-out, --layer and --heads what it reads (--saliency adds the source saliency as a last
map); --reverse_workdir W2 adds a model trained the other way and writes the --symmetrize of
the two. --gold scores every read-out at every layer and head against gold Sure and Possible
links (AER, precision, recall; a table and --json). --html FILE writes the attention explorer
with the gold links. See docs/alignment.md.
"""

import json
import sys

from absl import flags, logging

from attn_research import predict
from attn_research.command_flags import (
    at_least,
    checked,
    existing_directory,
    existing_file,
    finite_at_least,
    new_file,
    run_command,
)
from attn_research.data import symmetrize as symmetrize_lib
from attn_research.data import text_files
from attn_research.evaluation import alignment, alignment_readouts, explorer, gold_alignments
from attn_research.predict import explorer as predict_explorer
from attn_research.predict import loader, pharaoh

_RUN = loader.define_run_flags()
_SOURCE = checked(
    flags.DEFINE_string("source", None, "Source sentences, one a line."), existing_file
)
_TARGET = checked(
    flags.DEFINE_string("target", None, "Their translations, one a line."), existing_file
)
_OUTPUT = checked(
    flags.DEFINE_string("output", None, "Where the links go (default: stdout)."), new_file
)
_GOLD = checked(
    flags.DEFINE_string("gold", None, "Gold links of the pairs: score against them."),
    existing_file,
)
_GOLD_FORMAT = flags.DEFINE_enum(
    "gold_format", "pharaoh", list(gold_alignments.FORMATS), "The gold file's format."
)
_REVERSE = flags.DEFINE_bool("reverse", False, "The gold links are target-source: swap them.")
_METHOD = flags.DEFINE_enum(
    "method", "argmax_target", list(alignment_readouts.READOUTS), "The read-out."
)
_LAYER = flags.DEFINE_list(
    "layer", None, "Map indices (negative from the end) to read (default: the run's)."
)
_HEADS = flags.DEFINE_list("heads", None, "Heads, 1-based, to average (default: all, averaged).")
_THRESHOLD = checked(
    flags.DEFINE_float("threshold", alignment_readouts.THRESHOLD, "τ of the threshold read-out."),
    finite_at_least(0.0),
)
_REVERSE_WORKDIR = checked(
    flags.DEFINE_string(
        "reverse_workdir", None, "A model trained the other way (its source is our target)."
    ),
    existing_directory,
)
_SYMMETRIZE = flags.DEFINE_enum(
    "symmetrize",
    "grow_diag_final_and",
    list(symmetrize_lib.SYMMETRIZATIONS),
    "How the two directions' links are joined (with --reverse_workdir).",
)
_LENGTH_BUCKETS = flags.DEFINE_list(
    "length_buckets",
    None,
    "With --gold: also score the written links by source length, buckets from these word counts "
    "(e.g. 0,8,12: 0-7, 8-11, 12+).",
)
_SALIENCY = flags.DEFINE_bool(
    "saliency",
    False,
    "Also align with the source saliency (integrated gradients of each target word's "
    "log-probability, models.saliency): one more map, the last.",
)
_BATCH = checked(
    flags.DEFINE_integer("batch_size", None, "Pairs per batch (default: the run's)."),
    at_least(1),
)
_JSON = checked(
    flags.DEFINE_string("json", None, "Write the scores (with --gold) here as JSON."), new_file
)
_HTML = checked(
    flags.DEFINE_string("html", None, "Write the attention explorer page here."), new_file
)
flags.mark_flags_as_required(["source", "target"])


def _ints(values: list[str] | None, flag: str) -> tuple[int, ...] | None:
    if values is None:
        return None
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise ValueError(f"--{flag}: want integers, got {','.join(values)!r}") from None


def _load(workdir: str) -> predict.TranslationPredictor:
    predictor = predict.load(
        workdir, _RUN.step.value, checkpoint=_RUN.checkpoint.value, average=_RUN.average.value
    )
    if not isinstance(predictor, predict.TranslationPredictor):
        raise ValueError(f"{workdir} holds a {predictor.config.task!r} run, not translation")
    return predictor


def _selection(method: str, model: predict.TranslationPredictor) -> alignment_readouts.Selection:
    """The read-out's selection from --layer and --heads (the model's defaults where not given)."""
    default = model.default_selection(method, _SALIENCY.value)
    layers, heads = _ints(_LAYER.value, "layer"), _ints(_HEADS.value, "heads")
    return alignment_readouts.Selection(
        default.layers if layers is None else layers, default.heads if heads is None else heads
    )


def _heads(alignments: list[predict.ForcedAlignment]) -> dict[str, int]:
    """``{map: heads}`` of the views of the first aligned pair (``{}`` if none is)."""
    for a in alignments:
        if a.attention is not None:
            return {m: max(1, len(v) - 1) for m, v in a.attention.views.items()}
    return {}


def _swap(links: list[alignment.Links]) -> list[alignment.Links]:
    return [{(j, i) for i, j in pair} for pair in links]


def _read(
    method: str, alignments: list[predict.ForcedAlignment], model: predict.TranslationPredictor
) -> list:
    """The links of `method` under --layer/--heads (default: the `model`'s)."""
    attentions = [a.attention for a in alignments]
    return alignment_readouts.read(method, attentions, _selection(method, model), _THRESHOLD.value)


def _score_rows(
    forward: list[predict.ForcedAlignment],
    reverse: list[predict.ForcedAlignment] | None,
    gold: gold_alignments.Gold,
    models: list[predict.TranslationPredictor],
) -> list[dict]:
    """AER, precision and recall of every read-out at every map and head (a pooled one under
    --layer/--heads), of each read-out under --layer/--heads where the grid lacks it, then, with
    a reverse model, of each read-out under --layer/--heads (each
    of the `models`' defaults where not given) from the reverse model alone and symmetrized."""
    rows = []

    def add(method: str, selection: str, links: list[alignment.Links]) -> None:
        scores = alignment.score(links, gold.sure, gold.possible)
        rows.append({"method": method, "selection": selection, **scores.as_dict()})

    attentions = [a.attention for a in forward]
    shown = next((a.views for a in attentions if a is not None), {})
    pooled = _selection("mean", models[0])
    read = {}  # (method, selection label): links of the forward model
    for method, chosen in alignment_readouts.grid(_heads(forward), pooled):
        read[method, chosen.label(shown)] = links = alignment_readouts.read(
            method, attentions, chosen, _THRESHOLD.value
        )
        add(method, chosen.label(shown), links)
    for method in alignment_readouts.READOUTS:
        chosen = _selection(method, models[0])
        key = method, chosen.label(shown)
        if key not in read:  # several maps under --layer/--heads
            read[key] = alignment_readouts.read(method, attentions, chosen, _THRESHOLD.value)
            add(*key, read[key])
        if reverse is None:
            continue
        ours = read[key]
        theirs = _swap(_read(method, reverse, models[1]))
        add(method, "reverse model", theirs)
        for name, join in symmetrize_lib.SYMMETRIZATIONS.items():
            add(method, name, [join(a, b) for a, b in zip(ours, theirs)])
    return rows


def _table(rows: list[dict]) -> str:
    width = max(len(r["selection"]) for r in rows)
    lines = [f"{'method':<14} {'selection':<{width}}    AER  precision  recall"]
    lines += [
        f"{r['method']:<14} {r['selection']:<{width}} {r['aer']:6.3f} {r['precision']:10.3f}"
        f" {r['recall']:7.3f}"
        for r in rows
    ]
    return "\n".join(lines)


def _length_table(rows: list[dict]) -> str:
    """The written links' scores by source length (``alignment.score_by_length``)."""
    lines = ["source words  pairs     AER  precision  recall"]
    for r in rows:
        rates = (
            "  no links"
            if r["aer"] is None
            else (f"{r['aer']:7.3f} {r['precision']:10.3f} {r['recall']:7.3f}")
        )
        lines.append(f"{r['words']:<12} {r['pairs']:6d} {rates}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    try:
        sources, targets = (
            text_files.read_lines(_SOURCE.value),
            text_files.read_lines(_TARGET.value),
        )
        if len(sources) != len(targets):
            raise ValueError(
                f"{_SOURCE.value} has {len(sources)} lines but {_TARGET.value} {len(targets)}"
            )
        lengths = [(len(s.split()), len(t.split())) for s, t in zip(sources, targets)]
        gold = None
        if _GOLD.value:
            gold = gold_alignments.read(
                _GOLD.value, _GOLD_FORMAT.value, lengths, reverse=_REVERSE.value
            )
        edges = _ints(_LENGTH_BUCKETS.value, "length_buckets")
        if edges is not None:
            if gold is None:
                raise ValueError("--length_buckets scores against gold links: give --gold")
            alignment.length_buckets(edges)
        models = [_load(_RUN.workdir.value)]
        if _REVERSE_WORKDIR.value:
            models.append(_load(_REVERSE_WORKDIR.value))
        options = dict(
            method=_METHOD.value,
            threshold=_THRESHOLD.value,
            batch_size=_BATCH.value,
            saliency=_SALIENCY.value,
        )
        forward = models[0].align(
            sources, targets, selection=_selection(_METHOD.value, models[0]), **options
        )
        reverse = None
        links = [set(a.links) for a in forward]
        if len(models) > 1:
            reverse = models[1].align(
                targets, sources, selection=_selection(_METHOD.value, models[1]), **options
            )
            join = symmetrize_lib.SYMMETRIZATIONS[_SYMMETRIZE.value]
            links = [join(a, b) for a, b in zip(links, _swap([set(r.links) for r in reverse]))]
    except (predict.RunFilesError, ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    text = "".join(pharaoh.format_links(pair) + "\n" for pair in links)
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if gold is not None:
        try:
            rows = _score_rows(forward, reverse, gold, models)
        except ValueError as error:  # neither links nor gold links: no rate is defined
            sys.exit(f"error: {_GOLD.value}: {error}")
        shown = sys.stderr if not _OUTPUT.value else sys.stdout
        print(_table(rows), file=shown)
        by_length = None
        if edges is not None:
            source_words = [n for n, _ in lengths]
            by_length = alignment.score_by_length(
                links, gold.sure, gold.possible, source_words, edges
            )
            print(_length_table(by_length), file=shown)
        if _JSON.value:
            with open(_JSON.value, "w", encoding="utf-8") as f:
                json.dump(
                    {
                        "command": " ".join(["python -m attn_research.align", *sys.argv[1:]]),
                        "workdir": _RUN.workdir.value,
                        "step": models[0].step,
                        "reverse_workdir": _REVERSE_WORKDIR.value,
                        "reverse_step": models[-1].step if reverse else None,
                        "source": _SOURCE.value,
                        "target": _TARGET.value,
                        "gold": _GOLD.value,
                        "pairs": len(sources),
                        "threshold": _THRESHOLD.value,
                        "rows": rows,
                        "by_length": by_length,
                    },
                    f,
                    indent=1,
                )
    if _HTML.value:
        title = f"{models[0].config.model.name} step {models[0].step}: forced alignment"
        explorer.write(_HTML.value, predict_explorer.alignment_page(forward, title, gold))
        logging.info("Wrote the explorer to %s.", _HTML.value)


def run() -> None:
    """The console script: absl parses sys.argv, then `main`."""
    run_command(main, __name__)


if __name__ == "__main__":
    run()
