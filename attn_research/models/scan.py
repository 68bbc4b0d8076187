"""Scanning a stack of identical layers, so compile time does not grow with depth.

`scan_layers(Block, 12, dim=64)` returns a module that applies 12 `Block(dim=64)` layers in
sequence with `nn.scan`: the layer is traced and compiled once, and its parameters are stacked
along a leading axis of size 12 (`params[name]['Dense_0']['kernel']` has shape (12, ...)).
Dropout and initialization draw a different key in every layer.

The layer follows nn.scan's convention, `layer(x, *args) -> (x, None)`; `args` (masks, flags
such as `deterministic`) are broadcast: the same for every layer. Sown 'intermediates'
(attention weights) and decoding 'cache' variables are stacked along the layer axis like the
parameters.
"""

from typing import Any

import flax.linen as nn


def scan_layers(layer_cls: type[nn.Module], num_layers: int, *, remat: bool = False,
                name: str | None = None, **layer_kwargs: Any) -> nn.Module:
    """Returns a module applying `num_layers` layers `layer_cls(**layer_kwargs)` with nn.scan.

    Args:
      layer_cls: the layer class, called as `layer(x, *args) -> (x, None)`.
      num_layers: depth of the stack.
      remat: recompute activations in the backward pass (`nn.remat`).
      name: the module's name in its parent.
      **layer_kwargs: constructor arguments shared by every layer.

    Returns:
      A module called as `stack(x, *args) -> (x, None)`.
    """
    body = nn.remat(layer_cls, prevent_cse=False) if remat else layer_cls
    stack = nn.scan(body, variable_axes={"params": 0, "intermediates": 0, "cache": 0},
                    split_rngs={"params": True, "dropout": True}, in_axes=nn.broadcast,
                    length=num_layers, metadata_params={nn.PARTITION_NAME: "layers"})
    return stack(**layer_kwargs, name=name)
