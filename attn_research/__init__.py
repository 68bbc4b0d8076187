"""attn_research: attention mechanisms in JAX/Flax, with shared training loops.

``attn_research.load(workdir, step=None)`` gives the predictor of a trained run, imported on
first use.
"""


def __getattr__(name: str):
    if name == "load":
        from attn_research.predict import load  # pylint: disable=import-outside-toplevel

        return load
    raise AttributeError(f"module 'attn_research' has no attribute {name!r}")
