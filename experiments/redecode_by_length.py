"""Decodes a translation run's evaluation sentences again, with another search, by length.

    python -m experiments.redecode_by_length --workdir W [--workdir W2 ...] [--beam 1] \
        [--alpha 0.6] [--long-from 40] [--json F] [--plot F.png]

Reads the sources and references of the run's newest evaluation
(``<workdir>/translations/step_<N>.txt``: source, output and reference, tab-separated),
translates the sources with the trained model and the given search (``--beam 1`` is greedy),
and prints BLEU, chrF, the empty outputs, BLEU and output / reference length per source-length
bucket of the run's ``config.decode.length_buckets``, and BLEU of the sources of ``--long-from``
words or more pooled, beside the evaluation's own. ``--json`` merges the results into a file
that may hold runs decoded before (a run decoded again at the same step and ``--long-from`` adds
its new search to its entry; otherwise it replaces it), so that a study whose points are
trained at different times builds up one record; ``--plot`` draws the new search's BLEU by
length of every run in that record (or of this call's runs without ``--json``), one line per
model, averaged over the seeds recorded for it. Undertrained models score the empty output
best under beam search's length-normalized score (Stahlberg & Byrne 2019), so their beam BLEU
says more about the search than about the model; greedy search shows what the model does put
out.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re

import numpy as np

from attn_research import predict
from attn_research.command_flags import argparse_type, at_least, existing_directory, finite_at_least
from attn_research.evaluation import bleu
from experiments import results as study_results
from experiments.study import SEED_AXIS


def newest_eval(workdir: str) -> tuple[int, list[tuple[str, str, str]]]:
    """``(step, [(source, output, reference)])`` of the newest ``translations/step_N.txt``."""
    files = glob.glob(os.path.join(workdir, "translations", "step_*.txt"))
    steps = [int(m.group(1)) for f in files if (m := re.search(r"step_(\d+)\.txt$", f))]
    if not steps:
        raise SystemExit(f"{workdir}: no translations/step_N.txt (the run has not evaluated)")
    step = max(steps)
    with open(os.path.join(workdir, "translations", f"step_{step}.txt"), encoding="utf-8") as f:
        rows = [tuple(line.rstrip("\n").split("\t")) for line in f]
    return step, rows


def scores(sources, hypotheses, references, edges, long_from: int) -> dict:
    """BLEU, chrF, empty outputs, ``{bucket: (BLEU, sentences)}``, ``{bucket: output / reference
    length}`` and ``long``: (BLEU, sentences) of the sources of ``long_from`` words or more pooled
    (None if there are none)."""
    long = bleu.bleu_by_length(sources, hypotheses, references, (0, long_from))
    return {
        "bleu": bleu.bleu(hypotheses, references),
        "chrf": bleu.chrf(hypotheses, references),
        "empty": sum(not h.strip() for h in hypotheses),
        "by_length": bleu.bleu_by_length(sources, hypotheses, references, edges),
        "length_ratio": bleu.length_ratio_by_length(sources, hypotheses, references, edges),
        "long": long.get(f"{long_from}+"),
    }


def search_name(beam: int, alpha: float | None) -> str:
    """``"beam_4"`` (the run's own length penalty) or ``"beam_4_alpha_1"``: a search's key."""
    return f"beam_{beam}" + ("" if alpha is None else f"_alpha_{alpha:g}")


def redecode(workdir: str, beam: int, alpha: float | None, long_from: int = 40) -> dict:
    """The evaluation's scores and those of ``beam`` (1: greedy) with length-penalty exponent
    ``alpha`` (None: the run's ``config.decode.alpha``) on the same sentences."""
    step, rows = newest_eval(workdir)
    sources, outputs, references = (list(column) for column in zip(*rows))
    predictor = predict.load(workdir, step)
    edges = tuple(predictor.config.decode.length_buckets)
    translations = predictor.translate(sources, beam_size=beam, alpha=alpha, with_attention=False)
    return {
        "workdir": workdir,
        "step": step,
        "long_from": long_from,
        "evaluation": scores(sources, outputs, references, edges, long_from),
        search_name(beam, alpha): scores(
            sources, [t.text for t in translations], references, edges, long_from
        ),
    }


def merge_json(path: str, runs: list[dict]) -> list[dict]:
    """Adds ``runs`` to the runs recorded in ``path`` (if it exists), one entry per workdir, writes
    them back and returns them. A run recorded at the same step and ``long_from`` keeps its other
    searches beside the new one; otherwise the new run replaces the recorded one, so that an
    entry's searches always score the same checkpoint the same way."""
    merged = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            merged = {run["workdir"]: run for run in json.load(f)}
    for run in runs:
        old = merged.get(run["workdir"], {})
        same = all(old.get(key) == run.get(key) for key in ("step", "long_from"))
        merged[run["workdir"]] = {**old, **run} if same else run
    with open(path, "w", encoding="utf-8") as f:
        json.dump(list(merged.values()), f, indent=1)
    return list(merged.values())


def lines_by_model(runs: list[dict], search: str) -> dict[str, dict[str, float]]:
    """``{label: {bucket: BLEU}}`` of ``search`` for the plot, one line per model: runs whose
    workdir names differ only by ``config.seed=N`` (as a study names its points) are averaged
    bucket by bucket, and the label says over how many seeds."""
    by_model: dict[str, list[dict]] = {}
    for run in runs:
        if search in run:
            name = os.path.basename(os.path.normpath(run["workdir"]))
            model = ",".join(p for p in name.split(",") if not p.startswith(f"{SEED_AXIS}="))
            by_model.setdefault(model or name, []).append(run[search]["by_length"])
    return {
        f"{model} ({len(seeds)} seed{'s' * (len(seeds) > 1)})": {
            bucket: float(np.mean([seed[bucket][0] for seed in seeds if bucket in seed]))
            for bucket in dict.fromkeys(b for seed in seeds for b in seed)
        }
        for model, seeds in by_model.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir",
        required=True,
        action="append",
        type=argparse_type(str, existing_directory),
        help="a run (repeatable)",
    )
    parser.add_argument(
        "--beam", type=argparse_type(int, at_least(1)), default=1, help="beam size; 1 is greedy"
    )
    parser.add_argument(
        "--alpha",
        type=argparse_type(float, finite_at_least(0.0)),
        default=None,
        help="length-penalty exponent",
    )
    parser.add_argument(
        "--long-from",
        type=argparse_type(int, at_least(0)),
        default=40,
        help="pool the sources of this many words or more",
    )
    parser.add_argument("--json", default=None, help="merge every run's results into this file")
    parser.add_argument("--plot", default=None, help="PNG of the new BLEU by length")
    args = parser.parse_args()
    searched = search_name(args.beam, args.alpha)
    runs = [redecode(w, args.beam, args.alpha, args.long_from) for w in args.workdir]
    for run in runs:
        print(f"{run['workdir']} (step {run['step']})")
        for name in ("evaluation", searched):
            r = run[name]
            long = "none" if r["long"] is None else "{:.1f} ({})".format(*r["long"])
            print(
                f"{name:>10}: BLEU {r['bleu']:.2f}, chrF {r['chrf']:.1f}, empty {r['empty']}, "
                f"{args.long_from}+ words pooled {long}"
            )
            for b, (s, n) in r["by_length"].items():
                print(
                    f"{'':>10}  {b:>6}: BLEU {s:5.1f} ({n:3d}), length {r['length_ratio'][b]:.2f}"
                )
    if args.json:
        runs = merge_json(args.json, runs)
    if args.plot:
        study_results.plot_bleu_by_length(lines_by_model(runs, searched), args.plot)


if __name__ == "__main__":
    main()
