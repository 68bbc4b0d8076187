"""What a run records about itself: workdir checks, resolved config, versions, git commit."""

import dataclasses
import datetime
import importlib.metadata
import json
import os
import subprocess
import tempfile
from typing import Any

import jax
import ml_collections

from attn_research.train.durations import Durations

_PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "grain",
    "numpy",
    "ml-collections",
    "tensorboardX",
)


def check_workdir(workdir: str) -> None:
    """Creates `workdir` if needed and checks that files can be written in it.

    Raises:
      ValueError: naming the workdir if it cannot be created or written.
    """
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.TemporaryFile(dir=workdir):
            pass
    except OSError as error:
        raise ValueError(f"workdir {workdir!r} is not writable: {error}.") from None


def _git_commit() -> str | None:
    """The commit of the source tree this package runs from, '+dirty' if modified."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty.strip() else "")


def _versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide numerics."""
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def write_json(workdir: str, name: str, content: Any) -> None:
    """Writes `content` as `<workdir>/<name>` from process 0 only."""
    if jax.process_index() == 0:
        with open(os.path.join(workdir, name), "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2, sort_keys=True)
            f.write("\n")


def write_run_info(workdir: str, config: ml_collections.ConfigDict, durations: Durations) -> None:
    """Writes `config.json` (the resolved config) and `run_info.json` (environment)."""
    write_json(workdir, "config.json", config.to_dict())
    write_json(
        workdir,
        "run_info.json",
        {
            "git_commit": _git_commit(),
            "versions": _versions(),
            "durations": dataclasses.asdict(durations),
            "devices": [str(device) for device in jax.devices()],
            "process_count": jax.process_count(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        },
    )
