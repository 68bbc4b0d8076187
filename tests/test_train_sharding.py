"""Mesh construction and the regex rules that shard the train state."""

import jax
import jax.numpy as jnp
import ml_collections
import pytest
from jax.sharding import PartitionSpec as P

from attn_research.train import sharding


def _mesh(**axes):
    return sharding.make_mesh(ml_collections.ConfigDict(axes), jax.devices())


def test_mesh_fills_the_minus_one_axis():
    mesh = _mesh(data=-1, model=2)
    assert dict(mesh.shape) == {"data": 4, "model": 2}
    assert dict(_mesh(data=-1).shape) == {"data": 8}


@pytest.mark.parametrize("axes", [{"data": 3}, {"data": -1, "model": -1}, {"data": 0}])
def test_bad_mesh_names_the_field(axes):
    with pytest.raises(ValueError, match="config.mesh"):
        _mesh(**axes)


def test_rules_shard_params_and_their_optimizer_moments():
    mesh = _mesh(data=4, model=2)
    state = {
        "params": {"Dense_0": {"kernel": jnp.zeros((8, 4)), "bias": jnp.zeros(4)}},
        "opt_state": {"mu": {"Dense_0": {"kernel": jnp.zeros((8, 4))}}, "count": jnp.zeros(())},
    }
    abstract = jax.eval_shape(lambda: state)
    shardings = sharding.state_shardings(abstract, [(r"kernel$", (None, "model"))], mesh)
    assert shardings["params"]["Dense_0"]["kernel"].spec == P(None, "model")
    assert shardings["opt_state"]["mu"]["Dense_0"]["kernel"].spec == P(None, "model")
    assert shardings["params"]["Dense_0"]["bias"].spec == P()
    assert shardings["opt_state"]["count"].spec == P()


@pytest.mark.parametrize("spec", [(None, None, "model"), ("fsdp", None), (None, "data")])
def test_impossible_rule_names_the_field(spec):
    mesh = _mesh(data=-1, model=2)  # data: 4 does not divide 2; fsdp is not an axis.
    abstract = jax.eval_shape(lambda: {"kernel": jnp.zeros((8, 2))})
    with pytest.raises(ValueError, match="config.param_sharding"):
        sharding.state_shardings(abstract, [(r"kernel", spec)], mesh)


def test_batch_sharding_splits_the_leading_dimension():
    mesh = _mesh(data=4, model=2)
    batch = jax.device_put(jnp.zeros((8, 3)), sharding.batch_sharding(mesh, ("data",)))
    assert batch.addressable_shards[0].data.shape == (2, 3)
    assert sharding.batch_parallelism(mesh, ("data",)) == 4
    assert sharding.batch_parallelism(mesh, ("data", "model")) == 8
