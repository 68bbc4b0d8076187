"""Study: BLEU against source length on real text (the figure of Bahdanau et al. 2014).

The fixed-vector encoder-decoder (no attention) against the RNN with Bahdanau attention, the RNN
with Luong local-p, and Transformers with dot-product and local attention, on a TSV corpus of
short sentences (spa-eng) whose consecutive pairs are joined into pairs of 1-8 sentences
(``translate.py:join=8``: joined after splitting, so no test sentence sits inside a training
pair), with BLEU in source-length buckets of 10 words, 0-9 up to 50-59 (and 60+).

    python -m experiments.sweep \\
        "experiments/studies/long_sentences.py:small,path=../shared/data/spa-eng/spa.txt"
    python -m experiments.sweep \\
        "experiments/studies/long_sentences.py:full,path=../shared/data/spa-eng/spa.txt"

Args: ``path=FILE`` (required: the TSV corpus) and ``small`` (the config's ``small`` run of a
joined corpus, 1500 steps of 64 pairs, of the RNN without and with Bahdanau attention and of
both Transformers; one seed) or ``full`` (the default config, 6000 steps, every model, 3
seeds). ``experiments.results`` draws ``bleu_by_length.png`` in the
study's directory: BLEU per bucket, one line per model.

Luong local-p takes the options that learn, as in ``translation_kinds``: the config's
``luong_scales`` (the general score divided by sqrt(d), the position pre-activation by
sqrt(units)) and the half-window D = 16; with the paper's formulas its predicted centre
saturates early in training, which would measure a collapse, not the effect of length.
``luong_scales`` changes no other model's config.
"""

from experiments.studies.translation_kinds import LUONG_WINDOW
from experiments.study import Study, parse_variant

JOIN = 8
SMALL_GRID = [
    {"model": ["rnn"], "attention": ["none", "additive"]},
    {"model": ["transformer"], "attention": ["dot_product", "local"]},
]
FULL_GRID = [
    {"model": ["rnn"], "attention": ["none", "additive"]},
    {
        "model": ["rnn"],
        "attention": ["luong"],
        "score": ["general"],
        "positions": ["local_p"],
        "window": [LUONG_WINDOW],
    },
    {"model": ["transformer"], "attention": ["dot_product", "local"]},
]
BUCKETS = ("0-9", "10-19", "20-29", "30-39", "40-49", "50-59")


def get_study(arg: str | None = None) -> Study:
    small, path = parse_variant("long_sentences", arg)
    if not path:
        raise ValueError("long_sentences needs path=FILE, a TSV corpus such as spa-eng/spa.txt")
    return Study(
        name="long_sentences" + ("_small" if small else ""),
        config="experiments/configs/translate.py",
        fixed=",".join(
            (["small"] if small else []) + [f"data=tsv,path={path},join={JOIN}", "luong_scales"]
        ),
        grid=SMALL_GRID if small else FULL_GRID,
        seeds=[0] if small else [0, 1, 2],
        metrics=["eval/bleu", *(f"eval/bleu_len_{b}" for b in BUCKETS)],
    )
