"""The report of a sweep (``arnn-gen sweep --report``): one table and the paper's figures,
aggregated from the run folders.

Input: the output root and the sweep's tasks (their run folders, :mod:`arnn_gen.sweep.task`).
Output, in the root:

    summary.json   per (system, architecture, N): the relative error of the final free
                   energy, mean over instances with its spread (sample standard deviation,
                   ddof = 1) and range, the mean standard error of the estimates, that of
                   F_IS, the largest relative error over the annealing, training seconds;
                   and every run's rows
    summary.md     the same table in Markdown;  summary.csv  the same table as CSV
    figures/relative_error_<system>.png   mean relative error vs N, bars: the spread
    figures/overlap_<system>_n<N>.png     P(q) at OVERLAP_BETA per architecture (mean
                                          over instances)
    <group>/plots/ the four figures of :func:`arnn_gen.learn.plots.save_plots` per instance

The reference of a relative error is the exact f where one is known (the CW formula,
enumeration for N <= 20, frontier elimination, Kaufman's formula; a run that knows none
takes that of another run of the same instance, e.g. a baseline on a large lattice that of
the frontier network), else the lowest variational f that any architecture of the sweep
reached on that instance and beta (the best upper bound); each row says which.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from arnn_gen.errors import ArnnGenError
from arnn_gen.files import write_atomically
from arnn_gen.sweep.spec import SweepTask
from arnn_gen.sweep.task import OVERLAP_BETA, read_result, run_folder

__all__ = ["TABLE_KEYS", "write_report", "summarise", "markdown"]

#: Columns of summary.csv (and keys of summary.json's "table" rows).
TABLE_KEYS = (
    "system",
    "architecture",
    "N",
    "instances",
    "reference",
    "final_relative_error",
    "final_relative_error_spread",
    "final_relative_error_min",
    "final_relative_error_max",
    "final_relative_error_sem",
    "final_relative_error_is",
    "final_relative_error_is_sem",
    "max_relative_error",
    "seconds",
)


def _mean(values):
    values = list(values)
    return None if not values or None in values else float(np.mean(values))


def summarise(results: Sequence[dict], *, manifest: dict | None = None) -> list[dict]:
    """The table rows from the results of finished tasks (:func:`read_result`)."""
    best: dict = {}  # (group, beta) -> lowest variational f of any architecture
    exact: dict = {}  # (group, beta) -> the exact f any run of the instance knows
    for result in results:
        for row in (*result["rows"], {**result["final"], "beta": "final"}):
            key = (result["group"], row["beta"])
            best[key] = min(best.get(key, math.inf), row["free_energy"])
            if row.get("exact_free_energy") is not None:
                exact[key] = row["exact_free_energy"]
    seconds = {} if manifest is None else manifest.get("tasks", {})
    table: dict = {}
    for result in results:
        errors, exact_everywhere = [], True
        for row in (*result["rows"], {**result["final"], "beta": "final"}):
            key = (result["group"], row["beta"])
            known = key in exact  # a baseline on a large sparse system: its frontier's value
            exact_everywhere &= known
            reference = exact[key] if known else best[key]
            errors.append({
                "error": abs(row["free_energy"] - reference) / abs(reference),
                "sem": row["free_energy_sem"] / abs(reference),
                "is": abs(row["free_energy_is"] - reference) / abs(reference) if known else None,
                "is_sem": row["free_energy_is_sem"] / abs(reference) if known else None,
            })  # fmt: skip
        key = (result["system"], result["architecture"], result["N"])
        table.setdefault(key, []).append({
            "final": errors[-1], "max": max(e["error"] for e in errors[:-1]) if errors[:-1]
            else errors[-1]["error"], "exact": exact_everywhere,
            "seconds": seconds.get(result["id"], {}).get("seconds"),
        })  # fmt: skip
    rows = []
    for (system, architecture, N), entries in table.items():  # noqa: N806
        finals = [e["final"]["error"] for e in entries]
        rows.append({
            "system": system, "architecture": architecture, "N": N, "instances": len(entries),
            "reference": "exact" if all(e["exact"] for e in entries) else "best",
            "final_relative_error": _mean(finals),
            "final_relative_error_spread": float(np.std(finals, ddof=1)) if len(finals) > 1
            else None,
            "final_relative_error_min": min(finals), "final_relative_error_max": max(finals),
            "final_relative_error_sem": _mean(e["final"]["sem"] for e in entries),
            "final_relative_error_is": _mean(e["final"]["is"] for e in entries),
            "final_relative_error_is_sem": _mean(e["final"]["is_sem"] for e in entries),
            "max_relative_error": _mean(e["max"] for e in entries),
            "seconds": None if None in (s := [e["seconds"] for e in entries]) else sum(s),
        })  # fmt: skip
    return rows


def _cell(value, fmt=".2e") -> str:
    return "-" if value is None else format(value, fmt)


def markdown(summary: dict) -> str:
    config = summary["config"]
    lines = [
        f"# {summary['title']}",
        "",
        f"beta {config['beta_start']} -> {config['beta']} in steps of {config['beta_step']}, "
        f"{config['steps_per_beta']} steps per beta, batch {config['batch']}, "
        f"lr {config['lr'] or 'the default'}, "
        f"seed {config['seed']}; torch {summary['torch']}, device {config['device']}"
        f"{' (compiled)' if config.get('compile') else ''}; {summary['tasks']} tasks, "
        f"{summary['seconds']:.0f} s of training in all.",
        f"Reference: {summary['reference']}.",
        "",
        f"Final: the estimate at beta = {config['beta']} on {config['eval_samples']} samples: "
        "the mean over instances of the relative error of f, its spread (standard deviation "
        "over instances) and the mean standard error of the estimates; F_IS: the "
        "importance-sampled estimate (exact references only).",
        "",
        "| system | architecture | N | instances | reference | relative error of f (final) "
        "| spread | of F_IS (final) | largest relative error over beta | training time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["table"]:
        is_error = row["final_relative_error_is"]
        is_cell = "-" if is_error is None else (
            f"{is_error:.2e} ± {row['final_relative_error_is_sem']:.0e}")  # fmt: skip
        lines.append(
            f"| {row['system']} | {row['architecture']} | {row['N']} | {row['instances']} | "
            f"{row['reference']} | {row['final_relative_error']:.2e} ± "
            f"{row['final_relative_error_sem']:.0e} | {_cell(row['final_relative_error_spread'])}"
            f" | {is_cell} | {row['max_relative_error']:.2e} | {_cell(row['seconds'], '.1f')} |"
        )
    if summary["missing"]:
        lines += ["", f"Not finished ({len(summary['missing'])}): "
                  + ", ".join(summary["missing"][:20])
                  + (" ..." if len(summary["missing"]) > 20 else "")]  # fmt: skip
    return "\n".join(lines) + "\n"


def _csv(rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(TABLE_KEYS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in TABLE_KEYS})
    return buffer.getvalue().encode()


def write_report(out, tasks: Sequence[SweepTask], *, title: str,
                 manifest: dict | None = None, extra: dict | None = None) -> Path:  # fmt: skip
    """Aggregate the finished tasks' run folders under ``out`` into the summary files and
    figures (module docstring); returns the path of summary.md. Tasks not finished are
    listed as such; a report with none finished is an error."""
    from arnn_gen.learn.plots import save_plots

    out = Path(out)
    results, missing, groups = [], [], {}
    for task in tasks:
        result = read_result(task, out)
        if result is None:
            missing.append(task.id)
        else:
            results.append(result)
            groups.setdefault(task.group, []).append(run_folder(task, out))
    if not results:
        raise ArnnGenError(f"no task of this sweep has finished in {out}; nothing to report")
    config = tasks[0].config.to_dict()
    rows = summarise(results, manifest=manifest)
    summary = {
        "title": title,
        "system": ", ".join(dict.fromkeys(task.system for task in tasks)),
        "config": config,
        "reference": "exact (CW formula, enumeration for N <= 20, frontier elimination, "
        "Kaufman's formula) where known; else the best architecture's variational f",
        "seconds": sum(row["seconds"] or 0.0 for row in rows),
        "tasks": len(tasks),
        "torch": torch.__version__,
        "table": rows,
        "missing": missing,
        "runs": results,
        **(extra or {}),
    }
    write_atomically(out / "summary.json", json.dumps(summary, indent=1).encode())
    write_atomically(out / "summary.csv", _csv(rows))
    write_atomically(out / "summary.md", markdown(summary).encode())
    _figures(out, rows, results)
    for group, runs in groups.items():
        save_plots(runs, out / group / "plots")
    return out / "summary.md"


def _figures(out: Path, rows: list[dict], results: list[dict]) -> None:
    from matplotlib.figure import Figure

    from arnn_gen.learn.plots import figure_bytes

    folder = out / "figures"
    folder.mkdir(exist_ok=True)
    for system in dict.fromkeys(row["system"] for row in rows):
        figure = Figure(figsize=(6.4, 4.4))
        ax = figure.add_subplot()
        for architecture in dict.fromkeys(r["architecture"] for r in rows if r["system"] == system):
            mine = [r for r in rows if (r["system"], r["architecture"]) == (system, architecture)]
            mine.sort(key=lambda r: r["N"])
            sizes = [r["N"] for r in mine]
            means = [r["final_relative_error"] for r in mine]
            spread = [r["final_relative_error_spread"] or 0.0 for r in mine]
            ax.errorbar(sizes, means, yerr=spread, marker="o", capsize=3, label=architecture)
        ax.set_xlabel("N")
        ax.set_ylabel("relative error of f (final)")
        ax.set_yscale("log", nonpositive="clip")
        ax.set_title(f"{system}: mean over instances, bars: spread")
        ax.legend(fontsize="small")
        write_atomically(folder / f"relative_error_{system}.png", figure_bytes(figure, "png"),
                         only_if_changed=True)  # fmt: skip
    by_size: dict = {}
    for result in results:
        overlap = result.get("overlap") or {}
        if overlap.get("density"):
            key = (result["system"], result["N"])
            by_size.setdefault(key, {}).setdefault(result["architecture"], []).append(overlap)
    for (system, N), architectures in by_size.items():  # noqa: N806
        figure = Figure(figsize=(6.4, 4.4))
        ax = figure.add_subplot()
        for architecture, overlaps in architectures.items():
            edges = np.array(overlaps[0]["edges"])
            density = np.mean([o["density"] for o in overlaps], axis=0)
            ax.stairs(density, edges, label=f"{architecture} ({len(overlaps)})")
        ax.set_xlabel("q")
        ax.set_ylabel(f"P(q) at beta = {OVERLAP_BETA}")
        ax.set_title(f"{system}, N = {N}: mean over instances")
        ax.legend(fontsize="small")
        write_atomically(folder / f"overlap_{system}_n{N}.png", figure_bytes(figure, "png"),
                         only_if_changed=True)  # fmt: skip
