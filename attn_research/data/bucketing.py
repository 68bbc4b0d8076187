"""Batching by length: each train batch holds pairs of similar length, padded to a few shapes.

An example falls in the first bucket whose bound `bounds[k]` holds it, and its batch is padded
to that bound (one compiled train step per bucket). An epoch permutes the examples (seeded by
seed and epoch), cuts each bucket into full global batches, cuts the leftovers, in bucket
order, into more, and shuffles the batches: ``N // global_batch`` batches per epoch, and batch
``i`` of the run a pure function of ``i`` (resumable from the position alone).
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
      arrays: ``[N, L_f]`` padded arrays per field `f` (or ``[N]``, batched as it is).
      lengths_N: each example's length (no field has more non-padding entries at its start).
      bounds: ascending bucket bounds, the last holding every example; bucket ``k`` batches
        arrays ``[batch_size, min(bounds[k], L_f)]``.
      seed: seeds every epoch's permutation.
      batch_size: examples per batch on this process, which takes every `process_count`-th
        example of a global batch from `process_index`.

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
