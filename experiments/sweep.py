"""Runs every point of a study, each in its own workdir, and tabulates the results.

    python -m experiments.sweep experiments/studies/translation_kinds.py:small \
        [--root workdirs/studies] [--parallel 2] [--print-commands]

Points whose workdir holds a ``summary.json`` are done and skipped; unfinished ones are
relaunched and resume from their newest checkpoint (the trainer does that by itself). With
``--print-commands`` nothing runs: one launch command per point is printed, for a cluster or
TPU scheduler. After the runs (and with ``--results-only``, without running anything), the
results table and plots are written to ``<root>/<study>/`` (see ``experiments.results``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from typing import Sequence

from attn_research.command_flags import argparse_type, at_least
from experiments import results
from experiments.study import Point, Study, shell_line


def load_study(spec: str) -> Study:
    """``path/to/study.py[:arg]`` -> the Study its ``get_study(arg)`` returns."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ValueError(f"study file {path!r} does not exist")
    module_spec = importlib.util.spec_from_file_location("_study", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_study"):
        raise ValueError(f"study file {path!r} defines no get_study(arg=None)")
    return module.get_study(arg or None)


def point_dir(root: str, study: Study, point: Point) -> str:
    return os.path.join(root, study.name, point.name)


def is_done(workdir: str) -> bool:
    return os.path.isfile(os.path.join(workdir, "summary.json"))


def run_points(study: Study, root: str, parallel: int) -> dict[Point, int]:
    """Runs the unfinished points, ``parallel`` at a time; returns each launched point's exit code.

    Each run's output goes to ``<workdir>/sweep.log``.
    """
    queue = [p for p in study.points() if not is_done(point_dir(root, study, p))]
    skipped = len(study.points()) - len(queue)
    print(f"study {study.name}: {len(queue)} points to run, {skipped} already done", flush=True)
    running: dict[Point, tuple[subprocess.Popen, object]] = {}
    codes: dict[Point, int] = {}
    while queue or running:
        while queue and len(running) < parallel:
            point = queue.pop(0)
            workdir = point_dir(root, study, point)
            os.makedirs(workdir, exist_ok=True)
            log = open(os.path.join(workdir, "sweep.log"), "a", encoding="utf-8")
            command = study.command(point, workdir)
            print(f"start {point.name}: {shell_line(command)}", flush=True)
            running[point] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log)
        for point, (process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                codes[point] = process.returncode
                state = "done" if process.returncode == 0 else f"FAILED ({process.returncode})"
                print(f"{state} {point.name}", flush=True)
                del running[point]
        time.sleep(0.5)
    return codes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="path/to/study.py[:variant]")
    parser.add_argument("--root", default="workdirs/studies", help="parent of the study's workdirs")
    parser.add_argument(
        "--parallel",
        type=argparse_type(int, at_least(1)),
        default=1,
        help="points run at the same time",
    )
    parser.add_argument("--print-commands", action="store_true", help="print, don't run")
    parser.add_argument("--results-only", action="store_true", help="only tabulate finished points")
    args = parser.parse_args(argv)
    study = load_study(args.study)
    if args.print_commands:
        for point in study.points():
            print(shell_line(study.command(point, point_dir(args.root, study, point))))
        return 0
    failed = 0
    if not args.results_only:
        failed = sum(code != 0 for code in run_points(study, args.root, args.parallel).values())
    table = results.write_results(study, os.path.join(args.root, study.name))
    print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
