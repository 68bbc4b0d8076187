"""Bad input on the use side: commands' flags, workdir files, input text, image files and
folders, parallel text, and config fields that name a metric or a layer.

Each test gives one wrong input and checks the error names it (flag, file, line, mode, field)
before any work, and that nothing the user saved changes. The trainer's own faults are in
test_reliability.py; the random-input properties in test_reliability_properties.py.
"""

import json
import logging
import os
import shutil
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
import train_toy_config
from PIL import Image

import attn_research
from attn_research import average_checkpoints, command_flags, predict
from attn_research.data import image_sources, translation
from attn_research.data.image_config import data_config
from attn_research.predict import classifier, run_files
from attn_research.tasks import translation as translation_task
from attn_research.train import train_and_evaluate
from experiments.configs import translate, vit

_TIMEOUT = 300


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A tiny translation run of two steps with a checkpoint after each."""
    workdir = str(tmp_path_factory.mktemp("text_run"))
    config = translate.get_config("tiny")
    config.total_steps = config.eval_every_steps = 2
    config.checkpoint_every_steps = 1
    config.decode.examples = config.decode.aer_examples = 4
    train_and_evaluate(config, workdir)
    return workdir


def _write_classes(root, names=("cat", "dog"), per_class=2, splits=("train", "test")):
    for split in splits:
        for name in names:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = np.full((8, 8, 3), 40 * i + 20 * names.index(name), np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A tiny ViT trained two steps on a folder of 8 x 8 images."""
    root = tmp_path_factory.mktemp("image_run")
    _write_classes(root / "data", per_class=4)
    config = vit.get_config(f"data=folder,path={root / 'data'},tiny")
    config.model.patch = 4
    config.batch_size = 8
    config.total_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
    train_and_evaluate(config, str(root / "run"))
    return str(root / "run")


def _copy(workdir: str, tmp_path) -> str:
    copy = str(tmp_path / "copy")
    shutil.copytree(workdir, copy)
    return copy


def _tree(path: str) -> dict[str, bytes]:
    """Every file under `path` with its contents (what a refusing command must not change)."""
    out = {}
    for folder, _, files in os.walk(path):
        for file in files:
            with open(os.path.join(folder, file), "rb") as f:
                out[os.path.join(folder, file)] = f.read()
    return out


# (1) Command flags are checked while they are parsed, before any work.

_PARSE = """
import json, sys
from absl import flags
import {module}
out = []
for argv in json.loads(sys.argv[1]):
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["command", *argv])
        out.append(None)
    except flags.Error as error:
        out.append(str(error))
print(json.dumps(out))
"""


def _flag_errors(module: str, cases: list[list[str]]) -> list[str | None]:
    """The flag-parsing error of each argument list for `module`'s flags (None: accepted)."""
    done = subprocess.run(
        [sys.executable, "-c", _PARSE.format(module=module), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


_FLAG_CASES = [
    ("attn_research.translate", "beam", "0"),
    ("attn_research.translate", "batch_size", "0"),
    ("attn_research.translate", "alpha", "-1"),
    ("attn_research.translate", "alpha", "nan"),
    ("attn_research.translate", "step", "-1"),
    ("attn_research.translate", "average", "-2"),
    ("attn_research.translate", "input", "{tmp}/missing.txt"),
    ("attn_research.translate", "output", "{tmp}/no/such/dir/out.txt"),
    ("attn_research.translate", "plot", "{tmp}/a_file"),
    ("attn_research.translate", "workdir", "{tmp}/no_run"),
    ("attn_research.classify", "top", "0"),
    ("attn_research.classify", "average", "-1"),
    ("attn_research.classify", "html", "{tmp}"),
    ("attn_research.average_checkpoints", "last", "0"),
    ("attn_research.average_checkpoints", "last", "-3"),
    ("attn_research.average_checkpoints", "step", "-1"),
]


@pytest.fixture(scope="module")
def flag_errors(tmp_path_factory) -> dict[tuple[str, str, str], tuple]:
    """(error with valid flags, error with the case's flag) of every case, parsed in one
    process per command."""
    tmp = tmp_path_factory.mktemp("flags")
    (tmp / "a_file").write_text("x")
    good = [f"--workdir={tmp}"]
    out = {}
    for module in dict.fromkeys(m for m, _, _ in _FLAG_CASES):
        cases = [c for c in _FLAG_CASES if c[0] == module]
        argvs = [good] + [[*good, f"--{flag}={value.format(tmp=tmp)}"] for _, flag, value in cases]
        first, *errors = _flag_errors(module, argvs)
        out.update({case: (first, error) for case, error in zip(cases, errors)})
    return out


@pytest.mark.parametrize("case", _FLAG_CASES, ids=["-".join(c[1:]) for c in _FLAG_CASES])
def test_a_wrong_flag_value_is_refused_naming_the_flag(case, flag_errors):
    good, bad = flag_errors[case]
    assert good is None
    assert bad is not None and f"--{case[1]}=" in bad


def test_translate_beam_zero_ends_before_any_work_and_keeps_the_output(text_run, tmp_path):
    (tmp_path / "out.txt").write_text("my earlier translations\n")
    done = subprocess.run(
        [sys.executable, "-m", "attn_research.translate", f"--workdir={text_run}", "--beam=0"]
        + [f"--output={tmp_path / 'out.txt'}"],
        input="the cat\n",
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
    )
    assert done.returncode != 0 and "--beam=0" in done.stderr and "must be >= 1" in done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "out.txt").read_text() == "my earlier translations\n"


def test_training_with_a_wrong_process_count_ends_at_parsing_and_writes_nothing(tmp_path):
    config = os.path.join(os.path.dirname(__file__), "train_toy_config.py") + ":tiny"
    done = subprocess.run(
        [sys.executable, "-m", "attn_research.main", f"--config={config}"]
        + [f"--workdir={tmp_path / 'run'}", "--num_processes=0"],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
    )
    assert done.returncode != 0 and "flag --num_processes=0: must be >= 1" in done.stderr
    assert "Traceback" not in done.stderr and not os.path.exists(tmp_path / "run")


def test_averaging_zero_checkpoints_writes_nothing(text_run, tmp_path):
    workdir = _copy(text_run, tmp_path)
    with pytest.raises(ValueError, match="last: must be >= 1"):
        average_checkpoints.average_checkpoints(workdir, last=0)
    assert not os.path.exists(os.path.join(workdir, "checkpoints_averaged"))
    with pytest.raises(ValueError, match="step and average must be >= 0"):
        predict.load(workdir, average=-1)


def test_translate_api_refuses_a_zero_beam_before_compiling(text_run):
    predictor = attn_research.load(text_run)
    for keyword, message in (
        ({"beam_size": 0}, "beam_size: must be >= 1"),
        ({"batch_size": 0}, "batch_size: must be >= 1"),
        ({"alpha": -0.5}, "alpha: must be a number >= 0"),
    ):
        with pytest.raises(ValueError, match=message):
            predictor.translate(["the cat"], **keyword)


def test_an_experiment_script_names_its_wrong_flag(tmp_path, monkeypatch, capsys):
    from experiments import write_colour_digits

    out = str(tmp_path / "out")
    np.savez(tmp_path / "digits.npz", x_train=np.zeros((1, 2, 2), np.uint8))
    for flags, named in (
        ([f"--npz={tmp_path / 'missing.npz'}", f"--out={out}"], "--npz"),
        ([f"--npz={tmp_path / 'digits.npz'}", f"--out={out}", "--train=-1"], "--train"),
    ):
        monkeypatch.setattr(sys, "argv", ["write_colour_digits", *flags])
        with pytest.raises(SystemExit) as stopped:
            write_colour_digits.main()
        assert stopped.value.code == 2 and f"argument {named}" in capsys.readouterr().err
    assert not os.path.exists(out)


# (2) Every file the loader reads is named when missing or damaged, with what to do.


def test_config_json_that_is_not_json_is_named_with_what_to_do(text_run, tmp_path):
    workdir = _copy(text_run, tmp_path)
    path = os.path.join(workdir, "config.json")
    for text in ('{"task": "translation",', "[1, 2]", '{"task": "translation"}'):
        with open(path, "w") as f:
            f.write(text)
        with pytest.raises(predict.RunFilesError) as error:
            attn_research.load(workdir)
        assert f"{path} is damaged" in str(error.value) and "restore it" in str(error.value)


def test_a_damaged_tokenizer_is_named(text_run, tmp_path):
    workdir = _copy(text_run, tmp_path)
    (model,) = [f for f in os.listdir(workdir) if f.endswith(".model")]
    config = json.load(open(os.path.join(workdir, "config.json")))
    config["data"]["cache_dir"] = workdir  # Else the original run's tokenizer is found.
    json.dump(config, open(os.path.join(workdir, "config.json"), "w"))
    with open(os.path.join(workdir, model), "wb") as f:
        f.write(b"\x0a\xff not a sentencepiece model")
    with pytest.raises(predict.RunFilesError) as error:
        attn_research.load(workdir)
    message = str(error.value)
    assert os.path.join(workdir, model) in message and "is damaged" in message
    assert "Copy that model" in message


def test_a_damaged_checkpoint_is_named_with_the_steps_to_choose(text_run, tmp_path):
    workdir = _copy(text_run, tmp_path)
    state = os.path.join(workdir, "checkpoints", "1", "state")
    for folder, _, files in os.walk(state):
        for file in files:
            with open(os.path.join(folder, file), "wb") as f:
                f.write(b"damaged")
    with pytest.raises(predict.RunFilesError) as error:
        attn_research.load(workdir, step=1)
    assert f"{state} is damaged" in str(error.value) and "--step" in str(error.value)
    with pytest.raises(predict.RunFilesError, match=f"{state} is damaged"):
        average_checkpoints.average_checkpoints(workdir, last=2)
    assert attn_research.load(workdir).step == 2  # The newest still loads.


def test_a_damaged_labels_json_is_named(image_run, tmp_path):
    workdir = _copy(image_run, tmp_path)
    path = os.path.join(workdir, "labels.json")
    for text in ("{", '{"classes": ["cat"], "image_shape": [8, 8, 3]}', '{"classes": []}'):
        with open(path, "w") as f:
            f.write(text)
        with pytest.raises(predict.RunFilesError, match=f"{path} is damaged"):
            attn_research.load(workdir)


# (3) Input text that is not UTF-8 is refused naming the place, before the model is loaded.


def test_translate_refuses_stdin_that_is_not_utf8_naming_line_and_byte(text_run, tmp_path):
    command = [sys.executable, "-m", "attn_research.translate", f"--workdir={text_run}"]
    done = subprocess.run(
        command,
        input="the cat\n".encode() + "le café\n".encode("latin-1"),
        capture_output=True,
        timeout=_TIMEOUT,
    )
    stderr = done.stderr.decode()
    assert done.returncode != 0 and "<stdin>:2: not UTF-8" in stderr and "b'\\xe9'" in stderr
    assert "Traceback" not in stderr
    (tmp_path / "in.txt").write_bytes(b"ok\n\xff\xfe bad\n")
    done = subprocess.run(
        [*command, f"--input={tmp_path / 'in.txt'}"], capture_output=True, timeout=_TIMEOUT
    )
    assert f"{tmp_path / 'in.txt'}:2: not UTF-8" in done.stderr.decode()


def test_text_with_surrogates_is_refused_naming_the_sentence(text_run):
    predictor = attn_research.load(text_run)
    with pytest.raises(ValueError, match="sentence 1: .* surrogate"):
        predictor.translate(["the cat", "le caf\udce9"])


# (4) Image files of every Pillow mode are read as training reads them, against NumPy.

_rng = np.random.default_rng(0)
_RGB = _rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
_ALPHA = _rng.integers(0, 256, (5, 7), dtype=np.uint8)
_GREY = _RGB[..., 0]
_SIXTEEN = _rng.integers(0, 65536, (5, 7)).astype(np.uint16)
_CMYK = _rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
_FLOAT = _rng.random((5, 7)).astype(np.float32)
_PALETTE = _rng.integers(0, 256, (256, 3), dtype=np.uint8)
_INDEX = _rng.integers(0, 8, (5, 7), dtype=np.uint8)


def _over_black(colour, alpha):
    """Reference compositing over black: round(c * a / 255)."""
    return np.round(colour.astype(np.float64) * alpha[..., None] / 255.0).astype(np.uint8)


def _grey3(grey):
    return np.repeat(grey[..., None], 3, axis=-1)


def _palette_image(transparent: int | None) -> Image.Image:
    image = Image.fromarray(_INDEX, "L").convert("P")
    image.putpalette(_PALETTE.reshape(-1).tolist())
    if transparent is not None:
        image.info["transparency"] = transparent
    return image


def _ycbcr_to_rgb(ycc):
    """JPEG (BT.601 full-range) YCbCr -> RGB."""
    y, cb, cr = (ycc[..., i].astype(np.float64) for i in range(3))
    rgb = np.stack(
        [y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)]
        + [y + 1.772 * (cb - 128)],
        axis=-1,
    )
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


# mode: (image maker, file suffix, reference RGB, tolerance in levels)
_MODES = {
    "1": (lambda: Image.fromarray(_GREY > 127), "png", _grey3((_GREY > 127) * 255), 0),
    "L": (lambda: Image.fromarray(_GREY), "png", _grey3(_GREY), 0),
    "LA": (
        lambda: Image.fromarray(np.stack([_GREY, _ALPHA], -1), "LA"),
        "png",
        _grey3(_over_black(_GREY[..., None], _ALPHA)[..., 0]),
        0,
    ),
    "P": (lambda: _palette_image(None), "png", _PALETTE[_INDEX], 0),
    "P with transparency": (
        lambda: _palette_image(3),
        "png",
        np.where((_INDEX == 3)[..., None], 0, _PALETTE[_INDEX]).astype(np.uint8),
        0,
    ),
    "PA": (
        lambda: _palette_image(None).convert("PA"),
        "tiff",
        _PALETTE[_INDEX],  # the alpha band of P -> PA is opaque
        0,
    ),
    "RGB": (lambda: Image.fromarray(_RGB), "png", _RGB, 0),
    "RGBA": (
        lambda: Image.fromarray(np.concatenate([_RGB, _ALPHA[..., None]], -1), "RGBA"),
        "png",
        _over_black(_RGB, _ALPHA),
        0,
    ),
    "CMYK": (
        lambda: Image.fromarray(_CMYK, "CMYK"),
        "tiff",
        np.round(
            (255.0 - _CMYK[..., :3]) * (255.0 - _CMYK[..., 3:]) / 255.0,
        ).astype(np.uint8),
        1,
    ),
    "YCbCr": (lambda: Image.fromarray(_RGB, "YCbCr"), "tiff", _ycbcr_to_rgb(_RGB), 2),
    "I;16": (lambda: Image.fromarray(_SIXTEEN), "png", _grey3(np.round(_SIXTEEN / 257.0)), 0),
    "I;16B": (
        lambda: Image.frombytes("I;16B", (7, 5), _SIXTEEN.astype(">u2").tobytes()),
        "tiff",
        _grey3(np.round(_SIXTEEN / 257.0)),
        0,
    ),
    "I": (
        lambda: Image.fromarray(_SIXTEEN.astype(np.int32), "I"),
        "tiff",
        _grey3(np.round(_SIXTEEN / 257.0)),
        0,
    ),
    "F": (lambda: Image.fromarray(_FLOAT, "F"), "tiff", _grey3(np.round(_FLOAT * 255.0)), 0),
}


def _luma(rgb):
    """ITU-R 601-2 luma, the grey a one-channel model reads."""
    return np.round(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))


def _save(mode: str, directory) -> tuple[str, np.ndarray, int]:
    make, suffix, reference, tolerance = _MODES[mode]
    image = make()
    path = os.path.join(directory, f"image.{suffix}")
    image.save(path, **({"transparency": 3} if "transparency" in image.info else {}))
    return path, np.asarray(reference, np.uint8), tolerance


def _close(got, want, tolerance):
    assert got.shape == want.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= tolerance


@pytest.mark.parametrize("mode", list(_MODES))
def test_classify_reads_every_mode_as_the_numpy_reference(mode, tmp_path):
    path, reference, tolerance = _save(mode, tmp_path)
    ((name, image),) = classifier.read_images(path)
    assert name == path
    _close(image.reshape(reference.shape), reference, tolerance)


@pytest.mark.parametrize("mode", list(_MODES))
@pytest.mark.parametrize("channels", [1, 3])
def test_the_folder_source_reads_every_mode_as_the_numpy_reference(mode, channels, tmp_path):
    for name in ("other", "this"):
        (tmp_path / "train" / name).mkdir(parents=True)
        path, reference, tolerance = _save(mode, tmp_path / "train" / name)
    data = data_config("folder", str(tmp_path))
    data.channels, data.image_size = channels, 0
    split = image_sources.open_split(data, "train")
    want = reference if channels == 3 else _luma(reference)[..., None].astype(np.uint8)
    for i in range(len(split)):
        _close(split[i]["image"], want, tolerance + (channels == 1))


@pytest.mark.parametrize(
    "make, mode",
    [
        (lambda: Image.fromarray(_RGB, "RGB").convert("LAB"), "LAB"),
        (lambda: Image.fromarray(np.full((4, 4), 70000, np.int32), "I"), "I"),
        (lambda: Image.fromarray(np.full((4, 4), 2.5, np.float32), "F"), "F"),
    ],
)
def test_a_mode_that_cannot_be_read_faithfully_is_refused_by_name(make, mode, tmp_path):
    path = str(tmp_path / "image.tiff")
    make().save(path)
    with pytest.raises(ValueError, match=f"{path}: Pillow mode '{mode}'"):
        classifier.read_images(path)


# (5) Image folders and parallel text: no class or pair is lost silently.


def test_a_folder_of_one_class_is_refused(tmp_path):
    _write_classes(tmp_path, names=("cat",))
    with pytest.raises(ValueError, match="1 class folder.*two or more"):
        image_sources.num_classes(data_config("folder", str(tmp_path)))


def test_empty_class_folders_and_skipped_files_are_warned_with_counts(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    _write_classes(tmp_path)
    (tmp_path / "train" / "bird").mkdir()
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "dog" / "Thumbs.db").write_bytes(b"")
    split = image_sources.open_split(data_config("folder", str(tmp_path)), "train")
    assert len(split) == 4
    assert "1 of the 3 classes have no images in this split: ['bird']" in caplog.text
    assert "skipped 2 files that are not images" in caplog.text


def test_images_in_sub_folders_are_read_as_their_class_and_counted(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    _write_classes(tmp_path)
    for year in ("2019", "2020"):
        _write_classes(tmp_path / "train" / "cat" / year, names=("x",), splits=(".",))
    split = image_sources.open_split(data_config("folder", str(tmp_path)), "train")
    labels = [int(split[i]["label"]) for i in range(len(split))]
    assert labels.count(0) == 6 and labels.count(1) == 2
    assert "4 of the 8 images are in sub-folders of their class folder" in caplog.text


def _parallel(tmp_path, sources: list[str], targets: list[str]) -> dict:
    for lang, lines in (("en", sources), ("es", targets)):
        (tmp_path / f"train.{lang}").write_text("".join(line + "\n" for line in lines))
    data = ml_collections.ConfigDict(
        dict(
            translation.corpus_key(translate.get_config("tiny").data),
            name="parallel",
            path=str(tmp_path / "{split}.{lang}"),
            source_lang="en",
            target_lang="es",
            validation_fraction=0.25,
            test_fraction=0.25,
        )
    )
    return translation.load_corpus(data)


def test_parallel_text_with_one_side_empty_is_refused_as_tsv_refuses_it(tmp_path):
    (tmp_path / "c.tsv").write_text("the cat\tel gato\n\tla casa\n")
    with pytest.raises(ValueError, match="c.tsv:2: the source sentence is empty"):
        translation.read_tsv(str(tmp_path / "c.tsv"))
    with pytest.raises(ValueError, match=r"train.en:2 and .*train.es:2: the source sentence is"):
        _parallel(tmp_path, ["the cat", "", "a", "b"], ["el gato", "la casa", "c", "d"])


def test_parallel_text_skips_blank_pairs_as_tsv_does(tmp_path):
    splits = _parallel(tmp_path, ["a", "", "b", "c", "d"], ["w", "  ", "x", "y", "z"])
    pairs = {p for s in splits.values() for p in zip(s.sources, s.targets)}
    assert pairs == {("a", "w"), ("b", "x"), ("c", "y"), ("d", "z")}


# (6) Config fields that name a metric or a layer are checked before the first step.


def test_a_misspelt_best_metric_fails_before_the_first_step(tmp_path):
    config = train_toy_config.with_changes(total_steps=20, best_metric="eval/acuracy")
    with pytest.raises(ValueError, match="config.best_metric: 'eval/acuracy'.*'eval/accuracy'"):
        train_and_evaluate(config, str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints" / "10")
    assert not os.path.exists(tmp_path / "checkpoints_best")


def test_a_best_metric_of_an_evaluator_is_accepted(tmp_path):
    config = train_toy_config.with_changes(total_steps=20, best_metric="eval/param_norm")
    assert train_and_evaluate(config, str(tmp_path))["step"] == 20


def test_an_alignment_layer_the_model_lacks_is_refused(tmp_path):
    config = translate.get_config("model=transformer,tiny")
    config.data.cache_dir = str(tmp_path)
    config.decode.alignment_layer = 5
    with pytest.raises(ValueError, match="config.decode.alignment_layer: 5 names none"):
        translation_task.TranslationTask().validate(config)
    config.decode.alignment_layer = -1
    translation_task.TranslationTask().validate(config)


def test_params_of_another_model_are_named_as_the_trainer_names_them():
    """One spelling of a parameter's path in every error: '/'-joined, as train/paths.py."""
    params = {"encoder": {"layer": {"kernel": np.zeros((8, 16))}}}
    abstract = {"encoder": {"layer": {"kernel": jax.ShapeDtypeStruct((8, 32), np.float32)}}}
    with pytest.raises(ValueError, match=r"encoder/layer/kernel: saved \(8, 16\), model \(8, 32\)"):
        run_files.place_params(params, abstract, "checkpoint 5")


def test_a_benchmark_output_may_sit_in_folders_still_to_be_made(tmp_path):
    assert command_flags.creatable_file(str(tmp_path / "new" / "deeper" / "out.json")) is None
    assert "is a directory" in command_flags.creatable_file(str(tmp_path))
    (tmp_path / "a_file").write_text("")
    assert "not a writable directory" in command_flags.creatable_file(
        str(tmp_path / "a_file" / "out.json")
    )
