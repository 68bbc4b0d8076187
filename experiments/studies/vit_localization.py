"""Study: what makes a ViT's class-token attention land on the object?

The ViT (``experiments/configs/vit.py``, dot_product attention) on data with object boxes,
varying one candidate at a time around one head and the class token:

- registers (Darcet et al. 2023): 0 or 4 tokens that can take the global "sink" attention;
- heads: 1 or 4 (the maps average heads; ``best_head`` reports the best one);
- pooling: the class token, or a MAP probe over the patches (no class token);
- the stem: the default two 3 x 3 convolutions before the patches, or none (patches straight
  from the pixels);
- training length: the ``small`` variant against the default schedule (``full``).

Localization is measured as the field does (``evaluation.attention_maps``): the energy-based
pointing game (``mass_in_box``) and the pointing game, for the best map (a layer or the
rollout) and the first layer, beside the box-cells reference.

    python -m experiments.sweep experiments/studies/vit_localization.py:small
    python -m experiments.sweep experiments/studies/vit_localization.py:full
    python -m experiments.sweep "experiments/studies/vit_localization.py:small,path=mnist.npz"

Args: ``small`` (8k cluttered glyphs for 5 epochs, or 1 epoch of cluttered MNIST) or ``full``
(the default schedule); 3 seeds either way. ``path=FILE.npz`` builds cluttered MNIST from the
digits of a Keras-style MNIST file instead of the generated glyphs.
"""

from experiments.study import Study, parse_variant


def get_study(arg: str | None = None) -> Study:
    small, path = parse_variant("vit_localization", arg)
    data = [f"data=cluttered_mnist,path={path}"] if path else []
    suffix = ("_small" if small else "") + ("_mnist" if path else "")
    return Study(
        name="vit_localization" + suffix,
        config="experiments/configs/vit.py",
        fixed=",".join((["small"] if small else []) + data),
        grid=[
            {"heads": [1, 4], "registers": [0, 4]},
            {"heads": [1], "pool": ["map"]},
            {"heads": [1], "stem": ["none"]},
        ],
        seeds=[0, 1, 2],
        metrics=[
            "eval/mass_in_box/best_map",
            "eval/pointing_game/best_map",
            "eval/accuracy",
            "eval/mass_in_box/layer1",
            "eval/mass_in_box/rollout",
            "eval/mass_in_box/layer1/best_head",
            "eval/mass_in_box/box_cells",
        ],
    )
