"""experiments.centre_by_length: local-p's window centre by source length."""

import json
import subprocess
import sys

import numpy as np
import pytest

from attn_research.train import train_and_evaluate
from experiments import centre_by_length
from experiments.configs import translate


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("local_p"))
    config = translate.get_config("tiny,attention=luong,score=general,positions=local_p")
    config.decode.aer_examples = config.data.eval_examples  # the statistics of every pair
    summary = train_and_evaluate(config, workdir)
    return workdir, summary


def test_rows_by_hand():
    # S = 10 pieces, T = 4 tokens, D = 2: centres 1, 4, 9.5, 9.9; diagonal 1.25, 3.75, 6.25, 8.75.
    fractions, at_end, off = centre_by_length.row_statistics(
        np.array([[0.1, 0.4, 0.95, 0.99]]), source_len=10, window=2
    )
    np.testing.assert_allclose(fractions, [0.1, 0.4, 0.95, 0.99])
    assert at_end.tolist() == [False, False, True, True]
    assert off.tolist() == [False, False, True, False]
    summary = centre_by_length.summarize([(fractions, at_end, off)])
    assert (summary["at_end"], summary["off_diagonal"], summary["end_of_off"]) == (0.5, 0.25, 1.0)
    on_diagonal = centre_by_length.row_statistics(np.array([[0.5]]), source_len=4, window=2)
    assert centre_by_length.summarize([on_diagonal])["end_of_off"] is None


def test_pooled_over_lengths_it_is_the_evaluations_distribution(run):
    workdir, summary = run
    result = centre_by_length.centre_by_length(workdir, batch_size=16)
    assert result["step"] == summary["step"]
    assert sum(b["pairs"] for b in result["by_length"].values()) == result["all"]["pairs"]
    logged = [summary["eval"][f"eval/centre_fraction_q{q}"] for q in (10, 50, 90)]
    np.testing.assert_allclose(result["all"]["quantiles"], logged, rtol=1e-5)
    for bucket in (*result["by_length"].values(), result["all"]):
        assert 0 <= bucket["at_end"] <= 1 and 0 <= bucket["off_diagonal"] <= 1
        assert bucket["end_of_off"] is None or 0 <= bucket["end_of_off"] <= 1


def test_cli_writes_json(run, tmp_path):
    workdir, _ = run
    out = tmp_path / "centre.json"
    command = [sys.executable, "-m", "experiments.centre_by_length", f"--workdir={workdir}"]
    done = subprocess.run(
        [*command, f"--json={out}"], check=True, capture_output=True, text=True, timeout=300
    )
    (result,) = json.loads(out.read_text())
    assert set(result) == {"workdir", "step", "window", "by_length", "all"}
    assert "off_diagonal" in done.stdout


def test_a_run_without_a_centre_is_named(tmp_path):
    workdir = str(tmp_path)
    train_and_evaluate(translate.get_config("tiny,attention=additive"), workdir)
    with pytest.raises(ValueError, match="predicts no window centre"):
        centre_by_length.centre_by_length(workdir)
