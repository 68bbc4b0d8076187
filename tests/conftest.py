"""Test configuration: 8 forced CPU devices, set before jax is imported anywhere."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Float32 matmuls in full precision on every backend (GPUs default to TF32), so comparisons with
# float64 NumPy references hold at float32 tolerances there too.
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")

import pathlib

import pytest

# The shared read-only data sets (MNIST, spa-eng) live in `shared/data` beside the checkout;
# ATTN_SHARED_DATA overrides that. Tests that need them skip when they are absent.
SHARED_DATA = pathlib.Path(
    os.environ.get(
        "ATTN_SHARED_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)


@pytest.fixture
def shared_data() -> pathlib.Path:
    """Directory holding mnist/mnist.npz and spa-eng/spa.txt; skips the test if missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set ATTN_SHARED_DATA)")
    return SHARED_DATA
