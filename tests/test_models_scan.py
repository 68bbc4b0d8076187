"""`scan_layers`: same function as an unrolled stack, compiled once whatever the depth."""

import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from attn_research.train.scan import scan_layers


class Block(nn.Module):
  """x + tanh(x @ W + b) * scale, with dropout."""
  dim: int
  deterministic: bool = True

  @nn.compact
  def __call__(self, x, scale):
    y = jnp.tanh(nn.Dense(self.dim)(x)) * scale
    return x + nn.Dropout(0.5, deterministic=self.deterministic)(y)


class Stack(nn.Module):
  num_layers: int
  deterministic: bool = True

  @nn.compact
  def __call__(self, x):
    return scan_layers(Block, self.num_layers, name="blocks", dim=x.shape[-1],
                       deterministic=self.deterministic)(x, 0.5)


def test_scan_matches_an_unrolled_loop():
  x = jax.random.normal(jax.random.key(0), (3, 4))
  params = Stack(3).init(jax.random.key(1), x)["params"]
  layer = params["blocks"]["layers"]["layer"]["Dense_0"]
  assert layer["kernel"].shape == (3, 4, 4) and layer["bias"].shape == (3, 4)
  assert not np.allclose(layer["kernel"][0], layer["kernel"][1])  # Each layer its own init.
  expected = x
  for i in range(3):  # Independent reference: the formula, layer by layer.
    expected = expected + jnp.tanh(expected @ layer["kernel"][i] + layer["bias"][i]) * 0.5
  np.testing.assert_allclose(Stack(3).apply({"params": params}, x), expected, rtol=1e-5)


def test_dropout_differs_between_layers():
  x = jnp.ones((1, 64))
  params = Stack(2).init(jax.random.key(1), x)["params"]
  # Zero the Dense layers: each layer then adds dropout(tanh(b)*0.5) with its own mask.
  params = jax.tree.map(jnp.zeros_like, params)
  params["blocks"]["layers"]["layer"]["Dense_0"]["bias"] = jnp.ones((2, 64))
  out = Stack(2, deterministic=False).apply({"params": params}, x,
                                            rngs={"dropout": jax.random.key(3)})
  kept = (np.asarray(out[0]) - 1.0) / (np.tanh(1.0) * 0.5 * 2)  # Kept-by-layer count per unit.
  assert set(np.round(kept).astype(int)) == {0, 1, 2}  # Masks are not shared by the layers.


def _lowered_and_compile_time(num_layers):
  x = jnp.ones((2, 16))
  params = Stack(num_layers).init(jax.random.key(0), x)
  lowered = jax.jit(lambda p: Stack(num_layers).apply(p, x)).lower(params)
  start = time.perf_counter()
  lowered.compile()
  return lowered.as_text(), time.perf_counter() - start


def test_compile_time_does_not_grow_with_depth():
  text_2, seconds_2 = _lowered_and_compile_time(2)
  text_12, seconds_12 = _lowered_and_compile_time(12)
  # The program is the same size: one loop body, whatever the depth (deterministic check).
  assert abs(len(text_12.splitlines()) - len(text_2.splitlines())) <= 2
  # And so compiling it costs about the same (loose: timing on a shared CPU is noisy).
  assert seconds_12 < 2 * seconds_2 + 0.5, (seconds_2, seconds_12)
