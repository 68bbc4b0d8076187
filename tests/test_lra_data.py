"""The Long Range Arena's data against independent references: ListOps' labels against a
stack evaluator with ``statistics``, Pathfinder's labels against a flood fill of the drawn
pixels, Image sequences against Pillow's grey conversion."""

import collections
import statistics

import ml_collections
import numpy as np
import pytest
from PIL import Image

from attn_research.data import listops, pathfinder, sequences
from attn_research.data.image_config import data_config

SHORT = listops.Spec(min_len=8, max_len=64)


def _evaluate(tokens: list[str]) -> tuple[int, int, int]:
    """``(value, depth, most arguments)`` of a prefix expression, by a stack; digits are the
    deepest level (a lone digit has depth 1)."""
    functions = {
        "[MIN": min,
        "[MAX": max,
        "[MED": lambda args: int(statistics.median(args)),  # LRA: int(np.median)
        "[SM": lambda args: sum(args) % 10,
    }
    stack, depth, most, value = [], 0, 0, None
    for token in tokens:
        if token in functions:
            stack.append((functions[token], []))
            depth = max(depth, len(stack))
        elif token == "]":
            function, args = stack.pop()
            most = max(most, len(args))
            value = function(args)
            if stack:
                stack[-1][1].append(value)
        else:
            value = int(token)
            if stack:
                stack[-1][1].append(value)
    assert not stack
    return value, depth + 1, most


@pytest.mark.parametrize("spec,count", [(SHORT, 300), (listops.Spec(), 6)])
def test_listops_labels_equal_an_independent_evaluator(spec, count):
    labels, meds = [], 0
    for i in range(count):
        tokens, label = listops.example(spec, 3, "train", i)
        value, depth, most = _evaluate(tokens)
        assert label == value
        assert depth <= spec.max_depth and 2 <= most <= spec.max_args
        assert spec.min_len <= len(tokens) <= spec.max_len
        labels.append(label)
        meds += "[MED" in tokens
    assert meds > 0
    if count > 100:
        assert len(set(labels)) == listops.NUM_CLASSES


def test_listops_med_of_an_even_count_is_the_rounded_down_mean():
    # [MED 2 5 ] is 3 (LRA's int(np.median)), neither the lower (2) nor the upper median (5).
    assert _evaluate(["[MED", "2", "5", "]"])[0] == 3
    assert listops._apply("[MED", [2, 5]) == 3 and listops._apply("[MED", [5, 0, 9, 1]) == 3


def test_listops_splits_are_deterministic_random_access_and_disjoint(tmp_path):
    tokens, lengths, labels = listops.split(SHORT, 0, "train", 20, str(tmp_path))
    for i in (13, 2):
        example, label = listops.example(SHORT, 0, "train", i)
        assert labels[i] == label and lengths[i] == len(example)
        assert [listops.TOKENS[t] for t in tokens[i, : lengths[i]]] == example
        assert not tokens[i, lengths[i] :].any()
    listops.split.cache_clear()
    cached = listops.split(SHORT, 0, "train", 20, str(tmp_path))  # read back from the .npz
    np.testing.assert_array_equal(cached[0], tokens)
    test_tokens = listops.split(SHORT, 0, "test", 20)[0]
    assert not any((test_tokens == row).all(1).any() for row in tokens)


def _connected(image: np.ndarray, reach: int) -> bool:
    """Whether a flood fill from one marker pixel over the drawn pixels, in jumps of at most
    ``reach`` pixels (Chebyshev), reaches every marker pixel."""
    drawn = image > 0
    markers = list(zip(*np.nonzero(image == pathfinder.MARKER)))
    seen, queue = {markers[0]}, collections.deque([markers[0]])
    while queue:
        r, c = queue.popleft()
        for dr in range(-reach, reach + 1):
            for dc in range(-reach, reach + 1):
                p = (r + dr, c + dc)
                if 0 <= p[0] < image.shape[0] and 0 <= p[1] < image.shape[1]:
                    if drawn[p] and p not in seen:
                        seen.add(p)
                        queue.append(p)
    return all(m in seen for m in markers)


@pytest.mark.parametrize(
    "spec", [pathfinder.Spec(), pathfinder.Spec(contour_length=9, distractors=2)]
)
def test_pathfinder_labels_equal_a_flood_fill_of_the_pixels(spec):
    images, labels = pathfinder.split(spec, 0, "test", 6)
    assert images.shape == (6, spec.size, spec.size) and labels.mean() == 0.5
    for image, label in zip(images, labels):
        assert set(np.unique(image)) == {0, pathfinder.CURVE, pathfinder.MARKER}
        assert _connected(image, spec.gap + 1) == bool(label)
        # Both classes draw the same: two long curves and the distractors, two markers.
        assert (image == pathfinder.MARKER).sum() >= 2 * 4


def test_pathfinder_is_deterministic_per_seed_and_index():
    spec = pathfinder.Spec()
    a, b = pathfinder.example(spec, 1, "train", 5), pathfinder.example(spec, 1, "train", 5)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], pathfinder.example(spec, 2, "train", 5)[0])


def _image_data(path: str) -> ml_collections.ConfigDict:
    data = ml_collections.ConfigDict({"source": "image", "image": data_config("npz", path)})
    return data


@pytest.mark.parametrize("channels", [1, 3])
def test_image_sequences_are_the_grey_images_flattened(channels, tmp_path):
    rng = np.random.default_rng(0)
    shape = (6, 8, 8, channels) if channels == 3 else (6, 8, 8)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=images, y_train=np.arange(6) % 3, x_test=images[:2], y_test=[0, 1])
    split = sequences.open_split(_image_data(str(path)), train=True)
    for i, image in enumerate(images):
        grey = np.asarray(Image.fromarray(image).convert("L"))  # Pillow's ITU-R 601 luma
        np.testing.assert_array_equal(split[i]["tokens"], grey.reshape(-1))
        assert split[i]["length"] == 64 and split[i]["label"] == i % 3
