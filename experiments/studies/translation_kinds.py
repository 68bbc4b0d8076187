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

The Luong points use the config's ``luong_scales``: the dot and general scores divided by
sqrt(d) and local-p's position pre-activation by sqrt(units) (``attention.scores.General``,
``attention.positions.Centre``). Without these opt-in options the rows saturate early and
whether dot, general, local-m or local-p learn depends on the seed (docs/studies.md). The
local variants use the half-window D = 16 source pieces, at which they learn within the small
variant's 500 steps; at the config's D = 8 they learn more slowly (docs/studies.md).
"""

from experiments.study import Study, parse_variant

RNN_ATTENTION = ("none", "bahdanau", "luong_dot", "luong_general", "luong_concat")
# Luong's local variants, with the half-window D at which they learn here.
LUONG_LOCAL, LUONG_WINDOW = ("luong_local_m", "luong_local_p"), 16
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
            {"model": ["rnn"], "attention": list(RNN_ATTENTION)},
            {"model": ["rnn"], "attention": list(LUONG_LOCAL), "window": [LUONG_WINDOW]},
            {"model": ["transformer"], "attention": list(TRANSFORMER_ATTENTION)},
        ],
        seeds=[0] if small else [0, 1, 2],
        metrics=["eval/bleu", "eval/aer", "eval/chrf"],
    )
