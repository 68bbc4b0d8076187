"""Random input to the readers and parsers: a defined result or a ValueError with a message.

Random bytes, random Unicode, empty and huge inputs go to the TSV and parallel-text readers,
the config-argument parser (``file.py:key=value,...``), the image-file reader and the Pillow
mode conversion. Each either returns what its contract says or raises a ValueError (or
subclass) whose message names the input; no other exception may come out of a library.
"""

import os
import tempfile

import ml_collections
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from attn_research.data import image_modes, translation
from attn_research.predict import classifier
from attn_research.train import parse_arg
from experiments.configs import translate

_SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _write(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _tsv_or_error(path: str):
    """read_tsv's pairs, or the message of its ValueError (which must name the file)."""
    try:
        return translation.read_tsv(path)
    except ValueError as error:
        assert os.path.basename(path) in str(error)
        return str(error)


def _check_pairs(pairs) -> None:
    for side in pairs:
        for sentence in side:
            assert sentence and sentence == sentence.strip()
            assert "\n" not in sentence and "\t" not in sentence


_TSV_BYTES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.lists(
        st.tuples(st.text(max_size=20), st.sampled_from(["\t", "\t\t", "", " \t "])),
        max_size=12,
    ).map(lambda rows: "\n".join(a + sep + a[::-1] for a, sep in rows).encode("utf-8")),
)


@_SETTINGS
@given(data=_TSV_BYTES)
def test_tsv_reader_gives_clean_pairs_or_a_named_error(data, tmp_path):
    with tempfile.TemporaryDirectory(dir=tmp_path) as directory:
        result = _tsv_or_error(_write(directory, "corpus.tsv", data))
    if not isinstance(result, str):
        sources, targets = result
        assert len(sources) == len(targets) > 0
        _check_pairs(result)


# A sentence of a line: any text without the line and column separators of the formats.
_SENTENCE = st.text(
    st.characters(blacklist_characters="\n\r\t", blacklist_categories=("Cs",)), max_size=12
)


def _parallel_or_error(directory: str, pairs: list[tuple[str, str]]):
    """The train pairs read by the parallel reader, or its ValueError's message."""
    for split in translation.SPLITS:  # All three: nothing is split off train.
        for lang, side in (("en", 0), ("es", 1)):
            text = "".join(pair[side] + "\n" for pair in pairs)
            _write(directory, f"{split}.{lang}", text.encode("utf-8"))
    data = ml_collections.ConfigDict(
        dict(
            translation.corpus_key(translate.get_config("tiny").data),
            name="parallel",
            path=os.path.join(directory, "{split}.{lang}"),
            source_lang="en",
            target_lang="es",
        )
    )
    try:
        train = translation.load_corpus(data)["train"]
    except ValueError as error:
        return str(error)
    return list(train.sources), list(train.targets)


@_SETTINGS
@given(pairs=st.lists(st.tuples(_SENTENCE, _SENTENCE), max_size=10))
def test_tsv_and_parallel_text_follow_one_rule_for_pairs(pairs, tmp_path):
    with tempfile.TemporaryDirectory(dir=tmp_path) as directory:
        tsv = "".join(f"{s}\t{t}\n" for s, t in pairs).encode("utf-8")
        from_tsv = _tsv_or_error(_write(directory, "corpus.tsv", tsv))
        from_parallel = _parallel_or_error(directory, pairs)
    assert isinstance(from_tsv, str) == isinstance(from_parallel, str)
    if isinstance(from_tsv, str):
        assert ("empty" in from_tsv) == ("empty" in from_parallel)
    else:
        assert tuple(from_tsv) == tuple(from_parallel)
        _check_pairs(from_tsv)


def test_huge_text_inputs_are_read(tmp_path):
    line = "word " * 40_000 + "\tpalabra " * 3
    path = _write(str(tmp_path), "huge.tsv", (line + "\n").encode() * 50)
    sources, targets = translation.read_tsv(path)
    assert len(sources) == 50 and len(sources[0].split()) == 40_000
    assert targets[0] == "palabra"


_DEFAULTS = {"attention": "dense", "window": 0, "rate": 0.5, "tiny": False}


@_SETTINGS
@given(arg=st.one_of(st.text(max_size=60), st.just("window=" + "9" * 5000), st.just("")))
def test_config_args_parse_to_typed_values_or_a_value_error(arg):
    try:
        parsed = parse_arg(arg, **_DEFAULTS)
    except ValueError as error:
        assert str(error)
        return
    assert set(parsed.keys()) == set(_DEFAULTS)
    for key, default in _DEFAULTS.items():
        assert type(parsed[key]) is type(default)


@_SETTINGS
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=400).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
        st.binary(max_size=400).map(lambda b: b"II*\x00" + b),
    )
)
def test_any_file_is_read_as_an_image_or_refused_by_name(data, tmp_path):
    with tempfile.TemporaryDirectory(dir=tmp_path) as directory:
        path = _write(directory, "image.png", data)
        try:
            ((name, image),) = classifier.read_images(path)
        except ValueError as error:
            assert path in str(error)
            return
    assert name == path and image.dtype == np.uint8 and image.ndim == 3


_ALL_MODES = (*image_modes.MODES, "LAB", "HSV", "I;16S", "I;32", "BGR;24")


def _random_image(mode: str, width: int, height: int, raw: bytes) -> Image.Image | None:
    """An image of `mode` from random bytes (None where Pillow cannot make the mode)."""
    try:
        size = len(Image.new(mode, (width, height)).tobytes())
    except (ValueError, OSError):
        return None
    raw = (raw * (size // max(len(raw), 1) + 1))[:size] if raw else bytes(size)
    return Image.frombytes(mode, (width, height), raw)


@_SETTINGS
@given(
    mode=st.sampled_from(_ALL_MODES),
    width=st.integers(1, 6),
    height=st.integers(1, 6),
    raw=st.binary(max_size=200),
    channels=st.sampled_from([1, 3]),
)
def test_every_mode_converts_to_uint8_pixels_or_is_refused_by_name(
    mode, width, height, raw, channels
):
    image = _random_image(mode, width, height, raw)
    if image is None:
        return
    try:
        pixels = image_modes.to_pixels(image, channels, "x.tiff")
    except ValueError as error:
        assert "x.tiff" in str(error) and repr(mode) in str(error)
        assert mode not in image_modes.MODES or mode in ("I", "F")
        return
    assert pixels.shape == (height, width, channels) and pixels.dtype == np.uint8


@pytest.mark.parametrize(
    "mode, bands",
    [("La", lambda c, a: c[..., :1]), ("RGBa", lambda c, a: c[..., :3])],
)
def test_premultiplied_modes_keep_their_stored_colour(mode, bands):
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 256, (3, 4, len(mode)), dtype=np.uint8)
    image = Image.frombytes(mode, (4, 3), stored.tobytes())
    want = bands(stored, None)
    got = image_modes.to_pixels(image, 3, "x")
    np.testing.assert_array_equal(got, np.broadcast_to(want, got.shape))


def test_rgbx_drops_its_padding_band():
    rng = np.random.default_rng(2)
    stored = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    image = Image.frombytes("RGBX", (4, 3), stored.tobytes())
    np.testing.assert_array_equal(image_modes.to_pixels(image, 3, "x"), stored[..., :3])


def test_a_huge_image_is_read(tmp_path):
    path = str(tmp_path / "big.png")
    Image.fromarray(np.full((2000, 3000), 65535, np.uint16)).save(path)
    ((_, image),) = classifier.read_images(path)
    assert image.shape == (2000, 3000, 3) and image.min() == 255


def test_empty_files_are_refused_by_name(tmp_path):
    for name, read in (
        ("empty.tsv", translation.read_tsv),
        ("empty.png", classifier.read_images),
    ):
        path = _write(str(tmp_path), name, b"")
        with pytest.raises(ValueError, match=name):
            read(path)
