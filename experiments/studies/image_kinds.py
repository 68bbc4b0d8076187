"""Study: does an image model attend to the region holding the object?

ViT with global (dot_product), local_2d and additive attention vs the attention CNN (soft
attention pooling), measured by accuracy and, on the generated cluttered-objects data, by the
energy-based pointing game (the attention mass inside the object's box) and the pointing game
(``evaluation.attention_maps``) of the ViT's best map (a layer or the rollout), its rollout and
first layer, and the CNN's pooling map; or by accuracy on an npz data set such as MNIST.

    python -m experiments.sweep experiments/studies/image_kinds.py:small   # minutes
    python -m experiments.sweep experiments/studies/image_kinds.py:full
    python -m experiments.sweep "experiments/studies/image_kinds.py:full,path=../shared/data/mnist/mnist.npz"

Args: ``small`` (the configs' ``small`` runs: 8k cluttered images, 5 epochs; one seed) or
``full`` (the default configs, 3 seeds);
``path=FILE.npz`` trains on Keras-style arrays instead (no boxes there).
"""

from experiments.study import Study, parse_variant


def get_study(arg: str | None = None) -> Study:
    small, path = parse_variant("image_kinds", arg)
    fixed = ",".join((["small"] if small else []) + ([f"data=npz,path={path}"] if path else []))
    return Study(
        name="image_kinds" + ("_small" if small else "") + ("_npz" if path else ""),
        config={"vit": "experiments/configs/vit.py", "cnn": "experiments/configs/attention_cnn.py"},
        fixed=fixed,
        grid=[
            {"config": ["vit"], "attention": ["dot_product", "local_2d", "additive"]},
            {"config": ["cnn"], "attention": ["additive"]},
        ],
        seeds=[0] if small else [0, 1, 2],
        # ViT: its best map, rollout and first layer (where the class token reads the patches
        # themselves); the CNN's pooling map; the reference of a map spread over the cells the
        # box touches on the model's grid.
        metrics=[
            "eval/accuracy",
            "eval/mass_in_box/best_map",
            "eval/pointing_game/best_map",
            "eval/mass_in_box/rollout",
            "eval/mass_in_box/layer1",
            "eval/mass_in_box/attention",
            "eval/pointing_game/attention",
            "eval/mass_in_box/box_cells",
        ],
    )
