"""Translating new sentences with a trained translator, with the attention it used.

Sources are encoded word by word with the run's tokenizer (the pieces of a sentence are those of
its whitespace-separated words, so every piece knows its word, whatever characters the
tokenizer lacks), cut to the model's maximum length, and decoded by the training-time
evaluator's decoder (``tasks.translation_decoding``): length-sorted batches under jit, the same
beam. The attention is then read teacher-forced on the decoded tokens, which gives the weights
each output token was written with, every layer and head (``predict.attention``), and summed
over source pieces and averaged over target pieces to words
(``evaluation.alignment.word_attention``), as the evaluation's AER and explorer read it.
"""

from __future__ import annotations

import dataclasses
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
from attn_research.predict import attention, run_files
from attn_research.tasks import translation, translation_attention, translation_decoding


@dataclasses.dataclass(frozen=True)
class Translation:
    """One translated sentence.

    Attributes:
      source, text: the input line and its translation.
      source_words, target_words: the words of each side (of the source, those the model read).
      alignment: Pharaoh links ``(i, j)``, source word i to target word j: each target word to
        the source word it attends most. None for a model without attention.
      attention: float ``[len(target_words), len(source_words)]`` word-level attention (each row
        sums to 1 less the weight on the source's EOS), of layer ``config.decode.alignment_layer``
        (the layer the evaluation's AER reads). None for a model without attention.
      truncated: source pieces cut off to fit the model's maximum length (0: none).
      views: the word-level attention of every map (decoder layer; one for an RNN) and head,
        ``{map name: {"average" | "head <h>": [target words, source words]}}``
        (``evaluation.explorer.views``), or None.
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
class _Source:
    """A sentence encoded: ids ``[<= max_source_len]`` ending in EOS, the word of each id."""

    ids: np.ndarray
    word_ids: np.ndarray  # -1 at EOS
    words: tuple[str, ...]
    truncated: int


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
        self.has_attention = attention.has_attention(config)
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

    def _encode(self, index: int, text: str) -> _Source:
        if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            raise ValueError(
                f"sentence {index}: {text[:60]!r} holds surrogate code points (text decoded "
                f"with errors='surrogateescape'); give text decoded as UTF-8"
            )
        longest = self.config.data.max_source_len - 1  # pieces, EOS aside
        pieces = [(word, self.tokenizer.encode(word)) for word in text.split()]
        pieces = [(word, ids) for word, ids in pieces if ids.size]
        ids = np.concatenate([ids for _, ids in pieces] + [np.zeros(0, np.int32)])
        word_ids = np.concatenate(
            [np.full(ids.size, i, np.int32) for i, (_, ids) in enumerate(pieces)]
            + [np.zeros(0, np.int32)]
        )
        truncated = max(0, ids.size - longest)
        if truncated:
            kept = int(word_ids[longest - 1]) + 1
            logging.warning(
                "Sentence %d has %d pieces, more than the %d the model reads: its last %d "
                "pieces are cut (%d of its %d words kept).",
                index,
                ids.size,
                longest,
                truncated,
                kept,
                len(pieces),
            )
            ids, word_ids, pieces = ids[:longest], word_ids[:longest], pieces[:kept]
        eos = np.asarray([tokenizer_lib.EOS_ID], np.int32)
        return _Source(
            np.concatenate([ids, eos]),
            np.concatenate([word_ids, [-1]]).astype(np.int32),
            tuple(word for word, _ in pieces),
            truncated,
        )

    def _word_views(
        self, sources: Sequence[_Source], targets: Sequence[np.ndarray], batch: int
    ) -> list[dict[str, dict[str, np.ndarray]]]:
        """The word-level views (`Translation.views`) of each pair."""
        longest = self.config.data.max_source_len
        names = attention.cross_attention_names(self.model, self.params, sources[0].ids[None])
        out = []
        for start in range(0, len(sources), batch):
            part_s, part_t = sources[start : start + batch], targets[start : start + batch]
            width = translation_decoding.bucket_width(max(s.ids.size for s in part_s), longest)
            length = -(-max(t.size for t in part_t) // translation_decoding.BUCKET)
            source_BS = translation_pipeline.pad([s.ids for s in part_s], width)
            bos = [np.asarray([tokenizer_lib.BOS_ID], np.int32)]
            target_in_BT = translation_pipeline.pad(
                [np.concatenate(bos + [t[:-1]]) for t in part_t],
                length * translation_decoding.BUCKET,
            )
            average_MBTS, heads_MBHTS = attention.cross_attention(
                self.model, self.params, source_BS, target_in_BT
            )
            for b, (s, t) in enumerate(zip(part_s, part_t)):
                out.append(
                    translation_attention.word_views(
                        names,
                        average_MBTS[:, b, : t.size, : s.ids.size],
                        heads_MBHTS[:, b, :, : t.size, : s.ids.size],
                        self.tokenizer.word_ids(t),
                        s.word_ids,
                    )
                )
        return out

    def translate(
        self,
        sentences: Sequence[str],
        *,
        beam_size: int | None = None,
        alpha: float | None = None,
        batch_size: int | None = None,
        with_attention: bool = True,
    ) -> list[Translation]:
        """Translations of `sentences`, in their order; an empty sentence gives an empty one.

        Args:
          sentences: one sentence each (no newlines).
          beam_size, alpha, batch_size: default the run's ``config.decode``; beam_size 1 is
            greedy search.
          with_attention: False leaves out the attention and alignments (None), which saves
            the teacher-forced pass.

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
        sources = [self._encode(i, text) for i, text in enumerate(sentences)]
        todo = [i for i, s in enumerate(sources) if s.words]
        ids = translation_pipeline.pad(
            [sources[i].ids for i in todo], self.config.data.max_source_len
        )
        tokens = self._decoders(
            self.model, self.params, ids, beam_size=beam_size, alpha=alpha, batch_size=batch
        )
        targets = [_target(row) for row in tokens]
        words = [None] * len(todo)
        if self.has_attention and with_attention and todo:
            words = self._word_views([sources[i] for i in todo], targets, batch)
        links = () if self.has_attention else None
        out = [Translation(text, "", (), (), links, None) for text in sentences]
        layer = self.config.decode.alignment_layer
        for i, target, views in zip(todo, targets, words):
            matrix = None if views is None else list(views.values())[layer]["average"]
            word_ids = self.tokenizer.word_ids(target)
            out[i] = Translation(
                sentences[i],
                self.tokenizer.decode(target),
                sources[i].words,
                tuple(
                    self.tokenizer.decode(target[word_ids == j])
                    for j in range(word_ids.max(initial=-1) + 1)
                ),
                None if matrix is None else tuple(sorted(alignment_lib.hard_alignment(matrix))),
                matrix,
                sources[i].truncated,
                views,
            )
        return out
