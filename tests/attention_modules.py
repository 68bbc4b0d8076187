"""The additive and Luong presets as modules whose parameters come as one flat dict
(``score_vector``, ``w_general``, ``w_position``, ...), the names the references take."""

from typing import Any

import jax

from attn_research.attention import presets


def flat(params: dict) -> dict:
    """``{piece: {name: array}}`` -> ``{name: array}`` (the pieces' names never collide)."""
    return {name: x for piece in params.values() for name, x in piece.items()}


class FlatParams:
    """A preset's ``Attention`` with flat parameters in init and apply; like the old modules, it
    takes the options its kind may use (luong's ``window`` with global positions)."""

    def __init__(self, kind: str, **options: Any):
        self.kind, self.options = kind, options
        taken = presets.takes(kind, options)
        self.module = presets.resolve(
            kind, {k: v for k, v in options.items() if k in taken}
        ).module()

    def __getattr__(self, name: str) -> Any:  # the options, e.g. ``module.normalize``
        if name in ("kind", "options", "module"):
            raise AttributeError(name)
        return self.options.get(name, False)

    def init(self, rng, q, k, v, **kwargs) -> dict:
        return {"params": flat(self.module.init(rng, q, k, v, **kwargs).get("params", {}))}

    def apply(self, variables: dict, q, k, v, **kwargs):
        shapes = jax.eval_shape(lambda: self.module.init(jax.random.key(0), q, k, v))
        like = shapes.get("params", {})
        params = {
            piece: {n: variables["params"][n] for n in names} for piece, names in like.items()
        }
        return self.module.apply({"params": params}, q, k, v, **kwargs)


def AdditiveAttention(**options: Any) -> FlatParams:  # noqa: N802 (the old module's name)
    return FlatParams("additive", **options)


def LuongAttention(**options: Any) -> FlatParams:  # noqa: N802
    return FlatParams("luong", **options)
