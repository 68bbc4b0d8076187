"""The device mesh and the NamedShardings of the train state and batches.

`config.mesh` names the axes and sizes ({'data': -1}, or {'data': 2, 'fsdp': 2, 'model': 2});
batches are split over `config.batch_axes`. `config.param_sharding` is a sequence of (regex,
spec) rules on each train-state leaf's '/'-joined path; the first match wins, unmatched leaves
are replicated:

    config.param_sharding = ((r'kernel$', (None, 'model')), (r'embedding$', ('model', None)))
"""

import math
import re
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from attn_research.train import paths


def make_mesh(mesh_config: ml_collections.ConfigDict, devices: Sequence[jax.Device]) -> Mesh:
    """Builds the mesh of `config.mesh` over `devices`; a size of -1 takes the rest.

    Raises:
      ValueError: naming config.mesh if the sizes do not multiply to the device count.
    """
    names = tuple(mesh_config.keys())
    sizes = [mesh_config[name] for name in names]
    if (
        not names
        or sum(size == -1 for size in sizes) > 1
        or any(size == 0 or size < -1 or not isinstance(size, int) for size in sizes)
    ):
        raise ValueError(
            f"config.mesh: need axis sizes >= 1 and at most one -1, got {dict(zip(names, sizes))}."
        )
    known = math.prod(size for size in sizes if size != -1)
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(
                f"config.mesh: {len(devices)} devices do not split into {mesh_config}."
            )
        sizes[sizes.index(-1)] = len(devices) // known
    if math.prod(sizes) != len(devices):
        raise ValueError(
            f"config.mesh: sizes {dict(zip(names, sizes))} need {math.prod(sizes)} "
            f"devices, have {len(devices)}."
        )
    # jax.make_mesh orders the devices by their physical topology (TPU slices); Auto axes keep
    # the trainer's jit with NamedShardings (Explicit would type every array by its sharding).
    return jax.make_mesh(
        tuple(sizes), names, (jax.sharding.AxisType.Auto,) * len(names), devices=list(devices)
    )


def batch_sharding(mesh: Mesh, batch_axes: Sequence[str]) -> NamedSharding:
    """Splits the leading (batch) dimension over `batch_axes`, replicating the rest.

    Raises:
      ValueError: naming config.batch_axes if an axis is not in the mesh.
    """
    unknown = set(batch_axes) - set(mesh.axis_names)
    if unknown:
        raise ValueError(
            f"config.batch_axes: {sorted(unknown)} not in mesh axes {mesh.axis_names}."
        )
    return NamedSharding(mesh, PartitionSpec(tuple(batch_axes)))


def batch_parallelism(mesh: Mesh, batch_axes: Sequence[str]) -> int:
    """Number of shards the batch dimension is split into."""
    return math.prod(mesh.shape[axis] for axis in batch_axes)


def state_shardings(
    abstract_state: Any, rules: Sequence[tuple[str, Sequence[Any]]], mesh: Mesh
) -> Any:
    """NamedShardings for each leaf of `abstract_state` (a tree of ShapeDtypeStructs).

    Raises:
      ValueError: naming config.param_sharding for a rule whose spec has more dimensions than a
        leaf it matches, names an unknown mesh axis, or does not divide the leaf's shape.
    """
    compiled = [(re.compile(regex), PartitionSpec(*spec)) for regex, spec in rules]

    def sharding(name: str, leaf: jax.ShapeDtypeStruct) -> NamedSharding:
        for pattern, spec in compiled:
            if pattern.search(name):
                _check_spec(name, leaf.shape, spec, mesh)
                return NamedSharding(mesh, spec)
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(sharding, paths.path_names(abstract_state), abstract_state)


def _check_spec(name: str, shape: tuple[int, ...], spec: PartitionSpec, mesh: Mesh) -> None:
    """Raises ValueError unless `spec` can shard an array of `shape` on `mesh`."""
    if len(spec) > len(shape):
        raise ValueError(
            f"config.param_sharding: spec {spec} has more dimensions than {name} {shape}."
        )
    for dim, axes in zip(shape, spec):
        axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
        if set(axes) - set(mesh.axis_names):
            raise ValueError(
                f"config.param_sharding: spec {spec} for {name} names an axis not in "
                f"{mesh.axis_names}."
            )
        if dim % math.prod(mesh.shape[axis] for axis in axes):
            raise ValueError(f"config.param_sharding: spec {spec} does not divide {name} {shape}.")
