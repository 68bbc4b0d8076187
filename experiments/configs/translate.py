r"""Translation: RNN and Transformer translators with every attention kind (task 'translate').

    python -m attn_research.main --config experiments/configs/translate.py --workdir /tmp/tr

trains RNN+Bahdanau on the embedded English -> Spanish-like corpus (see RESULTS below for what
it reaches on a 2-core CPU). Args (comma-separated, `translate.py:model=transformer,tiny`):

- model=rnn|transformer
- attention=bahdanau|luong_dot|luong_general|luong_concat|luong_local_m|luong_local_p|none
  (rnn) or dot_product|additive|local (transformer: encoder self-, decoder self- and
  cross-attention; set them apart with --config.model.cross_attention=... etc.);
  window=D (local kinds; luong local half-window)
- cell=gru|lstm (rnn)
- size=small|iwslt|base|big (transformer; ``TRANSFORMER_SIZES``)
- wmt14: the WMT14 En->De recipe of Vaswani et al. 2017 through TFDS (Transformer base unless
  size= says otherwise), for an accelerator; not run here (see ``_wmt14``)
- luong_scales: Luong's dot and general scores divided by sqrt(d) (dot with a learned gain) and
  local-p's position pre-activation by sqrt(units) (`attention.scores.General`,
  `attention.positions.Centre`:
  without them the softmax and p_t saturate early in training and whether a run learns depends
  on its seed); off by default: the paper's formulas
- data=synthetic|tsv|parallel|tfds, path=FILE (tsv: "source<TAB>target" lines; parallel: a
  pattern like /data/{split}.{lang}), tfds=NAME (e.g. wmt14_translate/de-en), reverse
  (translate the second column / target language into the first)
- luong2015: Luong et al. 2015's training, as close as this model allows (see `_luong2015`):
  plain SGD at learning rate 1.0, gradients rescaled to norm 5, every parameter uniform in
  [-0.1, 0.1], batches of 128, 12 epochs with the rate halved after epoch 8 and then after
  every epoch, dropout 0.2, LSTM cells. Their best model:
  `translate.py:luong2015,attention=luong_local_p,window=10` (D = 10); not run here
- join=K: join runs of 1..K consecutive pairs of each split into one pair (k uniform, seeded by
  `data.join_seed`; `data.join_min` = `data.join_max` = k for a fixed k), after splitting, so
  that no test sentence sits inside a training pair; sequences up to 128 pieces and BLEU buckets
  of 10 words up to 60+ (spa-eng's 5-15-word sentences become 5-80-word pairs). Batches of 64
  and 6000 steps (about 15 epochs of joined spa-eng), 1500 with `small`: after 500 steps of 32
  every beam output was still empty
- guided: guided alignment training (Garg et al. 2019; `tasks.guided_alignment`): the
  decoder's attention (Transformer: the first head of the last layer's cross-attention) also
  learns the train split's word links from eflomal, run once and cached beside the tokenizer
  (`data.word_aligner`); `config.loss.alignment_weight` (``GUIDED_WEIGHTS``),
  `alignment_layer`, `alignment_heads`. docs/guided_alignment.md
- small: a minutes-long run that still learns (the studies' small variant): 500 steps; on
  the embedded corpus 10k pairs of 1-2 clauses (up to ~25 words)
- tiny: a seconds-long run on a small corpus (the tests' variant)

Everything else is a --config override, e.g. `--config.data.vocab_size=8000
--config.data.max_source_len=64 --config.total_steps=20000 --config.decode.beam_size=4
--config.data.source_lang=en --config.data.data_dir=/data/tfds`. spa-eng:

    python -m attn_research.main --workdir /tmp/spa \
        --config experiments/configs/translate.py:data=tsv,path=/work/shared/data/spa-eng/spa.txt

What these runs reach on the 2-core CPU is measured in the README (Translation).
"""

import ml_collections

from attn_research.attention import presets
from attn_research.tasks import translation  # registers the task
from attn_research.train import default_config, parse_arg

RNN_ATTENTIONS = {
    "bahdanau": ("bahdanau", {}),
    "none": ("none", {}),
    **{f"luong_{s}": ("luong", {"score": s}) for s in ("dot", "general", "concat")},
    "luong_local_m": ("luong", {"score": "general", "align": "local_m"}),
    "luong_local_p": ("luong", {"score": "general", "align": "local_p"}),
}
# The opt-in scales that keep Luong's softmax and local-p's centre from saturating; each
# attention gets those of its axes that take them.
LUONG_SCALES = {"divide_by_sqrt_depth": True, "divide_position_by_sqrt_units": True}


# The dot score's learned gain starts at 2: the small study's seed 1 stays under BLEU 90
# starting at 1 and saturates starting at 4 (README, Studies).
LUONG_DOT_GAIN_INIT = 2.0


def _luong_scales(luong: dict) -> dict:
    """Of LUONG_SCALES, those that the Luong attention ``luong`` (score, align) takes; the dot
    score, which has no weights to sharpen its softened logits with, also learns a gain
    (``scores.Dot.learned_gain``, as TF's ``LuongAttention(scale=True)``), from
    LUONG_DOT_GAIN_INIT."""
    taken = presets.applicable("luong", LUONG_SCALES, luong)
    options = {key: value for key, value in taken.items() if key in LUONG_SCALES}
    if luong.get("score") == "dot":
        options.update(learned_gain=True, gain_init=LUONG_DOT_GAIN_INIT)
    return options


# Guided alignment's weight λ of the attention's cross-entropy beside the translation loss.
# Transformer: Garg et al. 2019's λ = 0.05 (with fairseq's loss summed over tokens, a per-token
# mean here), on one head of many, leaving the other heads free. RNN: its single attention both
# translates and aligns, and eflomal's links are the alignment it should learn anyway, so the two
# losses are weighed on a par (the joint cost of Chen et al. 2016).
GUIDED_WEIGHTS = {"rnn": 1.0, "transformer": 0.05}

# Transformer sizes: embed_dim, num_heads, layers (encoder and decoder each), mlp_dim, dropout.
TRANSFORMER_SIZES = {
    "small": (64, 4, 2, 256, 0.1),  # the CPU default (no dropout on the generated corpus)
    "iwslt": (512, 4, 6, 1024, 0.3),  # fairseq's transformer_iwslt_de_en
    "base": (512, 8, 6, 2048, 0.1),  # Vaswani et al. 2017, Table 3
    "big": (1024, 16, 6, 4096, 0.3),  # the same; 0.3 is its En-De dropout
}


def _data(arg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    tiny, small = arg.tiny, arg.small
    synthetic_len = 40 if small else 80
    real_len = 128 if arg.join > 1 else 48
    return ml_collections.ConfigDict(
        {
            "name": arg.data,
            "path": arg.path,
            "tfds_name": arg.tfds,
            "data_dir": "",
            "source_lang": "",
            "target_lang": "",
            "reverse": arg.reverse,
            # synthetic corpus
            "seed": 0,
            "num_train": 400 if tiny else (10_000 if small else 40_000),
            "num_validation": 64 if tiny else 1000,
            "num_test": 64 if tiny else 1000,
            "max_clauses": 2 if tiny or small else 6,
            # corpora without validation / test splits
            "split_seed": 0,
            "validation_fraction": 0.02,
            "test_fraction": 0.02,
            # runs of join_min..join_max consecutive pairs joined into one, per split
            "join_min": 1,
            "join_max": arg.join,
            "join_seed": 0,
            # tokenizer: a file, or trained on the train split and cached in cache_dir
            # (default: the run's workdir, beside the checkpoints that use it)
            "vocab_size": 128 if tiny else (640 if arg.data == "synthetic" else 8000),
            "tokenizer": "",
            "cache_dir": "",
            "max_source_len": 32
            if tiny
            else (synthetic_len if arg.data == "synthetic" else real_len),
            "max_target_len": 32
            if tiny
            else (synthetic_len if arg.data == "synthetic" else real_len),
            # train batches bucketed by length: upper lengths in pieces (those at or over the
            # longest allowed length are dropped; () pads every batch to the maximum lengths)
            "bucket_bounds": (16, 32, 48, 64, 96),
            "max_train_examples": 0,
            "eval_examples": 0 if not tiny else 64,
            "eval_split": "validation",
        }
    )


def _model(arg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    tiny = arg.tiny
    if arg.model == "rnn":
        if arg.attention not in RNN_ATTENTIONS:
            raise ValueError(
                f"Config arg 'attention': {arg.attention!r} is not an RNN attention; "
                f"choose one of {sorted(RNN_ATTENTIONS)}"
            )
        attention, luong = RNN_ATTENTIONS[arg.attention]
        return ml_collections.ConfigDict(
            {
                "name": "rnn",
                "attention": attention,
                "cell": arg.cell,
                "embed_dim": 16 if tiny else 64,
                "hidden": 32 if tiny else 128,
                "attention_units": 32 if tiny else 128,
                "score": luong.get("score", "dot"),
                "align": luong.get("align", "global"),
                "window": arg.window,
                "attention_options": _luong_scales(luong) if arg.luong_scales and luong else {},
                "dropout_rate": 0.0,
            }
        )
    if arg.model == "transformer":
        kind = "dot_product" if arg.attention == "bahdanau" else arg.attention
        if arg.size not in TRANSFORMER_SIZES:
            raise ValueError(
                f"Config arg 'size': unknown {arg.size!r}; choose one of {tuple(TRANSFORMER_SIZES)}"
            )
        width, heads, layers, mlp, dropout = TRANSFORMER_SIZES[arg.size]
        if tiny:
            width, heads, layers, mlp = 32, 2, 1, 64
        if tiny or (arg.data == "synthetic" and arg.size == "small"):
            dropout = 0.0
        return ml_collections.ConfigDict(
            {
                "name": "transformer",
                "embed_dim": width,
                "num_heads": heads,
                "num_layers": layers,
                "mlp_dim": mlp,
                "encoder_attention": kind,
                "decoder_attention": kind,
                "cross_attention": kind,
                "window": arg.window,
                "share_embeddings": True,
                "tie_output": arg.size != "small",  # as the papers of the larger sizes
                "position_embedding": "sinusoidal",
                "max_len": 128,
                "remat": "dots",
                # Layers per scanned-loop iteration; num_layers unrolls the loop: about 5% faster
                # train steps on CPU, at a compile time that grows with depth.
                "scan_unroll": 1,
                "dropout_rate": dropout,
            }
        )
    raise ValueError(f"Config arg 'model': unknown {arg.model!r}; choose rnn or transformer")


def _luong2015(config: ml_collections.ConfigDict) -> None:
    """Luong, Pham & Manning 2015's training (their section 4.1), in place.

    What differs, as the model is not theirs: one bidirectional LSTM layer of `model.hidden`
    units encodes the source (theirs: 4 unidirectional layers of 1000 units over the reversed
    source, and 4 decoder layers), sentencepiece pieces replace their 50k-word vocabularies,
    and the key projection ``W_m h_s`` (`rnn_translator`) maps the 2H-wide encoder states to
    the decoder's H. Durations are epochs, resolved at run time (`train.durations`).
    """
    config.batch_size = 128
    config.init_uniform = 0.1
    config.total_steps, config.total_epochs = None, 12.0
    opt = config.optimizer
    opt.name, opt.learning_rate, opt.momentum = "sgd", 1.0, 0.0
    opt.warmup_steps, opt.grad_clip_norm = 0, 5.0
    opt.schedule, opt.halve_after_epochs, opt.halve_every_epochs = "halving", 8.0, 1.0
    if config.model.name == "rnn":
        config.model.cell, config.model.dropout_rate = "lstm", 0.2


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The translation config; see the module docstring for the args."""
    arg = parse_arg(
        arg,
        model="rnn",
        attention="bahdanau",
        window=8,
        cell="gru",
        luong_scales=False,
        luong2015=False,
        data="synthetic",
        path="",
        tfds="",
        reverse=False,
        size="small",
        join=1,
        guided=False,
        wmt14=False,
        small=False,
        tiny=False,
    )
    if arg.wmt14:
        arg.update(model="transformer", data="tfds", tfds="wmt14_translate/de-en")
        arg.size = "base" if arg.size == "small" else arg.size
    config = default_config()
    config.task = translation.NAME
    config.model = _model(arg)
    config.data = _data(arg)
    # Label smoothing (Szegedy et al. 2016) of the Transformer papers; 0 for the RNNs of
    # Bahdanau et al. and Luong et al., and for the tests' tiny runs.
    smoothing = 0.1 if arg.model == "transformer" and not arg.tiny else 0.0
    config.loss = ml_collections.ConfigDict(
        {
            "label_smoothing": smoothing,
            # Guided alignment (`tasks.guided_alignment`): off at weight 0; `guided` turns it on.
            "alignment_weight": GUIDED_WEIGHTS[arg.model] if arg.guided else 0.0,
            "alignment_layer": -1,  # the layer whose AER the evaluation reports
            "alignment_heads": 1,  # the first head, as fairseq's default --alignment-heads
        }
    )
    config.decode = ml_collections.ConfigDict(
        {
            "beam_size": 4,
            "alpha": 0.6,
            "max_len_ratio": 1.5,
            "max_len_offset": 10,
            # EOS barred from the first step, as fairseq's --min-len 1: no empty translations.
            "min_len": 1,
            "batch_size": 64 if not arg.tiny else 16,
            "examples": 1000 if not arg.tiny else 32,
            "aer_examples": 300 if not arg.tiny else 32,
            "num_figures": 3 if not arg.tiny else 1,
            "alignment_layer": -1,
            "log_examples": 3,
            # A hand-aligned gold set scored at each evaluation (tasks.translation_gold): the
            # three files together, or none.
            "gold_source": "",
            "gold_target": "",
            "gold_links": "",
            "gold_format": "pharaoh",
            "gold_reverse": False,
            # BLEU by source length: bucket lower edges in words (corpora of short sentences such
            # as spa-eng, mostly under 15 words, get finer buckets).
            "length_buckets": (
                (0, 10, 20, 30, 40, 50, 60)
                if arg.join > 1
                else ((0, 10, 20, 30, 40, 50) if arg.data == "synthetic" else (0, 5, 10, 15, 20))
            ),
        }
    )
    config.batch_size = 16 if arg.tiny else 32
    config.total_steps = 30 if arg.tiny else 2000
    config.eval_every_steps = 30 if arg.tiny else 1000
    config.checkpoint_every_steps = 30 if arg.tiny else 1000
    config.log_every_steps = 10 if arg.tiny else 50
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 3e-3 if arg.tiny else 2e-3
    config.optimizer.warmup_steps = 5 if arg.tiny else 100
    config.optimizer.grad_clip_norm = 1.0
    joined = arg.join > 1 and not arg.tiny
    if joined:
        config.batch_size, config.total_steps = 64, 6000
    if arg.small:
        steps = 1500 if joined else 500
        config.total_steps = config.eval_every_steps = config.checkpoint_every_steps = steps
        config.decode.examples, config.decode.aer_examples = 300, 200
    if joined:
        config.decode.examples = 1000  # every joined validation pair: the 40+ buckets are small
    if arg.wmt14:
        _wmt14(config)
    if arg.luong2015:
        _luong2015(config)
    return config


def _wmt14(config: ml_collections.ConfigDict) -> None:
    """WMT14 En->De through TFDS (``wmt14_translate/de-en``), for an accelerator; not run here.

    The recipe of Vaswani et al. 2017 as far as this trainer has it: Adam (0.9, 0.98, 1e-9),
    inverse-square-root schedule after 4000 warm-up steps at a peak of d^-0.5 * 4000^-0.5,
    100k steps (base), a shared 32k sentencepiece vocabulary with tied embeddings, beam 4 and
    alpha 0.6, label smoothing 0.1. It differs in its batches (sentences, not 25k tokens) and in
    evaluating sacrebleu on TFDS's validation/test splits. Published BLEU on
    newstest2014: 27.3 (base), 28.4 (big).
    """
    config.data.source_lang, config.data.target_lang = "en", "de"
    config.data.vocab_size = 32_000
    config.data.max_source_len = config.data.max_target_len = 128
    config.model.max_len = 256
    config.batch_size = 512
    config.total_steps = 100_000
    config.eval_every_steps = config.checkpoint_every_steps = 5000
    config.log_every_steps = 100
    opt = config.optimizer
    opt.name, opt.b2, opt.eps, opt.grad_clip_norm = "adam", 0.98, 1e-9, 0.0
    opt.schedule, opt.warmup_steps = "inverse_sqrt", 4000
    opt.learning_rate = config.model.embed_dim**-0.5 * 4000**-0.5
    config.decode.examples = 3003  # newstest2014's sentences
    config.decode.length_buckets = (0, 10, 20, 30, 40, 50)
