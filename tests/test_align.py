"""Forced alignment of given pairs: `predictor.align`, `python -m attn_research.align`, and the
training-time evaluation's gold set (`config.decode.gold_*`)."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
import test_predict_translation

import attn_research
from attn_research import predict
from attn_research.evaluation import alignment, gold_alignments
from attn_research.predict import pharaoh
from attn_research.tasks import translation_gold
from attn_research.tasks.translation import TranslationEvaluator, TranslationTask
from attn_research.train import train_and_evaluate
from experiments.configs import translate

# Tiny runs trained as in tests/test_predict_translation.py (module-scoped: once per module).
rnn, transformer = test_predict_translation.rnn, test_predict_translation.transformer


@pytest.fixture(scope="module")
def transformer_aligner(tmp_path_factory):
    """A tiny guided Transformer with an alignment head (``models.aligner``)."""
    return test_predict_translation._train(
        tmp_path_factory, "model=transformer,tiny,guided,aligner=8"
    )


def _eval_pairs(predictor, n):
    """The first `n` pairs of the run's evaluation split that its AER reads, and their gold."""
    evaluator = TranslationEvaluator(predictor.config)
    split = evaluator._split
    return split.sources[:n], split.targets[:n], split.alignments[:n]


@pytest.mark.parametrize("run", ["rnn", "transformer", "transformer_aligner"])
def test_forced_alignment_gives_the_training_time_evaluations_matrices(run, request):
    predictor = attn_research.load(request.getfixturevalue(run))
    config = predictor.config
    assert (list(predictor.align(["a"], ["b"])[0].attention.views)[-1] == "aligner") == (
        run == "transformer_aligner"
    )
    config.decode.num_figures = config.decode.aer_examples = 4
    evaluator = TranslationEvaluator(config)
    metrics, pairs = evaluator._alignments(predictor.params, predictor.model)
    sources = [" ".join(source) for source, _, _, _ in pairs]
    targets = [" ".join(target) for _, target, _, _ in pairs]
    got = predictor.align(sources, targets)
    for result, (_, _, chosen, views) in zip(got, pairs):
        assert list(result.attention.views) == list(views)
        for name, heads in views.items():
            assert list(result.attention.views[name]) == list(heads)
            for head, expected in heads.items():
                np.testing.assert_allclose(result.attention.views[name][head], expected, atol=1e-5)
        assert result.links == tuple(sorted(alignment.hard_alignment(chosen)))
    gold = evaluator._split.alignments[:4]
    assert alignment.aer([set(r.links) for r in got], [set(g) for g in gold]) == pytest.approx(
        metrics["aer"]
    )


def test_an_rnn_aligns_a_pair_longer_than_its_training_length(rnn):
    predictor = attn_research.load(rnn)
    longest = predictor.config.data.max_source_len
    source = " ".join(["la"] * (longest + 7))
    (result,) = predictor.align([source], ["el gato"])
    assert result.attention is not None
    assert result.attention.views["decoder/attention"]["average"].shape == (2, longest + 7)
    assert len(result.links) == 2


def test_a_sinusoidal_transformer_takes_any_length_and_a_learned_one_names_its_limit(
    transformer, tmp_path
):
    predictor = attn_research.load(transformer)
    assert predictor.model.length_limit is None
    long_source = " ".join(["la"] * (predictor.config.data.max_source_len + 5))
    (result,) = predictor.align([long_source], ["el gato"])
    assert len(result.attention.views["decoder/cross/layer1"]["average"][0]) == len(
        long_source.split()
    )
    config = predictor.config.copy_and_resolve_references()
    config.model.position_embedding, config.model.max_len = "learned", 16
    task = TranslationTask()
    model = task.make_model(config)
    assert model.length_limit == 16
    params = task.init_params(model, jax.random.key(0), config)
    learned = predict.TranslationPredictor(config, params, predictor.tokenizer, 0)
    with pytest.raises(ValueError, match="pair 2: .* reads at most 16"):
        learned.align(["a b", long_source], ["c", "d"])
    _write_gold(tmp_path, ["a b", long_source], ["c", "d"], [{(0, 0)}, {(0, 0)}])
    config.decode.gold_source = str(tmp_path / "src.txt")
    config.decode.gold_target = str(tmp_path / "tgt.txt")
    config.decode.gold_links = str(tmp_path / "gold.txt")
    with pytest.raises(ValueError, match="config.decode.gold_source: pair 2: .* at most 16"):
        translation_gold.load(config.decode, predictor.tokenizer, model)


def test_empty_lines_give_empty_alignments_and_keep_the_count(rnn):
    predictor = attn_research.load(rnn)
    sources, targets, _ = _eval_pairs(predictor, 2)
    got = predictor.align(["", sources[0], "x", sources[1]], ["", targets[0], "", targets[1]])
    assert [r.links for r in got[:3:2]] == [(), ()]
    assert got[1].links and got[3].links
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        predictor.align(sources, targets, method="nope")
    with pytest.raises(ValueError, match="2 sources but 1 targets"):
        predictor.align(sources, targets[:1])


def _write_gold(tmp_path, sources, targets, gold):
    (tmp_path / "src.txt").write_text("\n".join(sources) + "\n")
    (tmp_path / "tgt.txt").write_text("\n".join(targets) + "\n")
    (tmp_path / "gold.txt").write_text("\n".join(pharaoh.format_links(g) for g in gold) + "\n")


def test_the_training_evaluation_scores_a_gold_set_as_forced_alignment_does(rnn, tmp_path):
    predictor = attn_research.load(rnn)
    sources, targets, gold = _eval_pairs(predictor, 5)
    _write_gold(tmp_path, sources, targets, gold)
    config = predictor.config
    config.decode.gold_source = str(tmp_path / "src.txt")
    config.decode.gold_target = str(tmp_path / "tgt.txt")
    config.decode.gold_links = str(tmp_path / "gold.txt")
    gold_set = translation_gold.load(config.decode, predictor.tokenizer, predictor.model)
    metrics = translation_gold.metrics(gold_set, predictor.model, predictor.params, config.decode)
    links = [set(r.links) for r in predictor.align(sources, targets)]
    expected = alignment.score(links, [set(g) for g in gold])
    assert metrics["aer_gold"] == pytest.approx(expected.aer)
    assert metrics["aer_gold/decoder/attention"] == pytest.approx(expected.aer)
    assert metrics["precision_gold"] == pytest.approx(expected.precision)
    assert metrics["recall_gold"] == pytest.approx(expected.recall)
    config.decode.gold_method = "argmax_source"
    metrics = translation_gold.metrics(gold_set, predictor.model, predictor.params, config.decode)
    links = [set(r.links) for r in predictor.align(sources, targets, method="argmax_source")]
    assert metrics["aer_gold"] == pytest.approx(alignment.score(links, [set(g) for g in gold]).aer)
    config.decode.gold_method = "nope"
    with pytest.raises(ValueError, match="config.decode.gold_method: unknown method 'nope'"):
        TranslationTask().validate(config)
    config.decode.gold_method = "argmax_target"
    config.decode.gold_links = str(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="config.decode.gold_links: .*missing.txt does not exist"):
        TranslationTask().validate(config)


def test_a_run_with_a_gold_set_logs_its_aer_at_each_evaluation(rnn, tmp_path):
    predictor = attn_research.load(rnn)
    _write_gold(tmp_path, *_eval_pairs(predictor, 4))
    config = translate.get_config("tiny")
    config.total_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
    config.decode.examples = config.decode.aer_examples = 4
    config.decode.gold_source = str(tmp_path / "src.txt")
    config.decode.gold_target = str(tmp_path / "tgt.txt")
    config.decode.gold_links = str(tmp_path / "gold.txt")
    train_and_evaluate(config, str(tmp_path / "run"))
    saved = json.loads((tmp_path / "run" / "translations" / "step_2_metrics.json").read_text())
    metrics = saved["metrics"]
    for key in ("aer_gold", "precision_gold", "recall_gold", "aer_gold/decoder/attention"):
        assert 0.0 <= metrics[key] <= 1.0


def test_cli_writes_links_scores_and_an_explorer_with_the_gold(rnn, tmp_path):
    predictor = attn_research.load(rnn)
    sources, targets, gold = _eval_pairs(predictor, 3)
    sources, targets, gold = ["", *sources], ["", *targets], [(), *gold]
    _write_gold(tmp_path, sources, targets, gold)
    out, scores, page = tmp_path / "links.txt", tmp_path / "scores.json", tmp_path / "x.html"
    command = [sys.executable, "-m", "attn_research.align", f"--workdir={rnn}"]
    command += [f"--source={tmp_path / 'src.txt'}", f"--target={tmp_path / 'tgt.txt'}"]
    command += [f"--gold={tmp_path / 'gold.txt'}", f"--output={out}", f"--json={scores}"]
    command += [f"--html={page}", "--method=argmax_source", "--length_buckets=0,1,6"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().split("\n")[:-1]
    expected = predictor.align(sources, targets, method="argmax_source")
    assert lines == [pharaoh.format_links(r.links) for r in expected]
    rows = json.loads(scores.read_text())["rows"]
    methods = {row["method"] for row in rows}
    assert methods == {
        "argmax_target",
        "argmax_source",
        "threshold",
        "shift",
        "shift_source",
        "mean",
    }
    (row,) = [r for r in rows if r["method"] == "argmax_source"]
    truth = gold_alignments.Gold(tuple(map(frozenset, gold)), tuple(map(frozenset, gold)))
    assert row["aer"] == pytest.approx(
        alignment.aer([set(r.links) for r in expected], truth.sure, truth.possible)
    )
    assert "argmax_source" in done.stdout
    by_length = json.loads(scores.read_text())["by_length"]
    words = [len(s.split()) for s in sources]
    buckets = {"0-0": (0, 1), "1-5": (1, 6), "6+": (6, None)}  # empty ones are left out
    for bucket in by_length:
        low, high = buckets[bucket["words"]]
        chosen = [i for i, n in enumerate(words) if low <= n and (high is None or n < high)]
        assert bucket["pairs"] == len(chosen)
        if bucket["aer"] is not None:
            picked = [set(expected[i].links) for i in chosen], [set(gold[i]) for i in chosen]
            assert bucket["aer"] == pytest.approx(alignment.aer(*picked))
    assert sum(b["pairs"] for b in by_length) == len(sources)
    html = page.read_text()
    marks = json.loads(html.split('<script type="application/json" id="gold">')[1].split("<")[0])
    assert [sorted(map(tuple, m["sure"])) for m in marks] == [sorted(g) for g in gold[1:]]
    assert html.count('class="item"') == 3


def test_cli_names_a_bad_gold_line_before_aligning(rnn, tmp_path):
    (tmp_path / "s").write_text("a b\n")
    (tmp_path / "t").write_text("c d\n")
    (tmp_path / "g").write_text("0-0 1-x\n")
    command = [sys.executable, "-m", "attn_research.align", f"--workdir={rnn}"]
    command += [f"--source={tmp_path / 's'}", f"--target={tmp_path / 't'}"]
    done = subprocess.run(
        command + [f"--gold={tmp_path / 'g'}"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0 and "line 1: '1-x' is not a Pharaoh link" in done.stderr
    assert "Traceback" not in done.stderr
    for extra, message in (
        ([], "--length_buckets scores against gold links: give --gold"),
        ([f"--gold={tmp_path / 'g'}"], "length buckets [5, 2]: want increasing"),
    ):
        (tmp_path / "g").write_text("0-0 1-1\n")
        done = subprocess.run(
            command + extra + ["--length_buckets=5,2"], capture_output=True, text=True, timeout=300
        )
        assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr


def test_cli_symmetrizes_with_a_model_of_the_other_direction(rnn, tmp_path):
    predictor = attn_research.load(rnn)  # the synthetic corpus shares one vocabulary
    sources, targets, gold = _eval_pairs(predictor, 3)
    _write_gold(tmp_path, sources, targets, gold)
    out, scores = tmp_path / "links.txt", tmp_path / "scores.json"
    command = [sys.executable, "-m", "attn_research.align", f"--workdir={rnn}"]
    command += [f"--source={tmp_path / 'src.txt'}", f"--target={tmp_path / 'tgt.txt'}"]
    command += [f"--reverse_workdir={rnn}", f"--output={out}", "--symmetrize=intersection"]
    command += [f"--gold={tmp_path / 'gold.txt'}", f"--json={scores}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    forward = predictor.align(sources, targets)
    backward = predictor.align(targets, sources)
    expected = [set(f.links) & {(j, i) for i, j in b.links} for f, b in zip(forward, backward)]
    assert out.read_text().split("\n")[:-1] == [pharaoh.format_links(e) for e in expected]
    rows = json.loads(scores.read_text())["rows"]
    (row,) = [r for r in rows if (r["method"], r["selection"]) == ("argmax_target", "intersection")]
    assert row["aer"] == pytest.approx(alignment.aer(expected, [set(g) for g in gold]))
