"""Batching by length: each train batch holds pairs of similar length, padded to a few shapes.

Padding every pair to the longest allowed length wastes most of a step on short corpora (on
spa-eng 20% of a batch padded to 48+48 pieces is real). Here each example falls in the
first bucket whose upper length `bounds[k]` holds it, and a batch is padded to its bucket's
bound: a handful of shapes, so the trainer compiles a handful of train steps.

An epoch is a permutation of the examples (seeded by the seed and the epoch number): each
bucket's examples, in permuted order, are cut into full global batches; the leftovers of all
buckets, in bucket order, are cut into more batches (padded to the wider bucket they touch);
the batches are then shuffled. Every epoch thus has exactly ``N // global_batch`` batches and
skips fewer than `global_batch` examples, and batch ``i`` of the run is a pure function of
``i``: the iteration is deterministic and resumable from the position alone.
"""

from __future__ import annotations

import functools

import grain
import numpy as np


def bucket_of(lengths_N: np.ndarray, bounds: tuple[int, ...]) -> np.ndarray:
    """``[N]`` index of the first bound ``>= lengths_N[i]`` (bounds ascending)."""
    buckets_N = np.searchsorted(np.asarray(bounds), lengths_N, side="left")
    if np.any(buckets_N == len(bounds)):
        raise ValueError(
            f"an example of length {lengths_N.max()} exceeds the last bucket bound {bounds[-1]}"
        )
    return buckets_N


def epoch_batches(buckets_N: np.ndarray, global_batch: int, rng: np.random.Generator) -> np.ndarray:
    """``[N // global_batch, global_batch]`` example indices of one epoch (see module doc)."""
    order_N = rng.permutation(len(buckets_N))
    batches, leftovers = [], []
    for bucket in np.unique(buckets_N):
        members = order_N[buckets_N[order_N] == bucket]
        full = len(members) // global_batch * global_batch
        batches.append(members[:full].reshape(-1, global_batch))
        leftovers.append(members[full:])
    rest = np.concatenate(leftovers)
    batches.append(rest[: len(rest) // global_batch * global_batch].reshape(-1, global_batch))
    batches = np.concatenate(batches)
    return batches[rng.permutation(len(batches))]


def bucketed_batches(
    arrays: dict[str, np.ndarray],
    lengths_N: np.ndarray,
    bounds: tuple[int, ...],
    seed: int,
    batch_size: int,
    process_index: int,
    process_count: int,
) -> grain.MapDataset:
    """The infinite dataset of this process's length-bucketed batches.

    Args:
      arrays: ``[N, L_f]`` padded arrays per field `f`, row ``i`` of each for example ``i``;
        or ``[N]``, one value per example (e.g. its row number), batched as it is.
      lengths_N: each example's length: no field of it has more than that many non-padding
        entries at its start (e.g. the longer of source and target).
      bounds: ascending upper lengths of the buckets; the last must hold every example. A
        batch of bucket ``k`` has arrays ``[batch_size, min(bounds[k], L_f)]``.
      seed: seeds every epoch's permutation (with the epoch number).
      batch_size: examples per batch on this process; a global batch is
        ``batch_size * process_count`` examples, of which this process takes every
        `process_count`-th from `process_index`, so all processes agree on the shape.

    Raises:
      ValueError: if the examples do not fill one global batch, or one exceeds the last bound.
    """
    global_batch = batch_size * process_count
    if len(lengths_N) < global_batch:
        raise ValueError(
            f"{len(lengths_N)} train examples do not fill one global batch of {global_batch}"
        )
    buckets_N = bucket_of(lengths_N, bounds)
    per_epoch = len(lengths_N) // global_batch

    @functools.lru_cache(maxsize=2)
    def epoch(number: int) -> np.ndarray:
        return epoch_batches(buckets_N, global_batch, np.random.default_rng((seed, number)))

    def batch(index: int, _) -> dict[str, np.ndarray]:
        rows = epoch(index // per_epoch)[index % per_epoch]
        width = bounds[buckets_N[rows].max()]
        mine = rows[process_index::process_count]
        return {f: x[mine, :width] if x.ndim > 1 else x[mine] for f, x in arrays.items()}

    return grain.MapDataset.range(per_epoch).repeat().map_with_index(batch)
