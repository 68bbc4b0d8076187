r"""Translation: RNN and Transformer translators with any attention (task 'translate').

    python -m attn_research.main --config experiments/configs/translate.py --workdir /tmp/tr
    python -m attn_research.main --workdir /tmp/spa \
        --config experiments/configs/translate.py:data=tsv,path=/data/spa-eng/spa.txt

Args, comma-separated (``translate.py:model=transformer,attention=local,window=8,tiny``):

- model=rnn|transformer
- attention: a preset (``attention.resolve``): additive (the RNN's default; Bahdanau et al.
  2014), luong (Luong et al. 2015), dot_product (the Transformer's default), local; none: the
  RNN without attention. The Transformer uses it for its encoder self-, decoder self- and
  cross-attention (set one apart with --config.model.cross_attention=...).
- score, positions, window: the attention's options, e.g.
  ``attention=luong,score=general,positions=local_p,window=10``; unset: the preset's own.
- luong_scales: the opt-in scales of ``attention.scores`` (dot and general divided by
  sqrt(d), dot with a learned gain) and local-p's centre pre-activation divided by
  sqrt(units) (``attention.scores.Centre``); off: the papers' formulas.
- cell=gru|lstm (rnn); size=small|iwslt|base|big (transformer, ``TRANSFORMER_SIZES``)
- data=synthetic|tsv|parallel|tfds, path=FILE (tsv: "source<TAB>target" lines; parallel: a
  pattern like /data/{split}.{lang}), tfds=NAME, reverse (translate the other way)
- join=K: join runs of 1..K consecutive pairs of each split into one pair, after splitting
  (long sentences from short ones; ``data.translation``)
- guided: guided alignment training (Garg et al. 2019; ``tasks.guided_alignment``)
- aligner=U: an alignment head of U units beside the translator (``models.aligner``), which
  `guided` supervises instead of the attention, so that the translation is untouched;
  aligner_trains_encoder: its loss also trains the encoder (the translation changes);
  aligner_full_context: its query also reads the target words after the row (Garg et al. 2019)
- luong2015: Luong et al. 2015's training as far as this model allows (``_luong2015``)
- wmt14: WMT14 En->De through TFDS, Vaswani et al. 2017's recipe (``_wmt14``), for an
  accelerator
- small: a minutes-long run that still learns (the studies'); tiny: seconds (the tests')

Everything else is a --config override, e.g. ``--config.total_steps=20000``. What these runs
reach is measured in docs/translation.md.
"""

import ml_collections

from attn_research.attention import resolve
from attn_research.tasks import translation  # registers the task
from attn_research.train import default_config, parse_arg

# Guided alignment's weight of the attention's cross-entropy beside the translation loss
# without an aligner:
# Garg et al. 2019's 0.05 on one Transformer head; 1 for the RNN's single attention, which
# both translates and aligns (the joint cost of Chen et al. 2016).
GUIDED_WEIGHTS = {"rnn": 1.0, "transformer": 0.05}

# Transformer sizes: embed_dim, num_heads, layers (encoder and decoder each), mlp_dim, dropout.
TRANSFORMER_SIZES = {
    "small": (64, 4, 2, 256, 0.1),  # the CPU default
    "iwslt": (512, 4, 6, 1024, 0.3),  # fairseq's transformer_iwslt_de_en
    "base": (512, 8, 6, 2048, 0.1),  # Vaswani et al. 2017, Table 3
    "big": (1024, 16, 6, 4096, 0.3),  # the same; 0.3 is its En-De dropout
}
DEFAULT_ATTENTION = {"rnn": "additive", "transformer": "dot_product"}
# The dot score's learned gain starts here with luong_scales (docs/studies.md).
LUONG_DOT_GAIN_INIT = 2.0


def _attention(arg: ml_collections.ConfigDict) -> tuple[str | None, dict]:
    """The preset and its options that the args name."""
    name = arg.attention or DEFAULT_ATTENTION[arg.model]
    if name == "none":
        return None, {}
    options = {k: arg[k] for k in ("score", "positions", "window") if arg[k]}
    if arg.luong_scales:
        spec = resolve(name, options)
        if spec.score in ("dot", "general"):
            options["divide_by_sqrt_depth"] = True
        if spec.score == "dot":
            options.update(learned_gain=True, gain_init=LUONG_DOT_GAIN_INIT)
        if spec.positions.predicts_centre:
            options["divide_position_by_sqrt_units"] = True
    return name, options


def _rnn(arg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    attention, options = _attention(arg)
    model = ml_collections.ConfigDict()
    model.name = "rnn"
    model.attention = attention
    model.attention_options = options
    model.cell = arg.cell
    model.embed_dim = 16 if arg.tiny else 64
    model.hidden = 32 if arg.tiny else 128
    model.attention_units = 32 if arg.tiny else 128
    model.aligner_units = arg.aligner
    model.aligner_trains_encoder = arg.aligner_trains_encoder
    model.aligner_full_context = arg.aligner_full_context
    model.dropout_rate = 0.0
    return model


def _transformer(arg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    if arg.size not in TRANSFORMER_SIZES:
        raise ValueError(
            f"Config arg 'size': unknown {arg.size!r}; choose one of {tuple(TRANSFORMER_SIZES)}"
        )
    width, heads, layers, mlp, dropout = TRANSFORMER_SIZES[arg.size]
    if arg.tiny:
        width, heads, layers, mlp = 32, 2, 1, 64
    attention, options = _attention(arg)
    if attention is None:
        raise ValueError("Config arg 'attention': a Transformer cannot do without attention")
    model = ml_collections.ConfigDict()
    model.name = "transformer"
    model.embed_dim, model.num_heads, model.num_layers, model.mlp_dim = width, heads, layers, mlp
    for role in ("encoder_attention", "decoder_attention", "cross_attention"):
        model[role] = attention
        model[f"{role}_options"] = options
    model.share_embeddings = True
    model.tie_output = arg.size != "small"  # as the papers of the larger sizes
    model.position_embedding = "sinusoidal"
    model.max_len = 128
    model.remat = "dots"
    model.scan_unroll = 1  # layers per scanned-loop iteration
    model.aligner_units = arg.aligner
    model.aligner_trains_encoder = arg.aligner_trains_encoder
    model.aligner_full_context = arg.aligner_full_context
    # No dropout on the generated corpus (it does not overfit) nor in the tests' runs.
    model.dropout_rate = (
        0.0 if arg.tiny or (arg.data == "synthetic" and arg.size == "small") else dropout
    )
    return model


def _data(arg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    tiny, small, synthetic = arg.tiny, arg.small, arg.data == "synthetic"
    max_len = 32 if tiny else (40 if small else 80) if synthetic else (128 if arg.join > 1 else 48)
    data = ml_collections.ConfigDict()
    data.name = arg.data
    data.path = arg.path
    data.tfds_name = arg.tfds
    data.data_dir = ""
    data.source_lang = data.target_lang = ""
    data.reverse = arg.reverse
    # the generated corpus
    data.seed = 0
    data.num_train = 400 if tiny else (10_000 if small else 40_000)
    data.num_validation = data.num_test = 64 if tiny else 1000
    data.max_clauses = 2 if tiny or small else 6
    # corpora without validation / test splits
    data.split_seed = 0
    data.validation_fraction = data.test_fraction = 0.02
    # runs of join_min..join_max consecutive pairs joined into one, per split
    data.join_min, data.join_max, data.join_seed = 1, arg.join, 0
    # a tokenizer file, or one trained on the train split and cached in cache_dir (default:
    # the workdir)
    data.vocab_size = 128 if tiny else (640 if synthetic else 8000)
    data.tokenizer = data.cache_dir = ""
    data.max_source_len = data.max_target_len = max_len
    # train batches bucketed by length (upper bounds in pieces; () pads to the maximum)
    data.bucket_bounds = (16, 32, 48, 64, 96)
    data.max_train_examples = 0
    data.eval_examples = 64 if tiny else 0
    data.eval_split = "validation"
    return data


def _decode(arg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    joined = arg.join > 1 and not arg.tiny
    decode = ml_collections.ConfigDict()
    decode.beam_size, decode.alpha = 4, 0.6
    decode.max_len_ratio, decode.max_len_offset = 1.5, 10
    decode.min_len = 1  # EOS barred from the first step, as fairseq's --min-len 1
    decode.batch_size = 16 if arg.tiny else 64
    decode.examples = 32 if arg.tiny else (300 if arg.small and not joined else 1000)
    decode.aer_examples = 32 if arg.tiny else (200 if arg.small else 300)
    decode.num_figures = 1 if arg.tiny else 3
    decode.alignment_layer = -1
    decode.log_examples = 3
    # a hand-aligned gold set scored at each evaluation (tasks.translation_gold): all three
    # files, or none
    decode.gold_source = decode.gold_target = decode.gold_links = ""
    decode.gold_format = "pharaoh"
    decode.gold_reverse = False
    decode.gold_method = "argmax_target"  # the read-out of eval/aer_gold
    # BLEU by source length: bucket lower edges in words
    if joined:
        decode.length_buckets = (0, 10, 20, 30, 40, 50, 60)
    elif arg.data == "synthetic":
        decode.length_buckets = (0, 10, 20, 30, 40, 50)
    else:
        decode.length_buckets = (0, 5, 10, 15, 20)
    return decode


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The translation config; see the module docstring for the args."""
    arg = parse_arg(
        arg,
        model="rnn",
        attention="",
        score="",
        positions="",
        window=0,
        luong_scales=False,
        cell="gru",
        size="small",
        data="synthetic",
        path="",
        tfds="",
        reverse=False,
        join=1,
        guided=False,
        aligner=0,
        aligner_trains_encoder=False,
        aligner_full_context=False,
        luong2015=False,
        wmt14=False,
        small=False,
        tiny=False,
    )
    if arg.wmt14:
        arg.update(model="transformer", data="tfds", tfds="wmt14_translate/de-en")
        arg.size = "base" if arg.size == "small" else arg.size
    models = {"rnn": _rnn, "transformer": _transformer}
    if arg.model not in models:
        raise ValueError(f"Config arg 'model': unknown {arg.model!r}; choose rnn or transformer")
    joined = arg.join > 1 and not arg.tiny
    config = default_config()
    config.task = translation.NAME
    config.model = models[arg.model](arg)
    config.data = _data(arg)
    config.decode = _decode(arg)
    config.loss = ml_collections.ConfigDict()
    # label smoothing (Szegedy et al. 2016) of the Transformer papers; none for the RNNs
    config.loss.label_smoothing = 0.1 if arg.model == "transformer" and not arg.tiny else 0.0
    # The aligner learns from this loss alone, which Adam's steps do not scale with: weight 1.
    weight = 1.0 if arg.aligner else GUIDED_WEIGHTS[arg.model]
    config.loss.alignment_weight = weight if arg.guided else 0.0
    config.loss.alignment_layer = -1  # the supervised map: the last layer's, or the aligner
    config.loss.alignment_heads = 1  # its first heads, as fairseq's --alignment-heads
    config.loss.alignment_shift = 0  # 1: supervise the row where the word is the input
    config.batch_size = 16 if arg.tiny else (64 if joined else 32)
    if arg.tiny:
        config.total_steps = 30
    elif arg.small:
        config.total_steps = 1500 if joined else 500
    else:
        config.total_steps = 6000 if joined else 2000
    every = 30 if arg.tiny else (config.total_steps if arg.small else 1000)
    config.eval_every_steps = config.checkpoint_every_steps = every
    config.log_every_steps = 10 if arg.tiny else 50
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 3e-3 if arg.tiny else 2e-3
    config.optimizer.warmup_steps = 5 if arg.tiny else 100
    config.optimizer.grad_clip_norm = 1.0
    if arg.wmt14:
        _wmt14(config)
    if arg.luong2015:
        _luong2015(config)
    return config


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
