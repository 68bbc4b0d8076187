"""A study's results: per-point and per-group (mean ± std over seeds) tables, and plots.

Reads each point's workdir as the trainer leaves it: ``summary.json`` (final eval metrics,
timings, parameter count), ``metrics.jsonl`` (every logged metric by step) and ``config.json``.
Writes ``results.csv`` (one row per point), ``results.md`` (the grouped table), and PNG plots:
``curve_<metric>.png`` (metric against step, one line per point) and
``axis_<axis>_<metric>.png`` (metric against each axis, mean ± std over the other points) and,
for translation studies, ``bleu_by_length.png`` (final BLEU per source-length bucket, one line per
group, mean over seeds).
Unfinished points are listed with the last step they logged.
"""

from __future__ import annotations

import csv
import json
import os
import re
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.study import SEED_AXIS, Point, Study  # noqa: E402

_LOWER_IS_BETTER = re.compile(r"(loss|aer|error|perplexity)", re.IGNORECASE)


def lower_is_better(metric: str) -> bool:
    return bool(_LOWER_IS_BETTER.search(metric))


def _read_json(path: str) -> Any:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_curves(workdir: str) -> list[dict[str, float]]:
    """The records of ``metrics.jsonl`` (empty if there are none yet)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def point_row(study: Study, point: Point, workdir: str) -> dict[str, Any]:
    """Final and best metrics, size, time and throughput of one point."""
    summary = _read_json(os.path.join(workdir, "summary.json"))
    config = _read_json(os.path.join(workdir, "config.json")) or {}
    curves = read_curves(workdir)
    row: dict[str, Any] = {"point": point.name, "group": point.group, **dict(point.values)}
    row["status"] = "done" if summary else (f"step {curves[-1]['step']}" if curves else "not run")
    for metric in study.metrics:
        values = [r[metric] for r in curves if metric in r]
        best = (min if lower_is_better(metric) else max)(values) if values else None
        final = (summary or {}).get("eval", {}).get(metric, values[-1] if values else None)
        row[f"{metric} final"], row[f"{metric} best"] = final, best
    summary = summary or {}
    row["params"] = summary.get("num_params")
    row["train_sec"] = summary.get("train_sec")
    steps_per_sec = summary.get("steps_per_sec")
    row["examples/s"] = (
        steps_per_sec * config["batch_size"] if steps_per_sec and "batch_size" in config else None
    )
    return row


def _fmt(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{np.mean(values):.4g} ± {np.std(values):.2g}"


def grouped_table(study: Study, rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per group of seeds with mean ± std of every column."""
    columns = [f"{m} final" for m in study.metrics] + [f"{m} best" for m in study.metrics]
    columns += ["params", "train_sec", "examples/s"]
    lines = ["| point | seeds | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for group in dict.fromkeys(r["group"] for r in rows):
        members = [r for r in rows if r["group"] == group]
        done = [r for r in members if r["status"] == "done"]
        status = f"{len(done)}/{len(members)}"
        cells = [_fmt([r[c] for r in members]) for c in columns]
        lines.append(f"| {group} | {status} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot_curves(study: Study, points: list[Point], root: str, out_dir: str) -> None:
    for metric in study.metrics:
        fig, ax = plt.subplots(figsize=(7, 4))
        for point in points:
            curve = [
                (r["step"], r[metric])
                for r in read_curves(os.path.join(root, point.name))
                if metric in r
            ]
            if curve:
                ax.plot(*zip(*curve), marker=".", label=point.name)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"curve_{metric.replace('/', '_')}.png"), dpi=120)
        plt.close(fig)


def _plot_axes(study: Study, rows: list[dict[str, Any]], out_dir: str) -> None:
    axes = [
        a
        for a in dict.fromkeys(k for r in rows for k in r)
        if a in {axis for p in study.points() for axis, _ in p.values} and a != SEED_AXIS
    ]
    for axis in axes:
        values = list(dict.fromkeys(r[axis] for r in rows if axis in r))
        for metric in study.metrics:
            means, stds = [], []
            for value in values:
                finals = [
                    r[f"{metric} final"]
                    for r in rows
                    if r.get(axis) == value and r[f"{metric} final"] is not None
                ]
                means.append(np.mean(finals) if finals else np.nan)
                stds.append(np.std(finals) if finals else 0.0)
            fig, ax = plt.subplots(figsize=(max(4, len(values)), 3.5))
            ax.errorbar([str(v) for v in values], means, yerr=stds, fmt="o", capsize=4)
            ax.set_xlabel(axis)
            ax.set_ylabel(metric)
            ax.tick_params(axis="x", labelrotation=30)
            fig.tight_layout()
            name = f"axis_{axis.replace('.', '_')}_{metric.replace('/', '_')}.png"
            fig.savefig(os.path.join(out_dir, name), dpi=120)
            plt.close(fig)


_BLEU_LEN = "eval/bleu_len_"


def _bucket_low(name: str) -> int:
    """The lower edge in words of a bucket named ``"10-19"`` or ``"60+"``."""
    return int(name.rstrip("+").split("-")[0])


def plot_bleu_by_length(
    lines: Mapping[str, Mapping[str, float]], path: str
) -> dict[str, list[tuple[str, float]]]:
    """Writes a PNG at `path`: BLEU against source-length bucket, one line per model.

    `lines` maps a model's label to {bucket name (``"0-9"``, ``"10-19"``, ..., ``"60+"``, as
    `evaluation.bleu.bleu_by_length` names them): BLEU}. Buckets are ordered by their lower edge
    in words; a model lacking a bucket has no point there. Returns the points drawn,
    {label: [(bucket, BLEU), ...]}.
    """
    buckets = sorted({b for values in lines.values() for b in values}, key=_bucket_low)
    drawn = {
        label: [(b, float(values[b])) for b in buckets if b in values]
        for label, values in lines.items()
    }
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, points in drawn.items():
        ax.plot([buckets.index(b) for b, _ in points], [v for _, v in points], "o-", label=label)
    ax.set_xticks(range(len(buckets)), buckets)
    ax.set_xlabel("source length (words)")
    ax.set_ylabel("BLEU")
    ax.set_ylim(bottom=0)
    # Below the axes: with five models, a legend inside hides the lines it names.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return drawn


def _bleu_by_length_lines(points: list[Point], root: str) -> dict[str, dict[str, float]]:
    """{group: {bucket: mean final BLEU over its finished seeds}} from the points' summaries."""
    finals: dict[str, dict[str, list[float]]] = {}
    for point in points:
        summary = _read_json(os.path.join(root, point.name, "summary.json")) or {}
        for key, value in summary.get("eval", {}).items():
            if key.startswith(_BLEU_LEN):
                bucket = key[len(_BLEU_LEN) :]
                finals.setdefault(point.group, {}).setdefault(bucket, []).append(value)
    return {
        group: {b: float(np.mean(v)) for b, v in buckets.items()}
        for group, buckets in finals.items()
    }


def write_results(study: Study, root: str) -> str:
    """Writes the tables and plots of ``study`` (workdirs under ``root``); returns the Markdown."""
    os.makedirs(root, exist_ok=True)
    points = study.points()
    rows = [point_row(study, p, os.path.join(root, p.name)) for p in points]
    with open(os.path.join(root, "results.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    table = f"## {study.name}\n\n" + grouped_table(study, rows)
    with open(os.path.join(root, "results.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    _plot_curves(study, points, root, root)
    _plot_axes(study, rows, root)
    lines = _bleu_by_length_lines(points, root)
    if lines:
        plot_bleu_by_length(lines, os.path.join(root, "bleu_by_length.png"))
    return table
