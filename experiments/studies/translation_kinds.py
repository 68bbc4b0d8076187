"""Study: does attention help a translator, and which kind?

No attention (fixed-vector encoder-decoder) vs Bahdanau vs Luong (dot, general, concat,
local-m, local-p) RNN decoders, and Transformers with dot-product, additive and local
attention, measured by BLEU, BLEU by source length and alignment error (AER) on the embedded
English->Spanish-like corpus, or BLEU on a local TSV corpus such as spa-eng.

    python -m experiments.sweep experiments/studies/translation_kinds.py:small   # minutes
    python -m experiments.sweep experiments/studies/translation_kinds.py:full --parallel 1
    python -m experiments.sweep "experiments/studies/translation_kinds.py:full,path=../shared/data/spa-eng/spa.txt"

Args: ``small`` (the config's ``small`` run: 500 steps on 10k short pairs; one seed) or
``full`` (the default config, 3 seeds);
``path=FILE`` trains on that TSV corpus instead of the embedded one (no gold alignments there,
so no AER).

The Luong points use the config's ``luong_scales`` and the local variants a half-window of
LUONG_WINDOW source pieces: the choices at which they learn within the small run
(docs/studies.md).
"""

from experiments.study import Study, parse_variant

# Luong's local variants use the half-window D at which they learn here.
LUONG_WINDOW = 16
TRANSFORMER_ATTENTION = ("dot_product", "additive", "local")


def get_study(arg: str | None = None) -> Study:
    small, path = parse_variant("translation_kinds", arg)
    fixed = ",".join(
        (["small"] if small else [])
        + ["luong_scales"]
        + ([f"data=tsv,path={path}"] if path else [])
    )
    return Study(
        name="translation_kinds" + ("_small" if small else "") + ("_tsv" if path else ""),
        config="experiments/configs/translate.py",
        fixed=fixed,
        grid=[
            {"model": ["rnn"], "attention": ["none", "additive"]},
            {"model": ["rnn"], "attention": ["luong"], "score": ["dot", "general", "concat"]},
            {
                "model": ["rnn"],
                "attention": ["luong"],
                "score": ["general"],
                "positions": ["local_m", "local_p"],
                "window": [LUONG_WINDOW],
            },
            {"model": ["transformer"], "attention": list(TRANSFORMER_ATTENTION)},
        ],
        seeds=[0] if small else [0, 1, 2],
        metrics=["eval/bleu", "eval/aer", "eval/chrf"],
    )
