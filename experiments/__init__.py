"""Experiments: configs, studies, sweeps and benchmarks."""
