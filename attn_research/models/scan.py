"""Scanning a stack of identical layers, so compile time does not grow with depth.

`scan_layers(Block, 12, dim=64)` returns a module that applies 12 `Block(dim=64)` layers in
sequence with `nn.scan`: the layer is traced and compiled once, and its parameters are stacked
along a leading axis of size 12 (`params[name]['Dense_0']['kernel']` has shape (12, ...)).
Dropout and initialization draw a different key in every layer.

The layer follows nn.scan's convention, `layer(x, *args) -> (x, None)`; `args` (masks, flags
such as `deterministic`) are broadcast: the same for every layer. Sown 'intermediates'
(attention weights) and decoding 'cache' variables are stacked along the layer axis like the
parameters.

`remat` chooses what the backward pass keeps of each layer's forward pass (`jax.checkpoint`
policies). The scan stacks every kept tensor into a ``[num_layers, ...]`` buffer, so keeping
less saves memory and, on CPU, time:

- 'none': everything (no rematerialization);
- 'dots': the outputs of matmuls without batch dimensions (the Dense layers); elementwise ops
  (LayerNorm, GELU, softmax) and the attention scores are recomputed. On a CPU it makes the
  train steps faster (docs/benchmarks.md, train-step benchmark);
- 'full': only the layer inputs; the whole layer is recomputed (a third more FLOPs).

`unroll` is `nn.scan`'s: layers per iteration of the compiled loop. 1 (the default) compiles one
layer whatever the depth; the depth removes the loop, and its `[layers, ...]` buffers, at a
compile time that grows with depth (docs/benchmarks.md, train-step benchmark, measures both).
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
    """Returns a module applying `num_layers` layers `layer_cls(**layer_kwargs)` with nn.scan.

    Args:
      layer_cls: the layer class, called as `layer(x, *args) -> (x, None)`.
      num_layers: depth of the stack.
      remat: what the backward pass keeps, one of `REMAT_POLICIES` (see the module doc).
      unroll: layers per iteration of the compiled loop (see the module doc).
      static_args: positions in ``layer(x, *args)`` (``x`` is 0) of Python values, such as a
        `deterministic` flag: rematerialization traces every other argument.
      name: the module's name in its parent.
      **layer_kwargs: constructor arguments shared by every layer.

    Returns:
      A module called as `stack(x, *args) -> (x, None)`.
    """
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
