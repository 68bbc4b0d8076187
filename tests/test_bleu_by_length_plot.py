"""BLEU by source length across a study: the plot and the long_sentences study's points."""

import json

import pytest

from experiments import results
from experiments.study import Study
from experiments.sweep import load_study

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_orders_buckets_and_draws_one_line_per_model(tmp_path):
    path = tmp_path / "bleu.png"
    drawn = results.plot_bleu_by_length(
        {
            "attention": {"10-19": 30.0, "0-9": 40.0, "60+": 20.0},
            "none": {"0-9": 35.0, "10-19": 12.5},
        },
        str(path),
    )
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert drawn == {
        "attention": [("0-9", 40.0), ("10-19", 30.0), ("60+", 20.0)],
        "none": [("0-9", 35.0), ("10-19", 12.5)],
    }


def test_write_results_averages_seeds_per_model(tmp_path, monkeypatch):
    study = Study(
        name="toy",
        config="experiments/configs/translate.py",
        grid=[{"attention": ["none", "additive"]}],
        seeds=[0, 1],
        metrics=["eval/bleu"],
    )
    fake = {  # (attention, seed) -> {bucket: BLEU}
        ("none", 0): {"0-9": 30.0, "40-49": 4.0},
        ("none", 1): {"0-9": 20.0, "40-49": 2.0},
        ("additive", 0): {"0-9": 33.0, "40-49": 30.0},
        ("additive", 1): {"0-9": 31.0, "40-49": 28.0},
    }
    for (attention, seed), buckets in fake.items():
        workdir = tmp_path / f"attention={attention},config.seed={seed}"
        workdir.mkdir()
        metrics = {"eval/bleu": 1.0, **{f"eval/bleu_len_{b}": v for b, v in buckets.items()}}
        (workdir / "summary.json").write_text(json.dumps({"eval": metrics}))
    calls = []
    plot = results.plot_bleu_by_length
    monkeypatch.setattr(
        results, "plot_bleu_by_length", lambda lines, path: calls.append(plot(lines, path))
    )
    results.write_results(study, str(tmp_path))
    assert (tmp_path / "bleu_by_length.png").read_bytes()[:8] == PNG_MAGIC
    assert calls == [
        {
            "attention=none": [("0-9", 25.0), ("40-49", 3.0)],
            "attention=additive": [("0-9", 32.0), ("40-49", 29.0)],
        }
    ]


def test_long_sentences_study_points():
    spec = "experiments/studies/long_sentences.py:{},path=/data/spa.txt"
    small, full = (load_study(spec.format(v)) for v in ("small", "full"))
    assert [p.group for p in small.points()] == [
        "model=rnn,attention=none",
        "model=rnn,attention=additive",
        "model=transformer,attention=dot_product",
        "model=transformer,attention=local",
    ]
    assert len(full.points()) == 15
    assert {p.group for p in full.points()} == {
        "model=rnn,attention=none",
        "model=rnn,attention=additive",
        "model=rnn,attention=luong,score=general,positions=local_p,window=16",
        "model=transformer,attention=dot_product",
        "model=transformer,attention=local",
    }
    assert "join=8" in small.fixed and "path=/data/spa.txt" in full.fixed
    assert "luong_scales" in full.fixed.split(",")
    assert "eval/bleu_len_50-59" in full.metrics
    with pytest.raises(ValueError, match="path=FILE"):
        load_study("experiments/studies/long_sentences.py:small")
