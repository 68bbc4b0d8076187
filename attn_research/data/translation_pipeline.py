"""Translation batches: tokenize, filter by length, pad, bucket by length, batch with grain.

A batch is a dict of int32 arrays (PAD_ID = 0 marks padding, so `x != 0` is the padding mask
that every attention kind receives):

    source      [B, S]  source pieces + EOS
    target_in   [B, T]  BOS + target pieces      (teacher-forced decoder input)
    target_out  [B, T]  target pieces + EOS      (labels)

Pairs longer than `data.max_source_len` / `data.max_target_len` are dropped from training and
loss evaluation. Train batches are bucketed by length (`data/bucketing.py`): a pair whose
longer side has at most `b` pieces, for the first `b` of `data.bucket_bounds` (or the longest
allowed length) that holds it, is batched with pairs of its bucket, and S, T are `b` capped at
the maximum lengths: one compiled train step per bucket. Eval batches keep S, T =
`max_source_len`, `max_target_len`; decoding (see `tasks/translation.py`) buckets sources by
length on its own.
"""

from __future__ import annotations

import functools
import hashlib
import os

import grain
import ml_collections
import numpy as np

from attn_research.data import bucketing, translation
from attn_research.data import tokenizer as tokenizer_lib

_TOKENIZER_SENTENCES = 200_000  # per side


def tokenizer_path(data: ml_collections.ConfigDict) -> str:
    """`data.tokenizer` if given, else a cache file named by the corpus and vocabulary size."""
    if data.tokenizer:
        return data.tokenizer
    key = repr((translation.corpus_key(data), data.vocab_size)).encode()
    cache_dir = data.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "attn_research")
    return os.path.join(cache_dir, f"spm_{hashlib.sha1(key).hexdigest()[:16]}.model")


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


def train_iterator(
    data: ml_collections.ConfigDict,
    seed: int,
    batch_size: int,
    process_index: int,
    process_count: int,
) -> grain.DatasetIterator:
    """Infinite, checkpointable iterator of this process's shuffled, length-bucketed batches."""
    arrays = encoded_split(data, "train")
    lengths_N = np.maximum(
        (arrays["source"] != tokenizer_lib.PAD_ID).sum(-1),
        (arrays["target_in"] != tokenizer_lib.PAD_ID).sum(-1),
    )
    dataset = bucketing.bucketed_batches(
        {f: arrays[f] for f in _FIELDS},
        lengths_N,
        bucket_bounds(data),
        seed,
        batch_size,
        process_index,
        process_count,
    )
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
