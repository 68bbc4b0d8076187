"""Scanning a stack of identical layers, so compile time does not grow with depth.

`scan_layers(Block, 12, dim=64)` is a module that applies 12 `Block(dim=64)` layers in sequence
with `nn.scan`: the layer is traced and compiled once, and its parameters are stacked along a
leading axis of size 12 (`params['layers']['layer']['Dense_0']['kernel']` has shape
(12, ...)). Dropout and initialization draw a different key in every layer.

The layer is called as `layer(x, *args) -> x`; `args` (masks, flags) are the same for every
layer. Python values such as `deterministic=True` should be module attributes (passed through
`layer_kwargs`) rather than call arguments, as call arguments are traced.
"""

from typing import Any

import flax.linen as nn


class _Carry(nn.Module):
  """Adapts `layer(x, *args) -> x` to the `(carry, *args) -> (carry, output)` form of nn.scan."""
  layer_cls: type[nn.Module]
  layer_kwargs: dict[str, Any]

  @nn.compact
  def __call__(self, x: Any, *args: Any) -> tuple[Any, None]:
    return self.layer_cls(**self.layer_kwargs, name="layer")(x, *args), None


class ScannedLayers(nn.Module):
  """`num_layers` copies of `layer_cls(**layer_kwargs)` applied in sequence under nn.scan.

  Attributes:
    layer_cls: the layer, called as `layer(x, *args) -> x` with `x` of a fixed shape.
    num_layers: depth of the stack.
    layer_kwargs: constructor arguments of every layer.
    remat: recompute each layer's activations in the backward pass (saves memory).
  """
  layer_cls: type[nn.Module]
  num_layers: int
  layer_kwargs: dict[str, Any]
  remat: bool = False

  @nn.compact
  def __call__(self, x: Any, *args: Any) -> Any:
    body = nn.remat(_Carry, prevent_cse=False) if self.remat else _Carry
    stack = nn.scan(body, variable_axes={"params": 0}, split_rngs={"params": True,
                                                                   "dropout": True},
                    in_axes=(nn.broadcast,) * len(args), length=self.num_layers)
    x, _ = stack(self.layer_cls, self.layer_kwargs, name="layers")(x, *args)
    return x


def scan_layers(layer_cls: type[nn.Module], num_layers: int, *, remat: bool = False,
                name: str | None = None, **layer_kwargs: Any) -> ScannedLayers:
  """Returns a module applying `num_layers` layers `layer_cls(**layer_kwargs)` with nn.scan.

  Args:
    layer_cls: the layer class, called as `layer(x, *args) -> x`.
    num_layers: depth of the stack.
    remat: recompute activations in the backward pass (`nn.remat`).
    name: the module's name in its parent.
    **layer_kwargs: constructor arguments shared by every layer.
  """
  return ScannedLayers(layer_cls, num_layers, layer_kwargs, remat, name=name)
