"""Pytree leaves named by their path, for regex rules on parameters (sharding, weight decay)."""

from typing import Any

import jax


def path_names(tree: Any) -> Any:
    """A tree like `tree` whose leaves are their '/'-joined key paths ('params/Dense_0/kernel');
    optimizer states give '0/mu/Dense_0/kernel', so a rule for a parameter (r'kernel$') also
    matches its moments.
    """

    def name(path: tuple[Any, ...], _: Any) -> str:
        return "/".join(_key_name(key) for key in path)

    return jax.tree_util.tree_map_with_path(name, tree)


def _key_name(key: Any) -> str:
    """The readable name of one pytree key (dict key, attribute or sequence index)."""
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)
