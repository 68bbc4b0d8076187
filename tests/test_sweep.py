"""The study runner: points, launch commands, skipping finished points, results tables."""

import csv
import pathlib
import runpy

import pytest

from experiments import sweep
from experiments.study import Study

REPO = pathlib.Path(__file__).resolve().parents[1]

STUDY_FILE = """
from experiments.study import Study

def get_study(arg=None):
    return Study(name="toy", config="tests/train_toy_config.py", fixed="tiny",
                 grid=[{"layers": [1]}], seeds=[0, 1] if arg != "one" else [0],
                 metrics=["eval/accuracy", "eval/loss"])
"""


def test_points_are_the_union_of_products_times_seeds():
    study = Study(
        name="s",
        config="c.py",
        metrics=["eval/x"],
        seeds=[0, 1],
        grid=[
            {"model": ["rnn"], "attention": ["none", "additive"]},
            {"model": ["transformer"], "attention": ["local"], "config.dtype": ["bfloat16"]},
        ],
    )
    names = [p.name for p in study.points()]
    assert names == [
        "model=rnn,attention=none,config.seed=0",
        "model=rnn,attention=none,config.seed=1",
        "model=rnn,attention=additive,config.seed=0",
        "model=rnn,attention=additive,config.seed=1",
        "model=transformer,attention=local,config.dtype=bfloat16,config.seed=0",
        "model=transformer,attention=local,config.dtype=bfloat16,config.seed=1",
    ]
    command = study.command(study.points()[-1], "/w")
    assert command[1:] == [
        "-m",
        "attn_research.main",
        "--config=c.py:model=transformer,attention=local",
        "--workdir=/w",
        "--config.dtype=bfloat16",
        "--config.seed=1",
    ]


def test_bad_study_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        sweep.load_study(str(tmp_path / "missing.py"))
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="get_study"):
        sweep.load_study(str(tmp_path / "empty.py"))


def test_print_commands_runs_nothing(tmp_path, monkeypatch, capsys):
    (tmp_path / "study.py").write_text(STUDY_FILE)
    monkeypatch.chdir(REPO)
    assert (
        sweep.main(
            [str(tmp_path / "study.py"), "--root", str(tmp_path / "runs"), "--print-commands"]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("attn_research.main" in line for line in lines)
    assert "--config.seed=1" in lines[1]
    assert not (tmp_path / "runs").exists()


def test_sweep_runs_skips_and_tabulates(tmp_path, monkeypatch, capsys):
    (tmp_path / "study.py").write_text(STUDY_FILE)
    monkeypatch.chdir(REPO)
    root = tmp_path / "runs"
    assert sweep.main([str(tmp_path / "study.py"), "--root", str(root), "--parallel", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 points to run" in out
    with open(root / "toy" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["done", "done"]
    assert all(0.0 <= float(r["eval/accuracy final"]) <= 1.0 for r in rows)
    assert all(int(r["params"]) > 0 for r in rows)
    table = (root / "toy" / "results.md").read_text()
    assert "| layers=1 | 2/2 |" in table and "±" in table
    assert (root / "toy" / "curve_eval_accuracy.png").stat().st_size > 0
    assert (root / "toy" / "axis_layers_eval_loss.png").stat().st_size > 0
    # A second run finds every point done and launches nothing.
    assert sweep.main([str(tmp_path / "study.py"), "--root", str(root)]) == 0
    assert "0 points to run, 2 already done" in capsys.readouterr().out


@pytest.mark.parametrize(
    "spec, count",
    [
        ("translation_kinds.py:small", 10),
        ("translation_kinds.py:full", 30),
        ("image_kinds.py:small", 4),
        ("vit_localization.py:small", 18),
    ],
)
def test_shipped_studies_expand_to_configs_that_build(spec, count):
    study = sweep.load_study(str(REPO / "experiments" / "studies" / spec))
    points = study.points()
    assert len(points) == count
    for point in points:
        config = study.command(point, "/w")[3]
        assert config.startswith("--config=experiments/configs/")
        path, _, arg = config.removeprefix("--config=").partition(":")
        module = runpy.run_path(str(REPO / path))
        assert module["get_config"](arg).model.name


def test_shipped_study_rejects_unknown_variant():
    with pytest.raises(ValueError, match="small|full"):
        sweep.load_study(str(REPO / "experiments" / "studies" / "image_kinds.py:huge"))
