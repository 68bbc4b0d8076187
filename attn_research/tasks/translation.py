"""The translation task: RNN or Transformer translators on any parallel corpus.

Config (``experiments/configs/translate.py``): ``model`` (``name`` 'rnn' | 'transformer' and
the translator's fields), ``data`` (corpus, tokenizer, lengths, buckets, ``eval_split``),
``loss`` (label smoothing; guided alignment, off at ``alignment_weight`` 0, on the rows
``alignment_shift`` steps later), ``decode`` (beam
search, lengths, what each evaluation decodes, aligns and draws, and a gold set).

Each evaluation reports sacrebleu BLEU and chrF, BLEU by source length, the AER of the
teacher-forced attention where there are gold alignments, and the attention's row statistics;
it writes translations and figures into the workdir (docs/translation.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from attn_research import tasks
from attn_research.data import tokenizer as tokenizer_lib
from attn_research.data import translation, translation_pipeline
from attn_research.evaluation import alignment as alignment_lib
from attn_research.evaluation import alignment_figures, bleu, explorer
from attn_research.evaluation.attention_statistics import AttentionStatistics
from attn_research.models import fields, rnn_translator, transformer_translator
from attn_research.models.translator import TranslatorFamily
from attn_research.tasks import (
    guided_alignment,
    translation_attention,
    translation_decoding,
    translation_gold,
)

NAME = "translate"
# Each family's module (``models.translator.TranslatorFamily``) and model class.
FAMILIES: dict[str, tuple[TranslatorFamily, type[nn.Module]]] = {
    "rnn": (rnn_translator, rnn_translator.RnnTranslator),
    "transformer": (transformer_translator, transformer_translator.TransformerTranslator),
}


class TranslationTask(tasks.Task):
    """Sequence-to-sequence translation: teacher-forced cross-entropy per target token."""

    config_keys = ("model", "data", "decode", "loss")

    def use_workdir(self, config: ml_collections.ConfigDict, workdir: str) -> None:
        """A tokenizer trained here is kept in the workdir, beside the checkpoints it belongs
        to, unless `data.tokenizer` names one or `data.cache_dir` is set."""
        if not config.data.tokenizer and not config.data.cache_dir:
            config.data.cache_dir = workdir

    def validate(self, config: ml_collections.ConfigDict) -> None:
        model = self.make_model(config)  # the model checks its own fields
        if not 0.0 <= config.loss.label_smoothing < 1.0:
            raise ValueError(
                f"config.loss.label_smoothing: must be in [0, 1), got {config.loss.label_smoothing}"
            )
        longest = max(config.data.max_source_len, config.data.max_target_len)
        if model.length_limit is not None and model.length_limit < longest:
            raise ValueError(
                f"config.model.max_len: {model.length_limit} is shorter than the longest "
                f"sequence ({longest})"
            )
        for path in (
            "data.vocab_size",
            "data.max_source_len",
            "data.max_target_len",
            "decode.beam_size",
            "decode.batch_size",
        ):
            section, key = path.split(".")
            if config[section][key] < 1:
                raise ValueError(f"config.{path}: must be >= 1, got {config[section][key]}")
        bounds = tuple(config.data.bucket_bounds)
        if any(not isinstance(b, int) or b < 1 for b in bounds) or list(bounds) != sorted(
            set(bounds)
        ):
            raise ValueError(
                f"config.data.bucket_bounds: want strictly ascending positive ints, got {bounds}"
            )
        if config.loss.alignment_weight < 0:
            raise ValueError(
                f"config.loss.alignment_weight: must be >= 0, got {config.loss.alignment_weight}"
            )
        if config.loss.alignment_shift not in (0, 1):
            raise ValueError(
                "config.loss.alignment_shift: 0 (the row that predicts a word) or 1 (the row "
                f"where it is the decoder's input), got {config.loss.alignment_shift}"
            )
        heads_by_map = self._map_heads(model, config)
        if config.loss.alignment_weight > 0:
            self._check_guided(heads_by_map, config)
        bleu.check_edges(config.decode.length_buckets)
        self._check_alignment_layer(heads_by_map, config)
        if config.data.eval_split not in translation.SPLITS:
            raise ValueError(
                f"config.data.eval_split: unknown {config.data.eval_split!r}; "
                f"choose one of {translation.SPLITS}"
            )
        translation_gold.check(config.decode)  # before the tokenizer is trained
        translation.load_corpus(config.data)  # raises ValueError naming the bad input
        pairs = len(translation_pipeline.encoded_split(config.data, "train")["index"])
        if pairs < config.batch_size:
            raise ValueError(
                f"config.batch_size: {config.batch_size} is more than the {pairs} "
                f"train pairs that fit the maximum lengths"
            )
        # Its pairs fit the model's length limit (the tokenizer exists now).
        translation_gold.load(config.decode, translation_pipeline.get_tokenizer(config.data), model)

    def _map_heads(self, model: nn.Module, config: ml_collections.ConfigDict) -> dict[str, int]:
        """``{name: heads}`` of the model's attention maps, from shapes alone (nothing is
        computed); none for a model without attention."""
        if not translation_attention.has_attention(config):
            return {}
        abstract = jax.eval_shape(
            lambda rng: self.init_params(model, rng, config), jax.random.key(0)
        )
        source = jnp.ones((1, config.data.max_source_len), jnp.int32)
        return translation_attention.map_heads(model, abstract, source)

    def _check_alignment_layer(
        self, heads_by_map: dict[str, int], config: ml_collections.ConfigDict
    ) -> None:
        """``config.decode.alignment_layer`` names one of the maps `heads_by_map`; a model
        without attention has none to name."""
        if not heads_by_map:
            return
        names = list(heads_by_map)
        layer = config.decode.alignment_layer
        if not -len(names) <= layer < len(names):
            raise ValueError(
                f"config.decode.alignment_layer: {layer} names none of the model's "
                f"{len(names)} attention maps {names}; choose -{len(names)}.."
                f"{len(names) - 1} (-1: the last)"
            )

    def _check_guided(
        self, heads_by_map: dict[str, int], config: ml_collections.ConfigDict
    ) -> None:
        """The supervised map and heads are among `heads_by_map`."""
        heads = list(heads_by_map.values())
        if not heads:
            raise ValueError(
                "config.loss.alignment_weight: the model has no attention to supervise "
                f"(config.model.attention={config.model.get('attention')!r})"
            )
        layer = config.loss.alignment_layer
        if not -len(heads) <= layer < len(heads):
            raise ValueError(
                f"config.loss.alignment_layer: {layer} is not one of the model's "
                f"{len(heads)} attention maps (its decoder layers, then its aligner; "
                f"0 .. {len(heads) - 1}, or negative from the end)"
            )
        if not 1 <= config.loss.alignment_heads <= heads[layer]:
            raise ValueError(
                f"config.loss.alignment_heads: want 1 .. {heads[layer]} (the heads of map "
                f"{layer}), got {config.loss.alignment_heads}"
            )

    def make_model(self, config: ml_collections.ConfigDict) -> nn.Module:
        name = config.model.get("name")
        if name not in FAMILIES:
            raise ValueError(
                f"config.model.name: unknown {name!r}; choose one of {tuple(FAMILIES)}"
            )
        return fields.build(
            FAMILIES[name][1],
            config.model.to_dict(),
            vocab_size=config.data.vocab_size,
            dtype=jnp.dtype(config.dtype),
        )

    def init_params(self, model, rng, config):
        source = jnp.ones((1, config.data.max_source_len), jnp.int32)
        target = jnp.ones((1, config.data.max_target_len), jnp.int32)
        return model.init(rng, source, target)["params"]

    def num_train_examples(self, config: ml_collections.ConfigDict) -> int:
        return len(translation_pipeline.encoded_split(config.data, "train")["index"])

    def train_data(self, config, *, batch_size, process_index, process_count):
        return translation_pipeline.train_iterator(
            config.data,
            config.seed,
            batch_size,
            process_index,
            process_count,
            alignment=config.loss.alignment_weight > 0,
        )

    def eval_data(self, config, *, batch_size, process_index, process_count):
        return translation_pipeline.eval_batches(
            config.data, config.data.eval_split, batch_size, process_index, process_count
        )

    def loss(self, params, batch, rng, model, train, config):
        """Per-token cross-entropy against targets smoothed by ε (Szegedy et al. 2016),
        ``q = (1 - ε) onehot(y) + ε / V``, plus in training λ = ``alignment_weight`` times the
        guided-alignment loss. Metrics: ``nll`` (unsmoothed), ``token_accuracy``,
        ``alignment_loss``."""
        guided = train and config.loss.alignment_weight > 0
        rngs = {"dropout": rng}
        if guided:
            logits_BTV, weights_MBHTS = FAMILIES[config.model.name][0].logits_and_attention(
                model, params, batch["source"], batch["target_in"], train, rngs
            )
        else:
            logits_BTV = model.apply(
                {"params": params}, batch["source"], batch["target_in"], train, rngs=rngs
            )
        labels_BT = batch["target_out"]
        weights_BT = (labels_BT != tokenizer_lib.PAD_ID).astype(jnp.float32)
        tokens = jnp.maximum(weights_BT.sum(), 1.0)
        mean = lambda per_token_BT: jnp.sum(per_token_BT * weights_BT) / tokens
        nll_BT = optax.softmax_cross_entropy_with_integer_labels(logits_BTV, labels_BT)
        accuracy = jnp.sum((jnp.argmax(logits_BTV, -1) == labels_BT) * weights_BT) / tokens
        metrics = {"token_accuracy": accuracy, "nll": mean(nll_BT), "denominator": weights_BT.sum()}
        smoothing = config.loss.label_smoothing
        if not smoothing:
            loss = mean(nll_BT)
        else:
            targets_BTV = optax.smooth_labels(
                jax.nn.one_hot(labels_BT, logits_BTV.shape[-1]), smoothing
            )
            loss = mean(optax.softmax_cross_entropy(logits_BTV, targets_BTV))
        if guided:
            attention_BTS = guided_alignment.supervised_attention(
                weights_MBHTS, config.loss.alignment_layer, config.loss.alignment_heads
            )
            metrics["alignment_loss"] = guided_alignment.alignment_loss(
                attention_BTS,
                guided_alignment.shifted(batch["alignment"], config.loss.alignment_shift),
            )
            loss = loss + config.loss.alignment_weight * metrics["alignment_loss"]
        return loss, metrics

    def evaluators(self, config: ml_collections.ConfigDict):
        return (TranslationEvaluator(config),)

    def metric_signatures(self, config: ml_collections.ConfigDict) -> dict[str, str]:
        del config
        return {"eval/bleu": bleu.signature(), "eval/chrf": bleu.signature("chrf")}


class TranslationEvaluator:
    """BLEU, chrF, BLEU by length, AER, example translations and figures (see module doc)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self._config = config
        self._family = FAMILIES[config.model.name][0]
        self._tokenizer = translation_pipeline.get_tokenizer(config.data)
        split = translation.load_corpus(config.data)[config.data.eval_split]
        n = min(len(split), config.decode.examples)
        self._sources, self._references = list(split.sources[:n]), list(split.targets[:n])
        self._split = split
        self._decoders = translation_decoding.Decoders(self._family, config.decode)
        self._gold = translation_gold.load(
            config.decode, self._tokenizer, TranslationTask().make_model(config)
        )

    def translate(self, params, model: nn.Module, sources: list[str]) -> list[str]:
        """Detokenized translations of `sources`, decoded in length buckets."""
        ids = translation_pipeline.encode_sources(
            self._tokenizer, sources, self._config.data.max_source_len
        )
        return [self._tokenizer.decode(row) for row in self._decoders(model, params, ids)]

    def _alignments(self, params, model: nn.Module) -> tuple[dict, list]:
        """AER metrics, and of the first pairs (for the figures) the source and target words,
        the word-level attention the AER reads and the explorer's views."""
        decode = self._config.decode
        arrays = translation_pipeline.encoded_split(self._config.data, self._config.data.eval_split)
        n = min(len(arrays["index"]), max(decode.aer_examples, decode.num_figures))
        if n == 0 or not translation_attention.has_attention(self._config):
            return {}, []
        shown = min(n, decode.num_figures)
        averages, shown_heads, statistics = None, None, None
        for start in range(0, n, decode.batch_size):
            part = slice(start, min(start + decode.batch_size, n))
            source, target_in = arrays["source"][part], arrays["target_in"][part]
            attention = jax.device_get(
                translation_attention.teacher_forced_maps(model, params, source, target_in)
            )
            statistics = statistics or [AttentionStatistics() for _ in attention]
            averages = averages or [[] for _ in attention]
            shown_heads = shown_heads or [[] for _ in attention]
            valid_BT = arrays["target_out"][part] != tokenizer_lib.PAD_ID
            for stats, each in zip(statistics, attention):
                stats.add(each.weights, valid_BT, each.centre_fraction)
            for m, heads_BHTS in enumerate(translation_attention.host_weights(attention)):
                averages[m].append(heads_BHTS.mean(axis=1))
                shown_heads[m].append(heads_BHTS[: max(0, shown - start)])
        weights = [np.concatenate(w) for w in averages]  # per map [n, T, S], heads averaged
        heads_MBHTS = [np.concatenate(w) for w in shown_heads]  # per map [shown, H, T, S]
        layers = len(weights)
        words = []
        for layer in range(layers):
            words.append(
                [
                    alignment_lib.word_attention(
                        weights[layer][i],
                        self._tokenizer.word_ids(arrays["target_out"][i]),
                        self._tokenizer.word_ids(arrays["source"][i]),
                    )
                    for i in range(n)
                ]
            )
        chosen = words[decode.alignment_layer % layers]
        metrics = {}
        for layer, stats in enumerate(statistics):
            for key, value in stats.result().items():
                metrics[f"{key}_layer{layer}" if layers > 1 else key] = value
                if layers > 1 and layer == decode.alignment_layer % layers:
                    metrics[key] = value
        gold = self._split.alignments
        if gold is not None:
            count = min(n, decode.aer_examples)
            sure = [set(gold[int(arrays["index"][i])]) for i in range(count)]
            for layer in range(layers):
                predicted = [alignment_lib.hard_alignment(w) for w in words[layer][:count]]
                metrics[f"aer_layer{layer}" if layers > 1 else "aer"] = alignment_lib.aer(
                    predicted, sure
                )
            if layers > 1:
                metrics["aer"] = metrics[f"aer_layer{decode.alignment_layer % layers}"]
        names = tuple(translation_attention.map_heads(model, params, arrays["source"][:1]))
        pairs = [
            (
                self._split.sources[int(arrays["index"][i])].split(),
                self._split.targets[int(arrays["index"][i])].split(),
                chosen[i],
                translation_attention.word_views(
                    names,
                    [w[i] for w in weights],
                    [w[i] for w in heads_MBHTS],
                    self._tokenizer.word_ids(arrays["target_out"][i]),
                    self._tokenizer.word_ids(arrays["source"][i]),
                ),
            )
            for i in range(shown)
        ]
        return metrics, pairs

    def __call__(self, params, model: nn.Module, step: int, workdir: str) -> dict[str, float]:
        hypotheses = self.translate(params, model, self._sources)
        metrics = {
            "bleu": bleu.bleu(hypotheses, self._references),
            "chrf": bleu.chrf(hypotheses, self._references),
        }
        by_length = bleu.bleu_by_length(
            self._sources, hypotheses, self._references, self._config.decode.length_buckets
        )
        metrics.update({f"bleu_len_{name}": value for name, (value, _) in by_length.items()})
        aer_metrics, pairs = self._alignments(params, model)
        metrics.update(aer_metrics)
        if self._gold is not None and translation_attention.has_attention(self._config):
            metrics.update(translation_gold.metrics(self._gold, model, params, self._config.decode))
        for i in range(min(self._config.decode.log_examples, len(hypotheses))):
            logging.info(
                "step %d example %d\n  source: %s\n  output: %s\n  reference: %s",
                step,
                i,
                self._sources[i],
                hypotheses[i],
                self._references[i],
            )
        if jax.process_index() == 0:
            self._write(workdir, step, hypotheses, by_length, pairs, metrics)
        return metrics

    def _write(
        self,
        workdir: str,
        step: int,
        hypotheses: Iterable[str],
        by_length: dict,
        pairs: list,
        metrics: dict,
    ) -> None:
        os.makedirs(os.path.join(workdir, "translations"), exist_ok=True)
        with open(os.path.join(workdir, "translations", f"step_{step}.txt"), "w") as f:
            for src, hyp, ref in zip(self._sources, hypotheses, self._references):
                f.write(f"{src}\t{hyp}\t{ref}\n")
        with open(os.path.join(workdir, "translations", f"step_{step}_metrics.json"), "w") as f:
            json.dump({"metrics": metrics, "bleu_by_length": by_length}, f, indent=1)
        model = self._config.model
        attention = [
            f"{k}={dict(v) if isinstance(v, (Mapping, ml_collections.ConfigDict)) else v}"
            for k, v in model.items()
            if k.endswith(("attention", "attention_options")) and v
        ]
        label = " ".join([model.name, *attention])
        figures = os.path.join(workdir, "figures")
        alignment_figures.bleu_by_length_plot(
            by_length, f"{label} step {step}", os.path.join(figures, f"bleu_by_length_{step}.png")
        )
        for i, (source, target, weights, _) in enumerate(pairs):
            alignment_figures.attention_heatmap(
                weights,
                source,
                target,
                f"{label} step {step}",
                os.path.join(figures, f"attention_{i}_step_{step}.png"),
            )
        if pairs:
            page = explorer.translation_page(
                [(source, target, views) for source, target, _, views in pairs],
                f"{label} step {step}",
            )
            explorer.write(os.path.join(figures, "explorer.html"), page)


tasks.register_task(NAME, TranslationTask)
