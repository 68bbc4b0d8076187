"""experiments.redecode_by_length: a run's evaluation sentences decoded again, by length."""

import json
import subprocess
import sys

import pytest

from attn_research.train import train_and_evaluate
from experiments import redecode_by_length
from experiments.configs import translate


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    summary = train_and_evaluate(translate.get_config("tiny"), workdir)
    return workdir, summary


def test_the_evaluation_rescored_from_its_file_is_the_runs_own(run):
    workdir, summary = run
    beam = translate.get_config("tiny").decode.beam_size
    result = redecode_by_length.redecode(workdir, beam=beam, alpha=None)
    assert result["step"] == summary["step"]
    for scores in (result["evaluation"], result[f"beam_{beam}"]):
        assert scores["bleu"] == pytest.approx(summary["eval"]["eval/bleu"], abs=1e-6)
        for bucket, (value, _) in scores["by_length"].items():
            assert value == pytest.approx(summary["eval"][f"eval/bleu_len_{bucket}"], abs=1e-6)


def test_cli_writes_greedy_scores_and_a_plot(run, tmp_path):
    workdir, _ = run
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    command = [sys.executable, "-m", "experiments.redecode_by_length", f"--workdir={workdir}"]
    command += ["--beam=1", f"--json={out}", f"--plot={plot}"]
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    (result,) = json.loads(out.read_text())
    greedy = result["beam_1"]
    assert set(greedy) == {"bleu", "chrf", "empty", "by_length", "length_ratio", "long"}
    assert set(greedy["length_ratio"]) == set(greedy["by_length"])
    assert sum(n for _, n in greedy["by_length"].values()) == len(
        open(f"{workdir}/translations/step_{result['step']}.txt").readlines()
    )
    assert "beam_1: BLEU" in done.stdout and plot.stat().st_size > 0


def test_a_run_without_evaluation_is_named(tmp_path):
    with pytest.raises(SystemExit, match="no translations/step_N.txt"):
        redecode_by_length.newest_eval(str(tmp_path))


def test_json_merges_runs_decoded_at_other_times(tmp_path):
    path = str(tmp_path / "runs.json")
    other = {"workdir": "a", "step": 10, "beam_1": {"bleu": 1.0}}
    redecode_by_length.merge_json(path, [other, {"workdir": "b", "step": 10, "beam_1": {}}])
    again = {"workdir": "b", "step": 10, "beam_4": {"bleu": 2.0}}
    assert redecode_by_length.merge_json(path, [again]) == [
        other,
        {"workdir": "b", "step": 10, "beam_1": {}, "beam_4": {"bleu": 2.0}},
    ]
    later = {"workdir": "a", "step": 20, "beam_4": {"bleu": 3.0}}
    assert redecode_by_length.merge_json(path, [later])[0] == later
    assert json.loads(open(path).read())[0] == later
    pooled_otherwise = {"workdir": "a", "step": 20, "long_from": 30, "beam_1": {"bleu": 4.0}}
    assert redecode_by_length.merge_json(path, [pooled_otherwise])[0] == pooled_otherwise


def test_a_search_with_its_own_length_penalty_is_kept_apart():
    assert redecode_by_length.search_name(1, None) == "beam_1"
    assert redecode_by_length.search_name(4, 1.0) == "beam_4_alpha_1"
    assert redecode_by_length.search_name(4, 0.6) == "beam_4_alpha_0.6"


def test_the_plot_averages_a_models_seeds_bucket_by_bucket():
    def run(name, seed, by_length):
        return {"workdir": f"study/{name},config.seed={seed}", "beam_1": {"by_length": by_length}}

    runs = [
        run("model=rnn", 0, {"0-9": [10.0, 5], "10-19": [4.0, 3]}),
        run("model=rnn", 1, {"0-9": [20.0, 5], "10-19": [8.0, 3]}),
        run("model=transformer", 0, {"0-9": [30.0, 5]}),
        {"workdir": "study/model=rnn,config.seed=2", "beam_4": {"by_length": {"0-9": [0.0, 5]}}},
    ]
    assert redecode_by_length.lines_by_model(runs, "beam_1") == {
        "model=rnn (2 seeds)": {"0-9": 15.0, "10-19": 6.0},
        "model=transformer (1 seed)": {"0-9": 30.0},
    }
