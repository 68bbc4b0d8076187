"""The translation config's recipes: Luong et al. 2015's training, resolved at run time."""

import math

import pytest

from attn_research.tasks import translation
from attn_research.train import config as config_lib
from attn_research.train import durations, optimizer
from experiments.configs import translate


def test_luong2015_is_sgd_at_one_halved_after_epoch_8_on_uniform_init():
    config = translate.get_config(
        "luong2015,attention=luong,score=general,positions=local_p,window=10"
    )
    merged = config_lib.check_config(config, translation.TranslationTask.config_keys)
    opt = merged.optimizer
    assert (opt.name, opt.learning_rate, opt.momentum, opt.grad_clip_norm) == ("sgd", 1.0, 0, 5)
    assert (merged.init_uniform, merged.batch_size) == (0.1, 128)
    assert (merged.model.cell, merged.model.dropout_rate) == ("lstm", 0.2)
    # the paper's formulas: no luong_scales options
    assert merged.model.attention_options.to_dict() == {
        "score": "general",
        "positions": "local_p",
        "window": 10,
    }
    for batch_size in (128, 64):  # epochs follow the batch size
        merged.batch_size = batch_size
        resolved = durations.resolve_durations(merged, num_train_examples=40_000)
        epoch = 40_000 // batch_size
        assert resolved.steps_per_epoch == epoch
        assert (resolved.total_steps, resolved.halve_after, resolved.halve_every) == (
            12 * epoch,
            8 * epoch,
            epoch,
        )
        assert resolved.warmup_steps == 0
        _, schedule = optimizer.make_optimizer(
            merged.optimizer,
            resolved.total_steps,
            0,
            (resolved.halve_after, resolved.halve_every),
        )
        rates = [float(schedule(e * epoch + d)) for e in (8, 9, 11) for d in (-1, 0)]
        assert rates == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.125, 0.0625])
        assert math.isclose(float(schedule(0)), 1.0)
