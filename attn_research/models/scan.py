"""Scanning a stack of identical layers with ``nn.scan``, so compile time does not grow with
depth: the layer is traced once, its parameters (and sown intermediates, decode caches) stacked
on a leading ``[num_layers, ...]`` axis; dropout and init draw a key per layer.

``remat`` chooses what the backward pass keeps of each layer (``jax.checkpoint`` policies):
'none' everything; 'dots' the outputs of matmuls without batch dimensions (elementwise ops and
attention scores are recomputed); 'full' only the layer inputs. ``unroll`` is ``nn.scan``'s
(docs/benchmarks.md compares both).
"""

from typing import Any

import flax.linen as nn
import jax

REMAT_POLICIES = {
    "none": None,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "full": jax.checkpoint_policies.nothing_saveable,
}


def check_remat(remat: str, name: str = "remat") -> None:
    """Raises ValueError, naming `name`, unless `remat` is one of `REMAT_POLICIES`."""
    if remat not in REMAT_POLICIES:
        raise ValueError(f"{name}: unknown {remat!r}; choose one of {tuple(REMAT_POLICIES)}")


def check_unroll(unroll: int, name: str = "unroll") -> None:
    """Raises ValueError, naming `name`, unless `unroll` is a positive int."""
    if isinstance(unroll, bool) or not isinstance(unroll, int) or unroll < 1:
        raise ValueError(f"{name}: layers per loop iteration, a positive int; got {unroll!r}")


def scan_layers(
    layer_cls: type[nn.Module],
    num_layers: int,
    *,
    remat: str = "none",
    unroll: int = 1,
    static_args: tuple[int, ...] = (),
    name: str | None = None,
    **layer_kwargs: Any,
) -> nn.Module:
    """A module ``stack(x, *args) -> (x, None)`` applying `num_layers` layers
    `layer_cls(**layer_kwargs)`, each ``layer(x, *args) -> (x, None)`` with ``args`` shared;
    ``static_args``: positions (``x`` is 0) of Python values such as `deterministic`."""
    check_remat(remat)
    check_unroll(unroll)
    body = (
        layer_cls
        if remat == "none"
        else nn.remat(
            layer_cls,
            prevent_cse=False,
            policy=REMAT_POLICIES[remat],
            static_argnums=tuple(i + 1 for i in static_args),
        )
    )  # flax counts the module as 0
    stack = nn.scan(
        body,
        variable_axes={"params": 0, "intermediates": 0, "cache": 0},
        split_rngs={"params": True, "dropout": True},
        in_axes=nn.broadcast,
        length=num_layers,
        unroll=unroll,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )
    return stack(**layer_kwargs, name=name)
