"""Old ``config.json`` model fields in today's words: worked examples of each rename."""

import pytest

from attn_research.predict import renamed_fields


@pytest.mark.parametrize(
    "old, new",
    [
        (  # the RNN's Bahdanau attention, whose window the additive preset does not take
            {
                "name": "rnn",
                "attention": "bahdanau",
                "score": "dot",
                "align": "global",
                "window": 8,
                "attention_options": {},
            },
            {"name": "rnn", "attention": "additive", "attention_options": {}},
        ),
        (  # Luong's local-p with the opt-in scales
            {
                "name": "rnn",
                "attention": "luong",
                "score": "general",
                "align": "local_p",
                "window": 16,
                "attention_options": {"divide_position_by_sqrt_units": True},
            },
            {
                "name": "rnn",
                "attention": "luong",
                "attention_options": {
                    "divide_position_by_sqrt_units": True,
                    "score": "general",
                    "positions": "local_p",
                    "window": 16,
                },
            },
        ),
        (  # Luong's global dot: no window
            {"name": "rnn", "attention": "luong", "score": "dot", "align": "global", "window": 8},
            {"name": "rnn", "attention": "luong", "attention_options": {"score": "dot"}},
        ),
        (  # no attention
            {"name": "rnn", "attention": "none", "score": "dot", "align": "global", "window": 8},
            {"name": "rnn", "attention": None, "attention_options": {}},
        ),
        (  # the Transformer's shared window goes to the roles that take one
            {
                "name": "transformer",
                "encoder_attention": "dot_product",
                "decoder_attention": "local",
                "cross_attention": "additive",
                "window": 4,
            },
            {
                "name": "transformer",
                "encoder_attention": "dot_product",
                "encoder_attention_options": {},
                "decoder_attention": "local",
                "decoder_attention_options": {"window": 4},
                "cross_attention": "additive",
                "cross_attention_options": {},
            },
        ),
        (  # field names of the first runs
            {
                "family": "vit",
                "emb_dim": 8,
                "posemb": "learn",
                "attention": "dot_product",
                "attention_options": {},
            },
            {
                "name": "vit",
                "embed_dim": 8,
                "position_embedding": "learned",
                "attention": "dot_product",
                "attention_options": {},
            },
        ),
    ],
)
def test_old_model_fields_read_in_todays_words(old, new):
    assert renamed_fields.renamed(old) == new


def test_todays_fields_are_left_as_they_are():
    model = {"name": "rnn", "attention": "luong", "attention_options": {"score": "concat"}}
    assert renamed_fields.renamed(dict(model)) == model
