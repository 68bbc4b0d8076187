"""Where Luong local-p's predicted window centre lies, by source length.

    python -m experiments.centre_by_length --workdir W [--workdir W2 ...] [--json F]

Local-p (Luong et al. 2015) attends to the source pieces ``|j - p_t| <= D`` around a centre
``p_t = S sigmoid(v_p^T tanh(W_p h_t))`` that it predicts from the decoder state alone. The
evaluation logs the distribution of ``p_t / S`` over all rows; this splits it by the source's
length in words (the buckets of the run's ``config.decode.length_buckets``), to see whether the
centre leaves the word being translated on long sentences. It feeds the run's evaluation pairs
(those that fit its maximum lengths) through the newest checkpoint with the reference target
(teacher forcing) and prints, per bucket and over every row (target token) and head:
- the percentiles of ``p_t / S`` that the evaluation logs (``QUANTILES``);
- ``at_end``: the share of rows with ``p_t > S - 1``, the centre past the last piece (the
  source's EOS), where the position model saturates (``attention.scores.Centre``);
- ``off_diagonal``: the share of rows whose centre is more than ``D`` pieces from the diagonal
  ``S (t + 1/2) / T`` (target token t of T), so that the window misses the piece a monotone
  alignment would read. For a language pair of close word order (English–Spanish) the diagonal
  is a rough stand-in for the gold alignment, which the joined corpus lacks;
- ``end_of_off``: of those rows, the share whose centre is past the last piece (None if none
  is off the diagonal): whether the window leaves the diagonal by saturating.
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np

from attn_research import predict
from attn_research.data import tokenizer as tokenizer_lib
from attn_research.data import translation, translation_pipeline
from attn_research.evaluation import bleu
from attn_research.evaluation.attention_statistics import QUANTILES
from attn_research.tasks import translation_attention


def row_statistics(
    fractions_HT: np.ndarray, source_len: int, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pair's rows: ``p_t / S``, whether the centre is past the last piece, and whether it
    is more than ``window`` pieces from the diagonal, each flattened over ``[H, T]``.

    Args:
      fractions_HT: ``p_t / S`` of the pair's T target tokens (padding cut off), per head.
      source_len: S, the source's pieces, EOS included.
      window: D, local-p's half-window.
    """
    tokens = fractions_HT.shape[-1]
    centre_HT = fractions_HT * source_len
    diagonal_T = source_len * (np.arange(tokens) + 0.5) / tokens
    return (
        fractions_HT.ravel(),
        (centre_HT > source_len - 1).ravel(),
        (np.abs(centre_HT - diagonal_T) > window).ravel(),
    )


def summarize(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """Pooled `row_statistics` of a bucket's pairs: pair count, quantiles, the three shares."""
    fractions, at_end, off = (np.concatenate(column) for column in zip(*rows))
    return {
        "pairs": len(rows),
        "quantiles": [float(np.quantile(fractions, q)) for q in QUANTILES],
        "at_end": float(at_end.mean()),
        "off_diagonal": float(off.mean()),
        "end_of_off": float(at_end[off].mean()) if off.any() else None,
    }


def centre_by_length(workdir: str, batch_size: int = 64) -> dict:
    """``{"workdir", "step", "window", "by_length": {bucket: summarize(...)}, "all": ...}`` of
    the newest checkpoint in ``workdir`` on its evaluation pairs.

    Raises:
      ValueError: if the run's attention predicts no centre (not local-p), before computing.
    """
    predictor = predict.load(workdir)
    config = predictor.config
    arrays = translation_pipeline.encoded_split(config.data, config.data.eval_split)
    texts = translation.load_corpus(config.data)[config.data.eval_split].sources
    sources = [texts[i] for i in arrays["index"]]
    source_BS, target_in_BT = arrays["source"], arrays["target_in"]
    shapes = jax.eval_shape(
        predictor.model.attention_maps, predictor.params, source_BS[:1], target_in_BT[:1]
    )
    if not shapes or shapes[0].centre_fraction is None:
        raise ValueError(
            f"{workdir}: the run's attention predicts no window centre "
            f"(model {config.model.to_dict()}); only Luong local-p does."
        )
    window = predictor.model.spec.positions.half_width  # local-p's D
    rows = []
    for start in range(0, len(sources), batch_size):
        part = slice(start, start + batch_size)
        maps = translation_attention.teacher_forced_maps(
            predictor.model, predictor.params, source_BS[part], target_in_BT[part]
        )
        fractions_BHT = np.asarray(jax.device_get(maps[0].centre_fraction))
        source_lens = (source_BS[part] != tokenizer_lib.PAD_ID).sum(axis=1)
        target_lens = (arrays["target_out"][part] != tokenizer_lib.PAD_ID).sum(axis=1)
        for fractions_HT, s, t in zip(fractions_BHT, source_lens, target_lens):
            rows.append(row_statistics(fractions_HT[:, :t], int(s), window))
    buckets = bleu.buckets_by_length(sources, tuple(config.decode.length_buckets))
    return {
        "workdir": workdir,
        "step": predictor.step,
        "window": window,
        "by_length": {
            name: summarize([rows[i] for i in chosen]) for name, chosen in buckets.items()
        },
        "all": summarize(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, action="append", help="a run (repeatable)")
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args()
    results = [centre_by_length(w) for w in args.workdir]
    for result in results:
        print(f"{result['workdir']} (step {result['step']}, D = {result['window']})")
        names = " / ".join(f"q{round(q * 100)}" for q in QUANTILES)
        print(f"{'bucket':>8} {'pairs':>5}  p_t/S {names}  at_end  off_diagonal  end_of_off")
        for name, s in {**result["by_length"], "all": result["all"]}.items():
            quantiles = " / ".join(f"{q:.2f}" for q in s["quantiles"])
            end_of_off = "-" if s["end_of_off"] is None else f"{s['end_of_off']:.2f}"
            print(
                f"{name:>8} {s['pairs']:5d}  {quantiles:>{len(names) + 6}}"
                f"  {s['at_end']:6.2f}  {s['off_diagonal']:12.2f}  {end_of_off:>10}"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
