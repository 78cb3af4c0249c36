"""The paper's comparisons (docs/physics.md section 6), one command each: ``arnn-gen reproduce``.

Input: an :class:`Experiment` (system, sizes, SK instances, architectures, schedule).
Output: a folder with one run folder per (size, instance, architecture) as written by
:func:`arnn_gen.learn.train.train`, plots per (size, instance), and ``summary.json`` /
``summary.md``: per architecture and size, the relative error of the final free energy and
its largest value over the annealing, against the exact value (CW formula at any N,
enumeration for N <= 20) or, where none is known, against the lowest variational free energy
any architecture reached (the best upper bound).

``quick`` presets run in a few minutes on 2 CPU cores (small N, short schedules); ``full``
presets follow the paper's sizes and protocol and take hours to days on a CPU.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.train import TrainConfig, train

__all__ = [
    "Experiment",
    "PRESETS",
    "preset",
    "select",
    "run_experiment",
    "EMITTED",
    "BASELINE_NAMES",
]

#: Architectures emitted by arnn-gen: title -> (variant, k).
EMITTED = {
    "CW_N": ("exact", None),
    "CW_inf": ("inf", None),
    "SK_RS": ("rs", 0),
    "SK_1RSB": ("krsb", 1),
    "SK_2RSB": ("krsb", 2),
}
BASELINE_NAMES = ("1P", "1L", "MADE_21", "MADE_22")
#: The overlap distribution P(q) is recorded when annealing passes this beta (paper, Fig. 4).
OVERLAP_BETA = 1.3


@dataclass(frozen=True)
class Experiment:
    system: str
    sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    architectures: tuple[str, ...]
    config: TrainConfig
    mode: str


def _config(quick: bool) -> TrainConfig:
    if quick:
        return TrainConfig(beta=2.0, beta_start=0.1, beta_step=0.2, steps_per_beta=20,
                           batch=256, lr=1e-2, eval_samples=2000, dtype="float64")  # fmt: skip
    return TrainConfig(beta=2.0, beta_start=0.1, beta_step=0.05, steps_per_beta=1000,
                       batch=2000, lr=1e-3, eval_samples=20000, dtype="float64")  # fmt: skip


PRESETS = {
    ("cw", True): dict(sizes=(20, 50), seeds=(0,),
                       architectures=("CW_N", "CW_inf", "1P", "1L", "MADE_21", "MADE_22")),
    ("cw", False): dict(sizes=(20, 50, 100, 200, 400, 800), seeds=(0,),
                        architectures=("CW_N", "CW_inf", "1P", "1L", "MADE_21", "MADE_22")),
    ("sk", True): dict(sizes=(12,), seeds=(0, 1),
                       architectures=("SK_RS", "SK_1RSB", "SK_2RSB", "1L", "MADE_21", "MADE_22")),
    ("sk", False): dict(sizes=(20, 50, 100, 200), seeds=tuple(range(10)),
                        architectures=("SK_RS", "SK_1RSB", "SK_2RSB", "1L", "MADE_21", "MADE_22")),
}  # fmt: skip


def preset(system: str, *, quick: bool, device: str = "cpu") -> Experiment:
    if (system, quick) not in PRESETS:
        raise ArnnGenError(f"reproduce knows the systems cw and sk, not {system!r}")
    options = PRESETS[(system, quick)]
    config = replace(_config(quick), device=device)
    return Experiment(system=system, config=config, mode="quick" if quick else "full", **options)


def select(
    experiment: Experiment,
    *,
    sizes: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    architectures: Sequence[str] | None = None,
) -> Experiment:
    """A part of ``experiment``: only the given sizes, instance seeds and architectures
    (None keeps all), each of which must be in the experiment; the schedule is unchanged,
    so a preset can be run in pieces."""
    changes = {}
    if seeds is not None and experiment.system != "sk":
        raise ArnnGenError(f"{experiment.system} has no disorder instances: --instances is for sk")
    for name, chosen in (("sizes", sizes), ("seeds", seeds), ("architectures", architectures)):
        if chosen is None:
            continue
        known = getattr(experiment, name)
        unknown = [item for item in chosen if item not in known]
        if unknown or not chosen:
            label = {"seeds": "instances"}.get(name, name)
            raise ArnnGenError(
                f"{experiment.system} ({experiment.mode}) has the {label} "
                f"{', '.join(map(str, known))}; not {', '.join(map(str, unknown)) or 'none'}"
            )
        changes[name] = tuple(item for item in known if item in chosen)
    return replace(experiment, **changes)


def _model(system: str, architecture: str, N: int, seed: int, folder: Path, config):  # noqa: N803
    """A fresh model of ``architecture`` for the system instance (emitted or baseline)."""
    from arnn_gen.codegen.emit import load_module, write_module
    from arnn_gen.learn.baselines import make_baseline
    from arnn_gen.pipeline import build_system, lower
    from arnn_gen.systems import as_hamiltonian

    beta = config.betas()[0]
    if architecture in EMITTED:
        variant, k = EMITTED[architecture]
        stages = lower(system, variant=variant, N=N, k=k or 0, seed=seed, beta=beta,
                       name=f"{system}_{architecture.lower()}_n{N}_s{seed}")  # fmt: skip
        module = load_module(write_module(stages.ir, stages.source, stages.hamiltonian,
                                          folder, force=True))  # fmt: skip
        return module.Model(beta=beta, dtype=getattr(torch, config.dtype))
    if architecture in BASELINE_NAMES:
        hamiltonian = as_hamiltonian(build_system(system, N, seed=seed, default_n=N))
        torch.manual_seed(seed)  # baselines draw their random start from torch's generator
        return make_baseline(architecture, hamiltonian, beta=beta,
                             dtype=getattr(torch, config.dtype), init="random")  # fmt: skip
    raise ArnnGenError(f"unknown architecture {architecture!r}")


def run_experiment(experiment: Experiment, out_dir, *, progress: bool = True) -> Path:
    """Train every architecture on every instance; write runs, plots and the summary."""
    from arnn_gen.learn.observables import overlap_histogram
    from arnn_gen.learn.plots import save_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    started = time.perf_counter()
    for N in experiment.sizes:
        for seed in experiment.seeds if experiment.system == "sk" else (0,):
            group = out / f"{experiment.system}_n{N}_s{seed}"
            runs = []
            for architecture in experiment.architectures:
                model = _model(experiment.system, architecture, N, seed, group / "modules",
                               experiment.config)  # fmt: skip
                overlap = {}

                def record_overlap(index, beta, model=model, overlap=overlap):
                    if not overlap and beta >= OVERLAP_BETA - 1e-9:
                        with torch.no_grad():
                            x = model.sample(2000, generator=torch.Generator().manual_seed(1))
                        edges, density = overlap_histogram(x.cpu())
                        overlap.update(beta=beta, edges=edges.tolist(), density=density.tolist())

                clock = time.perf_counter()
                result = train(model, experiment.config, group / architecture, progress=progress,
                               label=architecture, after_beta=record_overlap)  # fmt: skip
                runs.append(group / architecture)
                results.append({
                    "architecture": architecture, "N": N, "seed": seed,
                    "rows": list(result.rows), "final": _without_histogram(result.final),
                    "overlap": overlap, "seconds": time.perf_counter() - clock,
                })  # fmt: skip
            save_plots(runs, group / "plots")
    summary = _summarise(experiment, results, time.perf_counter() - started)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(_markdown(summary))
    return out / "summary.md"


def _without_histogram(final: dict) -> dict:
    return {k: v for k, v in final.items() if not k.startswith("overlap")}


def _summarise(experiment: Experiment, results: list[dict], seconds: float) -> dict:
    """Relative errors per (architecture, N), averaged over instances: of the final estimate
    (eval_samples samples) with its standard error and that of F_IS, and the largest over
    the per-beta rows."""
    best = {}  # (N, seed, beta) -> lowest variational f of any architecture
    for result in results:
        for row in (*result["rows"], {**result["final"], "beta": "final"}):
            key = (result["N"], result["seed"], row["beta"])
            best[key] = min(best.get(key, math.inf), row["free_energy"])
    table = {}
    for result in results:
        errors = []
        for row in (*result["rows"], {**result["final"], "beta": "final"}):
            reference = row.get("exact_free_energy")
            exact = reference is not None
            if not exact:
                reference = best[(result["N"], result["seed"], row["beta"])]
            errors.append({
                "error": abs(row["free_energy"] - reference) / abs(reference),
                "sem": row["free_energy_sem"] / abs(reference),
                "is": abs(row["free_energy_is"] - reference) / abs(reference) if exact else None,
                "is_sem": row["free_energy_is_sem"] / abs(reference),
            })  # fmt: skip
        entry = table.setdefault((result["architecture"], result["N"]), [])
        entry.append({"final": errors[-1], "max": max(e["error"] for e in errors[:-1]),
                      "seconds": result["seconds"]})  # fmt: skip
    rows = []
    for (architecture, N), entries in table.items():

        def mean(values):
            values = list(values)
            return None if None in values else sum(values) / len(values)

        rows.append({
            "architecture": architecture, "N": N, "instances": len(entries),
            "final_relative_error": mean(e["final"]["error"] for e in entries),
            "final_relative_error_sem": mean(e["final"]["sem"] for e in entries),
            "final_relative_error_is": mean(e["final"]["is"] for e in entries),
            "final_relative_error_is_sem": mean(e["final"]["is_sem"] for e in entries),
            "max_relative_error": mean(e["max"] for e in entries),
            "seconds": sum(e["seconds"] for e in entries),
        })  # fmt: skip
    return {
        "system": experiment.system,
        "mode": experiment.mode,
        "config": experiment.config.to_dict(),
        "reference": "exact (CW formula, or enumeration for N <= 20); else the best "
        "architecture's variational f",
        "seconds": seconds,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "table": rows,
        "runs": results,
    }


def _markdown(summary: dict) -> str:
    config = summary["config"]
    lines = [
        f"# arnn-gen reproduce {summary['system']} ({summary['mode']})",
        "",
        f"beta {config['beta_start']} -> {config['beta']} in steps of {config['beta_step']}, "
        f"{config['steps_per_beta']} steps per beta, batch {config['batch']}, lr {config['lr']}, "
        f"seed {config['seed']}; torch {summary['torch']}, {summary['threads']} threads, "
        f"device {config['device']}{' (compiled)' if config.get('compile') else ''}; "
        f"{summary['seconds']:.0f} s in all.",
        f"Reference: {summary['reference']}.",
        "",
        f"Final: the estimate at beta = {config['beta']} on {config['eval_samples']} samples, "
        "with its standard error; F_IS: the importance-sampled estimate (exact references "
        "only).",
        "",
        "| architecture | N | instances | relative error of f (final) | of F_IS (final) | "
        "largest relative error over beta | training time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary["table"]:
        is_error = row["final_relative_error_is"]
        is_cell = "-" if is_error is None else (
            f"{is_error:.2e} ± {row['final_relative_error_is_sem']:.0e}")  # fmt: skip
        lines.append(
            f"| {row['architecture']} | {row['N']} | {row['instances']} | "
            f"{row['final_relative_error']:.2e} ± {row['final_relative_error_sem']:.0e} | "
            f"{is_cell} | {row['max_relative_error']:.2e} | {row['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"
