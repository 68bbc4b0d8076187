"""Applying trained translators: `attn_research.load`, `predictor.translate` and the CLI."""

import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_explorer import chromium, hover_weights
from test_metric_writer import images_by_tag

import attn_research
from attn_research import predict
from attn_research.data import tokenizer as tokenizer_lib
from attn_research.data import translation_pipeline
from attn_research.evaluation import alignment
from attn_research.models.rnn_translator import RnnTranslator
from attn_research.predict import pharaoh
from attn_research.tasks.translation import TranslationEvaluator
from attn_research.train import train_and_evaluate
from experiments import bench_predict
from experiments.configs import translate

# A few steps at a tiny learning rate keep the models near their initialization, far from the
# EOS-first optimum of short tiny runs: they write long outputs that exercise beam and attention.
_STEPS = 4


def _train(tmp_path_factory, arg: str) -> str:
    workdir = str(tmp_path_factory.mktemp("run"))
    config = translate.get_config(arg)
    config.total_steps = config.eval_every_steps = _STEPS
    config.checkpoint_every_steps = _STEPS // 2
    config.optimizer.learning_rate = 1e-6
    config.decode.examples = config.decode.aer_examples = 8
    train_and_evaluate(config, workdir)
    return workdir


@pytest.fixture(scope="module")
def rnn(tmp_path_factory):
    return _train(tmp_path_factory, "tiny")


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    return _train(tmp_path_factory, "model=transformer,tiny")


@pytest.fixture(scope="module")
def rnn_none(tmp_path_factory):
    return _train(tmp_path_factory, "attention=none,tiny")


def _sources(predictor, n=12):
    return TranslationEvaluator(predictor.config)._sources[:n]


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("run", ["rnn", "transformer"])
def test_translations_equal_the_training_time_evaluation(run, beam, request):
    predictor = attn_research.load(request.getfixturevalue(run))
    predictor.config.decode.beam_size = beam
    evaluator = TranslationEvaluator(predictor.config)
    sources = evaluator._sources[:12]
    expected = evaluator.translate(predictor.params, predictor.model, sources)
    got = predictor.translate(sources)
    assert [t.text for t in got] == expected
    if beam == 1:  # Beam search prefers the empty output of a near-uniform model.
        assert any(expected), "the model should write something"
    # The same pieces go in: word-by-word encoding equals the evaluator's whole-line encoding.
    ids = translation_pipeline.encode_sources(
        predictor.tokenizer, sources, predictor.config.data.max_source_len
    )
    for i, source in enumerate(sources):
        encoded = predictor._encode(i, source)[0].ids
        np.testing.assert_array_equal(encoded, ids[i, : encoded.size])


def _greedy_by_steps(predictor, source: str):
    """Tokens and per-step attention [T, S] of greedy decoding, one RnnTranslator.step at a time."""
    model, params = predictor.model, {"params": predictor.params}
    ids = translation_pipeline.encode_sources(
        predictor.tokenizer, [source], predictor.config.data.max_source_len
    )
    memory, state = model.apply(params, jnp.asarray(ids), method=RnnTranslator.encode)
    token, tokens, rows = jnp.asarray([tokenizer_lib.BOS_ID]), [], []
    limit = int(predictor.config.decode.max_len_ratio * (ids != 0).sum()) + 10
    for _ in range(limit):
        logits, state, weights = model.apply(
            params, memory, state, token, method=RnnTranslator.step
        )
        token = jnp.argmax(logits, -1)
        tokens.append(int(token[0]))
        rows.append(np.asarray(weights[0]))
        if tokens[-1] == tokenizer_lib.EOS_ID:
            break
    return np.asarray(tokens), np.stack(rows), ids[0]


def test_attention_is_what_each_greedy_step_used(rnn):
    predictor = attn_research.load(rnn)
    source = _sources(predictor)[1]
    (result,) = predictor.translate([source], beam_size=1)
    tokens, weights_TS, ids = _greedy_by_steps(predictor, source)
    assert result.text == predictor.tokenizer.decode(tokens)
    # Word level by hand: sum over a source word's pieces, mean over a target word's pieces.
    pieces = [predictor.tokenizer.encode(w).size for w in source.split()]
    source_word = np.repeat(np.arange(len(pieces)), pieces)
    target_word = predictor.tokenizer.word_ids(tokens)
    expected = np.zeros((len(result.target_words), len(pieces)))
    for t, tw in enumerate(target_word):
        for s, sw in enumerate(source_word):
            if tw >= 0:
                expected[tw, sw] += weights_TS[t, s] / (target_word == tw).sum()
    np.testing.assert_allclose(result.attention, expected, atol=1e-5)
    assert result.alignment == tuple(
        sorted((int(np.argmax(row)), j) for j, row in enumerate(expected))
    )


def test_empty_lines_give_empty_translations_and_keep_the_count(rnn):
    predictor = attn_research.load(rnn)
    source = _sources(predictor)[0]
    got = predictor.translate(["", source, "   ", source], beam_size=1)
    assert len(got) == 4
    assert got[0].text == got[2].text == "" and got[0].alignment == ()
    assert got[1].text == got[3].text


def test_a_long_line_is_cut_with_a_warning_that_says_by_how_much(rnn, caplog):
    predictor = attn_research.load(rnn)
    longest = predictor.config.data.max_source_len - 1
    source = " ".join(["la"] * (longest + 5))
    pieces = sum(predictor.tokenizer.encode(w).size for w in source.split())
    with caplog.at_level(logging.WARNING):
        (result,) = predictor.translate([source], beam_size=1)
    assert result.truncated == pieces - longest
    assert f"its last {pieces - longest} pieces are cut" in caplog.text
    assert result.attention.shape == (len(result.target_words), len(result.source_words))
    assert len(result.source_words) < len(source.split())


def test_unknown_characters_keep_one_column_per_word(rnn):
    predictor = attn_research.load(rnn)
    (result,) = predictor.translate(["the 猫 ☃ sat ."], beam_size=1)
    assert result.source_words == ("the", "猫", "☃", "sat", ".")
    assert result.attention.shape == (len(result.target_words), 5)
    assert all(i < 5 for i, _ in result.alignment)


def test_rnn_without_attention_gives_no_alignments(rnn_none):
    predictor = attn_research.load(rnn_none)
    assert not predictor.has_attention
    (result,) = predictor.translate([_sources(predictor)[0]])
    assert result.alignment is None and result.attention is None
    assert pharaoh.output_line(result, True) == result.text + " ||| "


def test_pharaoh_links_round_trip():
    links = {(0, 0), (2, 1), (10, 3)}
    assert pharaoh.format_links(links) == "0-0 2-1 10-3"
    assert pharaoh.parse_links("0-0 2-1 10-3") == links
    with pytest.raises(ValueError, match="'1:2' is not a Pharaoh link"):
        pharaoh.parse_links("0-0 1:2")


def test_missing_files_are_named(rnn, tmp_path):
    with pytest.raises(predict.RunFilesError, match="does not exist"):
        attn_research.load(str(tmp_path / "nowhere"))
    with pytest.raises(predict.RunFilesError, match="config.json is missing"):
        attn_research.load(str(tmp_path))
    copy = tmp_path / "copy"
    shutil.copytree(rnn, copy, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(predict.RunFilesError, match="No complete checkpoint"):
        attn_research.load(str(copy))
    shutil.copytree(os.path.join(rnn, "checkpoints"), copy / "checkpoints")
    for model in copy.glob("spm_*.model"):
        model.unlink()
    config = json.loads((copy / "config.json").read_text())
    config["data"]["cache_dir"] = str(copy)  # Else the original run's tokenizer is found.
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(predict.RunFilesError, match="tokenizer is missing"):
        attn_research.load(str(copy))
    with pytest.raises(predict.RunFilesError, match="No complete checkpoint of step 5"):
        attn_research.load(rnn, step=5)


def _old_transformer_fields(model):
    for old, new in (("family", "name"), ("emb_dim", "embed_dim")):
        model[old] = model.pop(new)
    model["positions"] = model.pop("position_embedding")


def _old_rnn_attention(model):
    assert model["attention"] == "additive"
    model.update(attention="bahdanau", score="dot", align="global", window=8)


@pytest.mark.parametrize(
    "run, make_old", [("transformer", _old_transformer_fields), ("rnn", _old_rnn_attention)]
)
def test_a_run_saved_in_old_words_loads_and_translates_the_same(run, make_old, request, tmp_path):
    trained = request.getfixturevalue(run)
    workdir = tmp_path / "old"
    shutil.copytree(trained, workdir)
    config = json.loads((workdir / "config.json").read_text())
    make_old(config["model"])
    config["data"]["cache_dir"] = trained  # its tokenizer
    (workdir / "config.json").write_text(json.dumps(config))
    sentences = ["a b c", "d e"]
    got = attn_research.load(str(workdir)).translate(sentences)
    expected = attn_research.load(trained).translate(sentences)
    assert [t.text for t in got] == [t.text for t in expected]
    assert np.array_equal(got[0].attention, expected[0].attention)


def test_a_run_writing_a_checkpoint_loads_its_newest_complete_one(rnn, tmp_path, caplog):
    workdir = tmp_path / "run"
    shutil.copytree(rnn, workdir)
    checkpoints = workdir / "checkpoints"
    newest = checkpoints / str(_STEPS)
    # A save in progress (orbax's temporary directory) and a step whose state does not read.
    shutil.copytree(newest, checkpoints / f"{3 * _STEPS}.orbax-checkpoint-tmp-1234")
    shutil.copytree(newest, checkpoints / str(2 * _STEPS))
    shutil.rmtree(checkpoints / str(2 * _STEPS) / "state")
    with caplog.at_level(logging.WARNING):
        predictor = attn_research.load(str(workdir))
    assert predictor.step == _STEPS
    assert f"Checkpoint of step {2 * _STEPS}" in caplog.text
    assert attn_research.load(str(workdir), step=_STEPS // 2).step == _STEPS // 2


def test_params_restore_onto_one_device_from_a_run_on_eight(rnn):
    assert len(jax.devices()) == 8  # tests/conftest.py: the run trained on 8 devices
    predictor = attn_research.load(rnn)
    devices = {d for leaf in jax.tree.leaves(predictor.params) for d in leaf.devices()}
    assert devices == {jax.devices()[0]}


def _translate_cli(workdir: str, lines: list[str], tmp_path, *flags: str) -> None:
    """Runs `python -m attn_research.translate` (greedy) on `lines` written to a file."""
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    command = [sys.executable, "-m", "attn_research.translate", f"--workdir={workdir}"]
    command += [f"--input={tmp_path / 'in.txt'}", "--beam=1", *flags]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


def test_cli_writes_one_line_per_input_line_with_alignments_and_heatmaps(rnn, tmp_path):
    predictor = attn_research.load(rnn)
    lines = ["", *_sources(predictor, 3)]
    _translate_cli(
        rnn,
        lines,
        tmp_path,
        f"--output={tmp_path / 'out.txt'}",
        "--alignments",
        f"--plot={tmp_path / 'plots'}",
    )
    out = (tmp_path / "out.txt").read_text().split("\n")[:-1]
    assert len(out) == len(lines) and out[0] == " ||| "
    expected = predictor.translate(lines, beam_size=1)
    for line, result in zip(out, expected):
        text, links = line.split(" ||| ")
        assert text == result.text
        assert pharaoh.parse_links(links) == set(result.alignment)
    drawn = [r for r in expected if r.target_words]
    assert len(list((tmp_path / "plots").glob("attention_*.png"))) == len(drawn)


def test_cli_names_a_missing_workdir(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "attn_research.translate", f"--workdir={tmp_path / 'x'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_runs_figures_are_in_tensorboard_and_its_explorer_in_figures(rnn):
    images = images_by_tag(pathlib.Path(rnn))
    assert [step for step, _, _ in images["figures/attention_0"]] == [_STEPS]
    assert [step for step, _, _ in images["figures/bleu_by_length"]] == [_STEPS]
    page = pathlib.Path(rnn) / "figures" / "explorer.html"
    assert page.read_text().count('class="item"') == 1  # tiny: decode.num_figures = 1


def test_bench_predict_writes_a_row_per_mode(rnn, tmp_path, monkeypatch):
    out = tmp_path / "bench.json"
    argv = ["bench", f"--workdir={rnn}", "--examples=3", "--repeats=1", f"--json={out}"]
    monkeypatch.setattr(sys, "argv", argv)
    bench_predict.main()
    result = json.loads(out.read_text())
    assert result["sentences"] == 3
    assert [row["mode"] for row in result["rows"]] == [
        "batched",
        "batched, no attention",
        "one_at_a_time",
        "eval_path",
    ]


@pytest.mark.parametrize("run, head", [("rnn", None), ("transformer", "head 2")])
def test_cli_explorer_highlights_the_source_words_the_matrix_says(run, head, request, tmp_path):
    workdir = request.getfixturevalue(run)
    predictor = attn_research.load(workdir)
    lines = _sources(predictor, 2)
    page = tmp_path / "explorer.html"
    _translate_cli(workdir, lines, tmp_path, f"--html={page}")
    result = predictor.translate(lines, beam_size=1)[1]
    word = len(result.target_words) // 2
    layer = list(result.views)[-1]
    expected = result.views[layer][head or "average"][word]
    browser = chromium()
    try:
        weights, top = hover_weights(browser, str(page), 1, word, layer, head)
    finally:
        browser.quit()
    np.testing.assert_allclose(weights, expected, atol=1e-5)
    assert top == [int(np.argmax(expected))]


def test_views_are_every_attention_map_and_head_in_words(transformer):
    predictor = attn_research.load(transformer)
    sentence = next(s for s in _sources(predictor) if predictor.translate([s], beam_size=1)[0].text)
    (result,) = predictor.translate([sentence], beam_size=1)
    source, _ = predictor._encode(0, sentence)
    (tokens,) = predictor._decoders(
        predictor.model, predictor.params, source.ids[None], beam_size=1
    )
    target = tokens[: len(tokens) - np.argmax(tokens[::-1] != 0)]  # up to its last non-PAD
    target_in = np.concatenate([[tokenizer_lib.BOS_ID], target[:-1]])[None]
    maps = predictor.model.attention_maps(predictor.params, source.ids[None], target_in)
    assert list(result.views) == [m.name for m in maps] == ["decoder/cross/layer1"]
    heads = predictor.config.model.num_heads
    for m in maps:
        view = result.views[m.name]
        assert list(view) == ["average"] + [f"head {h + 1}" for h in range(heads)]
        for h in range(heads):
            expected = alignment.word_attention(
                np.asarray(m.weights[0, h]), predictor.tokenizer.word_ids(target), source.word_ids
            )
            np.testing.assert_allclose(view[f"head {h + 1}"], expected, atol=1e-5)
        # Word attention is linear in the weights: the heads' mean is the average.
        np.testing.assert_allclose(
            np.mean([view[f"head {h + 1}"] for h in range(heads)], 0), view["average"], atol=1e-5
        )
    np.testing.assert_allclose(result.attention, result.views[maps[-1].name]["average"])


def test_the_explorer_written_in_training_shows_every_layer_and_head(transformer):
    page = (pathlib.Path(transformer) / "figures" / "explorer.html").read_text()
    data = page.split('<script type="application/json" id="data">')[1].split("</script>")[0]
    (views,) = json.loads(data)  # tiny: decode.num_figures = 1
    assert {layer: list(heads) for layer, heads in views.items()} == {
        "decoder/cross/layer1": ["average", "head 1", "head 2"]
    }
    heads = np.asarray([views["decoder/cross/layer1"][f"head {h}"] for h in (1, 2)])
    np.testing.assert_allclose(heads.mean(0), views["decoder/cross/layer1"]["average"], atol=1e-5)


@pytest.mark.parametrize(
    "arg",
    [
        "attention=luong,score=general",
        "attention=luong,score=general,positions=local_p,window=3",
        "cell=lstm",
        "model=transformer,attention=local,window=4",
        "model=transformer,attention=additive",
    ],
)
def test_every_family_translates_as_its_evaluation_does(arg, tmp_path_factory):
    predictor = attn_research.load(_train(tmp_path_factory, f"{arg},tiny"))
    predictor.config.decode.beam_size = 1
    evaluator = TranslationEvaluator(predictor.config)
    sources = evaluator._sources[:4]
    got = predictor.translate(sources)
    assert [t.text for t in got] == evaluator.translate(predictor.params, predictor.model, sources)
    for t in got:
        assert t.attention.shape == (len(t.target_words), len(t.source_words))
        # Rows sum to 1 less the weight on the source's EOS, which is no word.
        assert np.all(t.attention.sum(-1) <= 1.0 + 1e-5) and np.all(t.attention >= 0)


def test_a_workdir_given_as_a_relative_path_loads(rnn, monkeypatch):
    monkeypatch.chdir(os.path.dirname(rnn))
    relative = attn_research.load(os.path.basename(rnn))
    assert relative.step == attn_research.load(rnn).step
