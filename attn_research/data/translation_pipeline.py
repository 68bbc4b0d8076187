"""Translation batches: tokenize, filter by length, pad, bucket by length, batch with grain.

A batch is a dict of int32 arrays (PAD_ID = 0, so `x != 0` is the padding mask):

    source      [B, S]  source pieces + EOS
    target_in   [B, T]  BOS + target pieces      (teacher-forced decoder input)
    target_out  [B, T]  target pieces + EOS      (labels)
    alignment   [B, T, S] float32, train batches of guided alignment only

Pairs longer than `data.max_source_len` / `data.max_target_len` are dropped from training and
loss evaluation. Train batches are bucketed by their longer side at `data.bucket_bounds`
(`data/bucketing.py`; one compiled step per bucket); eval batches are padded to the maximum
lengths.

Guided alignment (``config.loss.alignment_weight`` > 0; Garg et al. 2019) supervises the
attention with a statistical aligner's word links (``data.word_aligner``, cached): row t of
``alignment`` is uniform over the pieces of the source words linked to the word of
``target_out[t]``, all zero where it has no link, at EOS and at padding (`alignment_targets`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence

import grain
import ml_collections
import numpy as np
from absl import logging

from attn_research.data import bucketing, translation, word_aligner
from attn_research.data import tokenizer as tokenizer_lib

_TOKENIZER_SENTENCES = 200_000  # per side


def _cache_file(data: ml_collections.ConfigDict, key: tuple, prefix: str, suffix: str) -> str:
    """``<data.cache_dir>/<prefix>_<hash of key><suffix>`` (default dir ~/.cache/attn_research)."""
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
    cache_dir = data.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "attn_research")
    return os.path.join(cache_dir, f"{prefix}_{digest}{suffix}")


def tokenizer_path(data: ml_collections.ConfigDict) -> str:
    """`data.tokenizer` if given, else a cache file named by the corpus and vocabulary size."""
    if data.tokenizer:
        return data.tokenizer
    return _cache_file(data, (translation.corpus_key(data), data.vocab_size), "spm", ".model")


def links_path(data: ml_collections.ConfigDict) -> str:
    """The cache file of the train split's word links, named by the corpus and the aligner."""
    return _cache_file(data, (translation.corpus_key(data), word_aligner.SETTINGS), "links", ".npz")


def train_links(data: ml_collections.ConfigDict) -> list[word_aligner.Links]:
    """(source word, target word) links of every train pair of the corpus, aligned once and
    cached in `links_path` (``data.word_aligner``)."""
    train = translation.load_corpus(data)["train"]
    return word_aligner.load_or_align(links_path(data), train.sources, train.targets)


def get_tokenizer(data: ml_collections.ConfigDict) -> tokenizer_lib.Tokenizer:
    """The tokenizer of `data`: loaded from `data.tokenizer` or trained once and cached."""
    return _tokenizer(translation.corpus_key(data), data.vocab_size, tokenizer_path(data))


@functools.lru_cache(maxsize=8)
def _tokenizer(key: tuple, vocab_size: int, path: str) -> tokenizer_lib.Tokenizer:
    train = translation.load_corpus(ml_collections.ConfigDict(dict(key)))["train"]
    n = min(len(train), _TOKENIZER_SENTENCES)
    texts = (text for side in (train.sources, train.targets) for text in side[:n])
    return tokenizer_lib.load_or_train(path, texts, vocab_size)


def pad(ids: list[np.ndarray], length: int) -> np.ndarray:
    """``[N, length]`` int32, each row `ids[i]` followed by PAD_ID (truncated if longer)."""
    out = np.full((len(ids), length), tokenizer_lib.PAD_ID, np.int32)
    for row, x in zip(out, ids):
        row[: min(len(x), length)] = x[:length]
    return out


def encode_sources(tok: tokenizer_lib.Tokenizer, texts, length: int) -> np.ndarray:
    """``[N, length]`` source ids with EOS, padded (and truncated to `length`)."""
    eos = np.asarray([tokenizer_lib.EOS_ID], np.int32)
    return pad([np.concatenate([tok.encode(t)[: length - 1], eos]) for t in texts], length)


@functools.lru_cache(maxsize=8)
def _encoded(
    key: tuple,
    vocab_size: int,
    path: str,
    split: str,
    max_source_len: int,
    max_target_len: int,
    limit: int,
) -> dict[str, np.ndarray]:
    corpus = translation.load_corpus(ml_collections.ConfigDict(dict(key)))[split]
    tok = _tokenizer(key, vocab_size, path)
    n = len(corpus) if limit <= 0 else min(limit, len(corpus))
    bos, eos = np.asarray([tokenizer_lib.BOS_ID]), np.asarray([tokenizer_lib.EOS_ID])
    sources, inputs, outputs, index = [], [], [], []
    for i in range(n):
        src, tgt = tok.encode(corpus.sources[i]), tok.encode(corpus.targets[i])
        if len(src) + 1 > max_source_len or len(tgt) + 1 > max_target_len or not len(src):
            continue
        sources.append(np.concatenate([src, eos]))
        inputs.append(np.concatenate([bos, tgt]))
        outputs.append(np.concatenate([tgt, eos]))
        index.append(i)
    if not index:
        raise ValueError(
            f"config.data: no pair of split {split!r} fits max_source_len="
            f"{max_source_len} and max_target_len={max_target_len}"
        )
    return {
        "source": pad(sources, max_source_len),
        "target_in": pad(inputs, max_target_len),
        "target_out": pad(outputs, max_target_len),
        "index": np.asarray(index, np.int32),
    }


def encoded_split(data: ml_collections.ConfigDict, split: str) -> dict[str, np.ndarray]:
    """The split's pairs that fit the maximum lengths, as padded arrays plus their `index`."""
    limit = data.max_train_examples if split == "train" else data.eval_examples
    return _encoded(
        translation.corpus_key(data),
        data.vocab_size,
        tokenizer_path(data),
        split,
        data.max_source_len,
        data.max_target_len,
        limit,
    )


_FIELDS = ("source", "target_in", "target_out")


def _dataset(arrays: dict[str, np.ndarray]) -> grain.MapDataset:
    return grain.MapDataset.range(len(arrays["index"])).map(
        lambda i: {f: arrays[f][i] for f in _FIELDS}
    )


def bucket_bounds(data: ml_collections.ConfigDict) -> tuple[int, ...]:
    """The ascending upper lengths of the train buckets, ending with the longest allowed."""
    longest = max(data.max_source_len, data.max_target_len)
    return tuple(b for b in data.bucket_bounds if b < longest) + (longest,)


def alignment_targets(
    links: Sequence[np.ndarray], source_words_BS: np.ndarray, target_words_BT: np.ndarray
) -> np.ndarray:
    """``[B, T, S]`` float32 guided-alignment targets of a batch (see module doc).

    Args:
      links: per pair, its (source word, target word) links, ``[links, 2]`` int; a link to a
        word the pair does not have is ignored.
      source_words_BS, target_words_BT: each piece's word, -1 for none (``Tokenizer.word_ids``).
    """
    batch = len(links)
    pair_B = np.repeat(np.arange(batch), [len(x) for x in links])
    source_L, target_L = np.concatenate([np.reshape(x, (-1, 2)) for x in links]).T
    fits_L = (source_L <= source_words_BS.max(-1)[pair_B]) & (
        target_L <= target_words_BT.max(-1)[pair_B]
    )
    # Word -1 is index 0 of the word axes, linked to nothing.
    words_BWW = np.zeros((batch, target_words_BT.max() + 2, source_words_BS.max() + 2), bool)
    words_BWW[pair_B[fits_L], target_L[fits_L] + 1, source_L[fits_L] + 1] = True
    linked_BTS = words_BWW[
        np.arange(batch)[:, None, None],
        target_words_BT[:, :, None] + 1,
        source_words_BS[:, None] + 1,
    ]
    return (linked_BTS / np.maximum(linked_BTS.sum(-1, keepdims=True), 1)).astype(np.float32)


def _alignment_fields(
    data: ml_collections.ConfigDict, arrays: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], list]:
    """Fields per row of the encoded train `arrays`: ``source_words [N, S]``, ``target_words
    [N, T]`` (``Tokenizer.word_ids``) and ``row``; and each row's links ``[links, 2]``, none for a
    pair whose pieces spell another number of words than its whitespace does.
    """
    train = translation.load_corpus(data)["train"]
    links, tok = train_links(data), get_tokenizer(data)
    fields = {
        "source_words": np.stack([tok.word_ids(x) for x in arrays["source"]]),
        "target_words": np.stack([tok.word_ids(x) for x in arrays["target_out"]]),
        "row": np.arange(len(arrays["index"])),
    }
    words = (fields["source_words"].max(-1) + 1, fields["target_words"].max(-1) + 1)
    rows, mismatched = [], 0
    for row, index in enumerate(arrays["index"]):
        spelled = (len(train.sources[index].split()), len(train.targets[index].split()))
        fits = (words[0][row], words[1][row]) == spelled
        rows.append(np.asarray(sorted(links[index]) if fits else [], np.int32).reshape(-1, 2))
        mismatched += not fits
    if mismatched:
        logging.warning(
            "guided alignment: %d train pairs whose pieces do not spell their "
            "whitespace words get no alignment targets",
            mismatched,
        )
    return fields, rows


def _with_alignment(links: list, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The batch with ``alignment [B, T, S]`` from its rows' links and words, in place of
    ``row``, ``source_words`` and ``target_words``."""
    batch = dict(batch)
    rows, sources, targets = (batch.pop(f) for f in ("row", "source_words", "target_words"))
    batch["alignment"] = alignment_targets([links[r] for r in rows], sources, targets)
    return batch


def train_iterator(
    data: ml_collections.ConfigDict,
    seed: int,
    batch_size: int,
    process_index: int,
    process_count: int,
    alignment: bool = False,
) -> grain.DatasetIterator:
    """Infinite, checkpointable iterator of this process's shuffled, length-bucketed batches;
    with `alignment`, each with its guided-alignment targets (see module doc)."""
    arrays = encoded_split(data, "train")
    lengths_N = np.maximum(
        (arrays["source"] != tokenizer_lib.PAD_ID).sum(-1),
        (arrays["target_in"] != tokenizer_lib.PAD_ID).sum(-1),
    )
    fields = {f: arrays[f] for f in _FIELDS}
    if alignment:
        alignment_fields, links = _alignment_fields(data, arrays)
        fields.update(alignment_fields)
    dataset = bucketing.bucketed_batches(
        fields,
        lengths_N,
        bucket_bounds(data),
        seed,
        batch_size,
        process_index,
        process_count,
    )
    if alignment:
        dataset = dataset.map(functools.partial(_with_alignment, links))
    return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=0)))


def eval_batches(
    data: ml_collections.ConfigDict,
    split: str,
    batch_size: int,
    process_index: int,
    process_count: int,
) -> grain.MapDataset:
    """This process's batches of `split` (the tail that does not fill a batch is dropped)."""
    dataset = _dataset(encoded_split(data, split))
    per_process = len(dataset) // process_count
    return dataset[: per_process * process_count][process_index::process_count].batch(
        batch_size, drop_remainder=True
    )
