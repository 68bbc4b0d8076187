"""Translating new sentences with a trained translator, with the attention it used, and aligning
given sentence pairs.

Sources are encoded word by word with the run's tokenizer, cut to the model's maximum length,
and decoded by the evaluation's decoder (``tasks.translation_decoding``). The attention is
read teacher-forced on the output (``tasks.translation_attention``), every layer and head, and
brought to words (``evaluation.alignment.word_attention``). `TranslationPredictor.align`
teacher-forces given targets (forced alignment) and reads links by a named read-out
(``evaluation.alignment_readouts``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from attn_research import tasks
from attn_research.data import tokenizer as tokenizer_lib
from attn_research.data import translation_pipeline
from attn_research.evaluation import alignment as alignment_lib
from attn_research.evaluation import alignment_readouts
from attn_research.predict import run_files
from attn_research.tasks import translation, translation_attention, translation_decoding


@dataclasses.dataclass(frozen=True)
class Translation:
    """One translated sentence.

    Attributes:
      source, text: the input line and its translation.
      source_words, target_words: the words of each side (of the source, those the model read).
      alignment: Pharaoh links ``(i, j)``, each target word to its most attended source word;
        None without attention.
      attention: float ``[len(target_words), len(source_words)]`` word-level attention of layer
        ``config.decode.alignment_layer``; None without attention.
      truncated: source pieces cut off to fit the model's maximum length.
      views: ``{map name: {"average" | "head <h>": [target words, source words]}}`` or None.
    """

    source: str
    text: str
    source_words: tuple[str, ...]
    target_words: tuple[str, ...]
    alignment: tuple[tuple[int, int], ...] | None
    attention: np.ndarray | None
    truncated: int = 0
    views: dict[str, dict[str, np.ndarray]] | None = None


@dataclasses.dataclass(frozen=True)
class ForcedAlignment:
    """One given pair, aligned.

    Attributes:
      source_words, target_words: the whitespace tokens of each side.
      attention: ``evaluation.alignment_readouts.PairAttention``; None for an empty side.
      links: Pharaoh links ``(i, j)``, sorted.
    """

    source_words: tuple[str, ...]
    target_words: tuple[str, ...]
    attention: alignment_readouts.PairAttention | None
    links: tuple[tuple[int, int], ...]


def _target(tokens: np.ndarray) -> np.ndarray:
    """A decoded row up to and including its first EOS, else up to its last non-PAD token (a
    weak model may write PAD ids amid its output)."""
    ends = np.flatnonzero(tokens == tokenizer_lib.EOS_ID)
    written = np.flatnonzero(tokens != tokenizer_lib.PAD_ID)
    length = ends[0] + 1 if ends.size else (written[-1] + 1 if written.size else 1)
    return tokens[:length]


class TranslationPredictor:
    """A trained translator: ``translate(sentences) -> [Translation]`` (see the module doc)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        params: Any,
        tokenizer: tokenizer_lib.Tokenizer,
        step: int,
    ):
        """`params` on device, fitting ``task.make_model(config)``; `step` is the checkpoint's."""
        self.config, self.params, self.tokenizer, self.step = config, params, tokenizer, step
        self.model = tasks.get_task(config.task).make_model(config)
        self.family = translation.FAMILIES[config.model.name][0]
        self.has_attention = translation_attention.has_attention(config)
        self._decoders = translation_decoding.Decoders(self.family, config.decode)

    @classmethod
    def from_run(
        cls, workdir: str, config: ml_collections.ConfigDict, params: Any, step: int
    ) -> TranslationPredictor:
        """The predictor of a translation run's workdir (its tokenizer is read there)."""
        path = translation_pipeline.tokenizer_path(config.data)
        here = os.path.join(workdir, os.path.basename(path))
        candidates = [here] if config.data.tokenizer else [here, path]
        found = [p for p in dict.fromkeys(candidates) if os.path.isfile(p)]
        if not found:
            raise run_files.RunFilesError(
                f"The run's tokenizer is missing: none of {list(dict.fromkeys(candidates))} exists."
            )
        tokenizer = run_files.read_run_file(
            found[0],
            tokenizer_lib.load,
            "the sentencepiece model the run was trained with",
            f"Copy that model (config.data.tokenizer, or the {os.path.basename(path)} that "
            f"training wrote) back to {here}; another tokenizer gives other ids",
        )
        task = tasks.get_task(config.task)
        model = task.make_model(config)
        abstract = jax.eval_shape(
            lambda rng: task.init_params(model, rng, config), jax.random.key(0)
        )
        params = run_files.place_params(params, abstract, f"The checkpoint of step {step}")
        return cls(config, params, tokenizer, step)

    @functools.cached_property
    def _map_heads(self) -> dict[str, int]:
        """``{map: heads}`` of the model's attention maps (``{}`` without attention)."""
        source_BS = np.full((1, 1), tokenizer_lib.EOS_ID, np.int32)
        return translation_attention.map_heads(self.model, self.params, source_BS)

    @functools.cached_property
    def alignment_layer(self) -> int:
        """``config.decode.alignment_layer`` counted from the first map, so that it names the
        same map when the saliency is added last (0, the saliency, for a model without maps).

        Raises:
          ValueError: if the model has no such map.
        """
        layer, heads = self.config.decode.alignment_layer, self._map_heads
        if not heads:
            return 0
        alignment_readouts.Selection((layer,)).check(heads)
        return layer % len(heads)

    def default_selection(
        self, method: str, saliency: bool = False
    ) -> alignment_readouts.Selection:
        """The views read-out `method` reads unless told: map `alignment_layer`, heads
        averaged; a pooled one every head of every attention map, so that with `saliency` it
        pools the attention alone (the saliency alone for a model without attention).

        Raises:
          ValueError: if `method` is unknown, or the model lacks map `alignment_layer`.
        """
        if not alignment_readouts.readout(method).pooled:
            return alignment_readouts.Selection((self.alignment_layer,))
        maps = len(self._map_heads)
        return alignment_readouts.Selection(tuple(range(maps)) if saliency and maps else None)

    def _encode(self, index: int, text: str) -> tuple[translation_attention.Sentence, int]:
        """Sentence `index` (``translation_attention.encode``) cut to the model's
        ``max_source_len``, and how many pieces were cut."""
        if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            raise ValueError(
                f"sentence {index}: {text[:60]!r} holds surrogate code points (text decoded "
                f"with errors='surrogateescape'); give text decoded as UTF-8"
            )
        sentence = translation_attention.encode(self.tokenizer, text)
        longest = self.config.data.max_source_len - 1  # pieces, EOS aside
        truncated = max(0, sentence.ids.size - 1 - longest)
        if not truncated:
            return sentence, 0
        kept = int(sentence.word_ids[longest - 1]) + 1
        logging.warning(
            "Sentence %d has %d pieces, more than the %d the model reads: its last %d "
            "pieces are cut (%d of its %d words kept).",
            index,
            sentence.ids.size - 1,
            longest,
            truncated,
            kept,
            len(sentence.words),
        )
        ids = np.append(sentence.ids[:longest], tokenizer_lib.EOS_ID).astype(np.int32)
        word_ids = np.append(sentence.word_ids[:longest], -1).astype(np.int32)
        return translation_attention.Sentence(ids, word_ids, sentence.words[:kept]), truncated

    def translate(
        self,
        sentences: Sequence[str],
        *,
        beam_size: int | None = None,
        alpha: float | None = None,
        batch_size: int | None = None,
        with_attention: bool = True,
    ) -> list[Translation]:
        """Translations of `sentences` (no newlines), in order; an empty sentence gives an empty
        one. `beam_size`, `alpha`, `batch_size` default to the run's ``config.decode`` (beam 1:
        greedy); `with_attention=False` skips the teacher-forced pass.

        Raises:
          ValueError: for beam_size or batch_size < 1, a negative alpha, or a sentence with
            surrogate code points (naming its index), before anything is compiled.
        """
        for name, value in (("beam_size", beam_size), ("batch_size", batch_size)):
            if value is not None and value < 1:
                raise ValueError(f"{name}: must be >= 1, got {value}")
        if alpha is not None and not 0 <= alpha < float("inf"):
            raise ValueError(f"alpha: must be a number >= 0, got {alpha}")
        batch = batch_size or self.config.decode.batch_size
        encoded = [self._encode(i, text) for i, text in enumerate(sentences)]
        sources = [sentence for sentence, _ in encoded]
        todo = [i for i, s in enumerate(sources) if s.words]
        ids = translation_pipeline.pad(
            [sources[i].ids for i in todo], self.config.data.max_source_len
        )
        tokens = self._decoders(
            self.model, self.params, ids, beam_size=beam_size, alpha=alpha, batch_size=batch
        )
        targets = []
        for row in tokens:
            target = _target(row)
            word_ids = self.tokenizer.word_ids(target)
            words = tuple(
                self.tokenizer.decode(target[word_ids == j])
                for j in range(word_ids.max(initial=-1) + 1)
            )
            targets.append(translation_attention.Sentence(target, word_ids, words))
        views = [None] * len(todo)
        if self.has_attention and with_attention and todo:
            views = [
                pair.views
                for pair in translation_attention.pair_views(
                    self.model, self.params, [sources[i] for i in todo], targets, batch
                )
            ]
        links = () if self.has_attention else None
        out = [Translation(text, "", (), (), links, None) for text in sentences]
        layer = self.config.decode.alignment_layer
        for i, target, pair_views in zip(todo, targets, views):
            matrix = None if pair_views is None else list(pair_views.values())[layer]["average"]
            out[i] = Translation(
                sentences[i],
                self.tokenizer.decode(target.ids),
                sources[i].words,
                target.words,
                None if matrix is None else tuple(sorted(alignment_lib.hard_alignment(matrix))),
                matrix,
                encoded[i][1],
                pair_views,
            )
        return out

    def align(
        self,
        sources: Sequence[str],
        targets: Sequence[str],
        *,
        method: str = "argmax_target",
        selection: alignment_readouts.Selection | None = None,
        threshold: float = alignment_readouts.THRESHOLD,
        batch_size: int | None = None,
        saliency: bool = False,
    ) -> list[ForcedAlignment]:
        """Forced alignments of the given pairs, in order, read out by `method`; `selection`
        defaults to `default_selection`. With `saliency` the views hold the
        source saliency (``models.saliency``) as one more map, the last. A pair with an empty
        side gets no links.

        Raises:
          ValueError: before any compilation, if the model has no attention and no `saliency`
            is asked, the lists differ in length, `method` or `selection` is unknown, or a pair
            is longer than the model's ``length_limit`` (naming the pair, 1-based, and the
            limit).
        """
        if not (self.has_attention or saliency):
            raise ValueError(
                f"This model (attention {self.config.model.get('attention')!r}) has no "
                "attention to align with; align with its saliency (saliency=True, --saliency)"
            )
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
        readout = alignment_readouts.readout(method)
        selection = selection or self.default_selection(method, saliency)
        source_sentences = [translation_attention.encode(self.tokenizer, s) for s in sources]
        target_sentences = [translation_attention.encode(self.tokenizer, t) for t in targets]
        translation_attention.check_lengths(self.model, source_sentences, target_sentences)
        todo = [
            i
            for i, (s, t) in enumerate(zip(source_sentences, target_sentences))
            if s.words and t.words
        ]
        for i, (s, t) in enumerate(zip(source_sentences, target_sentences)):
            if bool(s.words) != bool(t.words):
                logging.warning("Pair %d has words on one side only: it gets no links.", i + 1)
        out = [
            ForcedAlignment(s.words, t.words, None, ())
            for s, t in zip(source_sentences, target_sentences)
        ]
        if not todo:
            return out
        heads = translation_attention.map_heads(
            self.model, self.params, source_sentences[todo[0]].ids[None], saliency
        )
        selection.check(heads)
        batch = batch_size or self.config.decode.batch_size
        pairs = ([source_sentences[i] for i in todo], [target_sentences[i] for i in todo])
        attentions = translation_attention.pair_views(
            self.model, self.params, *pairs, batch, shifted=True, with_saliency=saliency
        )
        for i, attention_pair in zip(todo, attentions):
            links = readout(attention_pair, selection, threshold)
            out[i] = ForcedAlignment(
                out[i].source_words, out[i].target_words, attention_pair, tuple(sorted(links))
            )
        return out
