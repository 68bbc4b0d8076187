"""Length-bucketed train batches: coverage per epoch, shapes, determinism, resumption, hosts."""

import itertools

import numpy as np
import pytest

from attn_research.data import bucketing, translation_pipeline
from attn_research.data import tokenizer as tokenizer_lib
from attn_research.tasks import translation as translation_task
from experiments.configs import translate

BOUNDS = (4, 8, 12)


def _examples(n: int = 203, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Rows of `[n, 12]` ids: example i is ``i + 1`` repeated for its length, then zeros."""
    lengths_N = np.random.default_rng(seed).integers(1, 13, n)
    rows = np.zeros((n, 12), np.int32)
    for i, length in enumerate(lengths_N):
        rows[i, :length] = i + 1
    return {"a": rows, "b": rows[:, :10].copy()}, lengths_N


def _ids(batch: dict[str, np.ndarray]) -> np.ndarray:
    return batch["a"][:, 0] - 1


def test_epoch_covers_all_but_a_partial_batch_once_with_few_mixed_batches():
    _, lengths_N = _examples()
    buckets_N = bucketing.bucket_of(lengths_N, BOUNDS)
    np.testing.assert_array_equal(buckets_N, (lengths_N > 4).astype(int) + (lengths_N > 8))
    batches = bucketing.epoch_batches(buckets_N, 16, np.random.default_rng(1))
    assert batches.shape == (203 // 16, 16)
    assert len(set(batches.ravel())) == batches.size  # no example twice
    mixed = sum(len(set(buckets_N[b])) > 1 for b in batches)
    assert mixed <= len(BOUNDS) - 1  # only the leftovers of the buckets share batches


def test_batches_have_the_bucket_shape_and_keep_every_token():
    arrays, lengths_N = _examples()
    dataset = bucketing.bucketed_batches(
        arrays, lengths_N, BOUNDS, seed=3, batch_size=16, process_index=0, process_count=1
    )
    widths = set()
    for index in range(2 * (203 // 16)):
        batch = dataset[index]
        ids = _ids(batch)
        width = batch["a"].shape[1]
        widths.add(width)
        assert width in BOUNDS and batch["b"].shape == (16, min(width, 10))
        assert lengths_N[ids].max() <= width and (lengths_N[ids].max() > width - 4)
        for field in arrays:  # cutting to the bucket drops padding only
            np.testing.assert_array_equal(
                (batch[field] != 0).sum(1), (arrays[field][ids] != 0).sum(1)
            )
    assert widths == set(BOUNDS)


def test_epochs_differ_and_a_restored_iterator_continues_identically():
    arrays, lengths_N = _examples()
    make = lambda: iter(
        bucketing.bucketed_batches(arrays, lengths_N, BOUNDS, 5, 16, 0, 1).to_iter_dataset()
    )
    first = [_ids(b) for b in itertools.islice(make(), 30)]
    again = [_ids(b) for b in itertools.islice(make(), 30)]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    per_epoch = 203 // 16
    assert not np.array_equal(
        np.concatenate(first[:per_epoch]), np.concatenate(first[per_epoch : 2 * per_epoch])
    )
    it = make()
    for _ in range(17):
        next(it)
    state = it.get_state()
    resumed = make()
    resumed.set_state(state)
    for expected in first[17:30]:
        np.testing.assert_array_equal(_ids(next(resumed)), expected)


def test_processes_split_each_global_batch_and_agree_on_its_shape():
    arrays, lengths_N = _examples()
    whole = bucketing.bucketed_batches(arrays, lengths_N, BOUNDS, 7, 16, 0, 1)
    halves = [bucketing.bucketed_batches(arrays, lengths_N, BOUNDS, 7, 8, p, 2) for p in range(2)]
    for index in range(20):
        parts = [h[index] for h in halves]
        assert {p["a"].shape for p in parts} == {(8, whole[index]["a"].shape[1])}
        np.testing.assert_array_equal(
            np.sort(np.concatenate([_ids(p) for p in parts])), np.sort(_ids(whole[index]))
        )


def test_too_long_example_or_too_few_examples_is_a_clear_error():
    arrays, lengths_N = _examples()
    with pytest.raises(ValueError, match="exceeds the last bucket bound 8"):
        bucketing.bucketed_batches(arrays, lengths_N, (4, 8), 0, 16, 0, 1)
    with pytest.raises(ValueError, match="203 train examples do not fill one global batch"):
        bucketing.bucketed_batches(arrays, lengths_N, BOUNDS, 0, 128, 0, 2)


def test_translation_train_batches_are_bucketed(tmp_path):
    config = translate.get_config("tiny")
    config.data.cache_dir = str(tmp_path)
    assert translation_pipeline.bucket_bounds(config.data) == (16, 32)
    it = translation_pipeline.train_iterator(config.data, 0, 8, 0, 1)
    shapes = set()
    for batch in itertools.islice(it, 40):
        source, target_in = batch["source"], batch["target_in"]
        shapes.add(source.shape)
        assert source.shape == target_in.shape == batch["target_out"].shape
        lengths = (source != 0).sum(1)
        assert np.all(source[np.arange(8), lengths - 1] == tokenizer_lib.EOS_ID)  # not cut
        assert np.all(
            batch["target_out"][np.arange(8), (target_in != 0).sum(1) - 1] == tokenizer_lib.EOS_ID
        )
    assert shapes == {(8, 16), (8, 32)}


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(bucket_bounds=(32, 16)), "bucket_bounds: want strictly ascending"),
        (dict(bucket_bounds=(0, 16)), "bucket_bounds: want strictly ascending"),
        (dict(max_train_examples=10), r"batch_size: 16 is more than the \d+ train pairs"),
    ],
)
def test_bad_bucketing_config_is_a_clear_error(tmp_path, override, message):
    config = translate.get_config("tiny")
    config.data.cache_dir = str(tmp_path)
    config.data.update(override)
    with pytest.raises(ValueError, match=message):
        translation_task.TranslationTask().validate(config)
