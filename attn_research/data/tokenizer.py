"""A sentencepiece BPE tokenizer (Kudo & Richardson 2018), shared by source and target, trained
on both sides of the train split and cached as `<cache_dir>/<name>.model`. PAD_ID = 0,
UNK_ID = 1, BOS_ID = 2, EOS_ID = 3. A word is a piece starting with "▁" and the pieces up to
the next one (`word_ids`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence

import numpy as np
import sentencepiece as spm
from absl import logging

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
_WORD_START = "\u2581"


class Tokenizer:
    """Encodes text to ids ``[T]`` int32 (no BOS/EOS) and decodes ids back to text."""

    def __init__(self, model_proto: bytes):
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        for name, want in (("pad", PAD_ID), ("unk", UNK_ID), ("bos", BOS_ID), ("eos", EOS_ID)):
            got = getattr(self._sp, f"{name}_id")()
            if got != want:
                raise ValueError(f"sentencepiece model has {name}_id {got}, expected {want}")

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._sp.encode(text), np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of `ids`, stopping at the first EOS and skipping PAD and BOS."""
        out = []
        for i in np.asarray(ids).tolist():
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                out.append(i)
        return self._sp.decode(out)

    def word_ids(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``[T]`` int32: the index of the word each piece belongs to (-1 for special ids)."""
        words, current = [], -1
        for i in np.asarray(ids).tolist():
            if i in (PAD_ID, BOS_ID, EOS_ID):
                words.append(-1)
                continue
            if current < 0 or self._sp.id_to_piece(i).startswith(_WORD_START):
                current += 1
            words.append(current)
        return np.asarray(words, np.int32)


def train(texts: Iterable[str], vocab_size: int, path: str) -> Tokenizer:
    """Trains a BPE model on `texts` and writes it to `path` atomically (a small corpus may give
    fewer than `vocab_size` pieces)."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("cannot train a tokenizer on an empty corpus")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        hard_vocab_limit=False,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        input_sentence_size=200_000,
        shuffle_input_sentence=True,
        minloglevel=2,
        num_threads=1,
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(model.getvalue())
    os.replace(tmp, path)
    return Tokenizer(model.getvalue())


def load(path: str) -> Tokenizer:
    """The model stored at `path`.

    Raises:
      ValueError: naming `path` if there is none, or it is not a sentencepiece model with
        this module's special ids.
    """
    if not os.path.isfile(path):
        raise ValueError(f"tokenizer model {path!r} does not exist")
    with open(path, "rb") as f:
        proto = f.read()
    try:
        return Tokenizer(proto)
    except (RuntimeError, ValueError) as error:  # sentencepiece's parse error, or our ids'.
        raise ValueError(
            f"{path}: not a usable sentencepiece model ({str(error).strip()[:200]})"
        ) from None


def load_or_train(path: str, texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """The model at `path`, trained on `texts` first if absent; warns if it has fewer pieces than
    `vocab_size`."""
    tokenizer = load(path) if os.path.isfile(path) else train(texts, vocab_size, path)
    if tokenizer.vocab_size < vocab_size:
        logging.warning(
            "config.data.vocab_size is %d, but the tokenizer %s has only %d pieces (all that "
            "its corpus yields): %d rows of the model's embeddings and output layer belong to "
            "no token. Set --config.data.vocab_size=%d to size the model to the tokenizer.",
            vocab_size,
            path,
            tokenizer.vocab_size,
            vocab_size - tokenizer.vocab_size,
            tokenizer.vocab_size,
        )
    return tokenizer
