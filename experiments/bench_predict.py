"""Prediction throughput of a trained run: batched and length-sorted, one input at a time, and
the training-time evaluation path, on the same inputs.

    python -m experiments.bench_predict --workdir workdirs/spa_rnn_bahdanau \
        --examples 512 --json results/bench_predict.json

A translation run is timed on the first `--examples` sentences of its eval split:
- `batched`: ``predictor.translate(sentences)`` (length-sorted batches of the run's
  ``decode.batch_size``, attention and alignments included), again without attention, and
  without attention in batches of each of `--batch_sizes`;
- `one_at_a_time`: ``predictor.translate([sentence], batch_size=1)`` per sentence;
- `eval_path`: ``TranslationEvaluator.translate``, the BLEU evaluation's decoding.
An image run is timed on its eval images, batched (the run's batch size) and one at a time.
Every mode runs once to compile, then `--repeats` timed times; the table gives the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Callable

import jax

import attn_research
from attn_research import predict
from attn_research.command_flags import argparse_type, at_least, existing_directory
from attn_research.data import image_sources
from attn_research.tasks.translation import TranslationEvaluator


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of `run` over `repeats` calls, after one call that compiles."""
    jax.block_until_ready(run())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _translation_modes(
    predictor: predict.TranslationPredictor, examples: int, batch_sizes: list[int]
) -> tuple:
    evaluator = TranslationEvaluator(predictor.config)
    sentences = evaluator._sources[:examples]  # pylint: disable=protected-access
    batched = lambda size: (
        lambda: predictor.translate(sentences, batch_size=size, with_attention=False)
    )
    modes = {
        "batched": lambda: predictor.translate(sentences),
        "batched, no attention": batched(None),
        **{f"batched by {size}, no attention": batched(size) for size in batch_sizes},
        "one_at_a_time": lambda: [
            predictor.translate([s], batch_size=1, with_attention=False) for s in sentences
        ],
        "eval_path": lambda: evaluator.translate(predictor.params, predictor.model, sentences),
    }
    return "sentences", len(sentences), modes


def _image_modes(predictor: predict.ImagePredictor, examples: int) -> tuple:
    data = predictor.config.data
    split = image_sources.open_split(data, data.eval_split)
    raw = [split[i]["image"] for i in range(min(examples, len(split)))]
    modes = {
        "batched": lambda: predictor.classify(raw),
        "one_at_a_time": lambda: [predictor.classify([x]) for x in raw],
    }
    return "images", len(raw), modes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, type=argparse_type(str, existing_directory))
    parser.add_argument("--examples", type=argparse_type(int, at_least(1)), default=512)
    parser.add_argument("--repeats", type=argparse_type(int, at_least(1)), default=3)
    parser.add_argument("--json", default="")
    parser.add_argument(
        "--batch_sizes", default="", help="Comma-separated batch sizes to time besides the run's."
    )
    args = parser.parse_args()
    predictor = attn_research.load(args.workdir)
    if isinstance(predictor, predict.TranslationPredictor):
        sizes = [int(size) for size in args.batch_sizes.split(",") if size]
        unit, count, modes = _translation_modes(predictor, args.examples, sizes)
    else:
        unit, count, modes = _image_modes(predictor, args.examples)
    rows = []
    for name, run in modes.items():
        seconds = _median_seconds(run, args.repeats)
        rows.append({"mode": name, "seconds": seconds, f"{unit}_per_sec": count / seconds})
    print(f"{args.workdir} (step {predictor.step}): {count} {unit}, {jax.devices()[0].platform}")
    print(f"| mode | seconds | {unit}/s |\n|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['seconds']:.2f} | {row[f'{unit}_per_sec']:.1f} |")
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {"workdir": args.workdir, "step": predictor.step, unit: count, "rows": rows},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
