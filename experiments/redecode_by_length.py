"""Decodes a translation run's evaluation sentences again, with another search, by length.

    python -m experiments.redecode_by_length --workdir W [--workdir W2 ...] [--beam 1] \
        [--alpha 0.6] [--json F] [--plot F.png]

Reads the sources and references of the run's newest evaluation
(``<workdir>/translations/step_<N>.txt``: source, output and reference, tab-separated),
translates the sources with the trained model and the given search (``--beam 1`` is greedy),
and prints BLEU, chrF, the empty outputs and BLEU per source-length bucket of the run's
``config.decode.length_buckets``, beside the evaluation's own; ``--plot`` draws the new BLEU
by length, one line per run (named by its workdir's last folder). Undertrained models score the
empty output best under beam search's length-normalized score (Stahlberg & Byrne 2019), so
their beam BLEU says more about the search than about the model; greedy search shows what the
model does put out.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re

from attn_research import predict
from attn_research.evaluation import bleu
from experiments import results as study_results


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


def scores(sources, hypotheses, references, edges) -> dict:
    """BLEU, chrF, empty outputs and ``{bucket: (BLEU, sentences)}``."""
    return {
        "bleu": bleu.bleu(hypotheses, references),
        "chrf": bleu.chrf(hypotheses, references),
        "empty": sum(not h.strip() for h in hypotheses),
        "by_length": bleu.bleu_by_length(sources, hypotheses, references, edges),
    }


def redecode(workdir: str, beam: int, alpha: float | None) -> dict:
    """The evaluation's scores and those of ``beam`` (1: greedy) on the same sentences."""
    step, rows = newest_eval(workdir)
    sources, outputs, references = (list(column) for column in zip(*rows))
    predictor = predict.load(workdir, step)
    edges = tuple(predictor.config.decode.length_buckets)
    translations = predictor.translate(sources, beam_size=beam, alpha=alpha, with_attention=False)
    return {
        "workdir": workdir,
        "step": step,
        "evaluation": scores(sources, outputs, references, edges),
        f"beam_{beam}": scores(sources, [t.text for t in translations], references, edges),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, action="append", help="a run (repeatable)")
    parser.add_argument("--beam", type=int, default=1, help="beam size; 1 is greedy")
    parser.add_argument("--alpha", type=float, default=None, help="length-penalty exponent")
    parser.add_argument("--json", default=None, help="write every run's results here")
    parser.add_argument("--plot", default=None, help="PNG of the new BLEU by length")
    args = parser.parse_args()
    searched = f"beam_{args.beam}"
    runs = [redecode(workdir, args.beam, args.alpha) for workdir in args.workdir]
    for run in runs:
        print(f"{run['workdir']} (step {run['step']})")
        for name in ("evaluation", searched):
            r = run[name]
            buckets = "  ".join(f"{b}: {s:.1f} ({n})" for b, (s, n) in r["by_length"].items())
            print(f"{name:>10}: BLEU {r['bleu']:.2f}, chrF {r['chrf']:.1f}, empty {r['empty']}")
            print(f"{'':>10}  {buckets}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    if args.plot:
        lines = {
            os.path.basename(os.path.normpath(run["workdir"])): {
                bucket: value for bucket, (value, _) in run[searched]["by_length"].items()
            }
            for run in runs
        }
        study_results.plot_bleu_by_length(lines, args.plot)


if __name__ == "__main__":
    main()
