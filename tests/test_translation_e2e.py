"""End to end: tiny translation runs of each model family through `train_and_evaluate`."""

import json
import math

import pytest
import tensorflow_datasets as tfds
from flax.traverse_util import flatten_dict

import attn_research
from attn_research.train import train_and_evaluate
from experiments.configs import translate


def _run(arg: str, tmp_path, cache: bool = True):
    config = translate.get_config(arg)
    if cache:
        config.data.cache_dir = str(tmp_path / "cache")
    return train_and_evaluate(config, str(tmp_path / "run"))


def test_rnn_bahdanau_tiny(tmp_path):
    summary = _run("model=rnn,attention=additive,tiny", tmp_path, cache=False)
    assert summary["step"] == 30
    for key in ("eval/loss", "eval/bleu", "eval/chrf", "eval/aer", "eval/bleu_len_0-9"):
        assert key in summary["eval"], key
    assert 0.0 <= summary["eval"]["eval/aer"] <= 1.0
    assert 0.0 <= summary["eval"]["eval/attention_peaked_share"] <= 1.0
    assert 0.0 < summary["eval"]["eval/attention_entropy"] < math.log(32)
    assert "eval/centre_fraction_mean" not in summary["eval"]  # no position model
    assert summary["train"]["train/loss"] < 4.5  # from ln(128) = 4.85
    run = tmp_path / "run"
    assert (run / "figures" / "attention_0_step_30.png").stat().st_size > 1000
    assert (run / "figures" / "bleu_by_length_30.png").exists()
    lines = (run / "translations" / "step_30.txt").read_text().splitlines()
    assert len(lines) == 32 and all(line.count("\t") == 2 for line in lines)
    metrics = json.loads((run / "translations" / "step_30_metrics.json").read_text())
    assert metrics["metrics"]["bleu"] == summary["eval"]["eval/bleu"]
    # Without a cache_dir, the tokenizer trained for the run is kept in its workdir.
    assert len(list(run.glob("spm_*.model"))) == 1
    assert json.loads((run / "config.json").read_text())["data"]["cache_dir"] == str(run)


def test_rnn_luong_local_p_with_scales_logs_its_centres(tmp_path):
    config = translate.get_config(
        "model=rnn,attention=luong,score=general,positions=local_p,luong_scales,tiny"
    )
    assert config.model.attention_options.to_dict() == {
        "score": "general",
        "positions": "local_p",
        "divide_by_sqrt_depth": True,
        "divide_position_by_sqrt_units": True,
    }
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    quantiles = [summary["eval"][f"eval/centre_fraction_q{q}"] for q in (10, 50, 90)]
    assert 0.0 <= quantiles[0] <= quantiles[1] <= quantiles[2] <= 1.0
    assert 0.0 <= summary["eval"]["eval/centre_fraction_mean"] <= 1.0
    assert "eval/attention_entropy" in summary["eval"]


def test_rnn_luong_dot_with_scales_trains_its_score_gain(tmp_path):
    config = translate.get_config("model=rnn,attention=luong,score=dot,luong_scales,tiny")
    assert config.model.attention_options.to_dict() == {
        "score": "dot",
        "divide_by_sqrt_depth": True,
        "learned_gain": True,
        "gain_init": translate.LUONG_DOT_GAIN_INIT,
    }
    workdir = str(tmp_path / "run")
    train_and_evaluate(config, workdir)
    predictor = attn_research.load(workdir)
    (gain,) = [x for p, x in flatten_dict(predictor.params).items() if p[-1] == "gain"]
    assert gain.shape == () and float(gain) != translate.LUONG_DOT_GAIN_INIT


def test_transformer_tiny_on_mock_tfds(tmp_path):
    with tfds.testing.mock_data(num_examples=64):
        summary = _run(
            "model=transformer,attention=local,window=4,data=tfds,"
            "tfds=ted_hrlr_translate/pt_to_en,tiny",
            tmp_path,
        )
    assert summary["step"] == 30
    assert "eval/bleu" in summary["eval"] and "eval/aer" not in summary["eval"]
    assert (tmp_path / "run" / "figures" / "attention_0_step_30.png").exists()


@pytest.mark.parametrize(
    "field, value", [("cross_attention", "local_2d"), ("remat", "everything"), ("scan_unroll", 0)]
)
def test_bad_model_field_fails_before_training(tmp_path, field, value):
    config = translate.get_config("model=transformer,attention=dot_product,tiny")
    config.model[field] = value
    with pytest.raises(ValueError, match=f"config.model.{field}"):
        train_and_evaluate(config, str(tmp_path / "run"))
