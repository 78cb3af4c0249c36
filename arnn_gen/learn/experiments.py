"""The paper's comparisons (docs/physics.md section 6), one command each: ``arnn-gen reproduce``.

Input: an :class:`Experiment` (system, sizes, SK instances, architectures, schedule), a
preset of a sweep (:mod:`arnn_gen.sweep`): one code path runs, resumes and reports both.
Output: a folder with one run folder per (size, instance, architecture) as written by
:func:`arnn_gen.learn.train.train`, plots per (size, instance), and the sweep's report
(``summary.json`` / ``.md`` / ``.csv``, figures): per architecture and size, the relative
error of the final free energy over the instances and its largest value over the
annealing, against the exact value (CW formula at any N, enumeration for N <= 20) or, where
none is known, against the lowest variational free energy any architecture reached (the
best upper bound).

``quick`` presets run in a few minutes on 2 CPU cores (small N, short schedules); ``full``
presets follow the paper's sizes and protocol and take hours to days on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.train import TrainConfig
from arnn_gen.sweep.spec import BASELINE_NAMES, EMITTED, Sweep, SystemEntry
from arnn_gen.sweep.task import OVERLAP_BETA

__all__ = [
    "Experiment",
    "PRESETS",
    "preset",
    "select",
    "run_experiment",
    "sweep_of",
    "EMITTED",
    "BASELINE_NAMES",
    "OVERLAP_BETA",
]


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


def sweep_of(experiment: Experiment) -> Sweep:
    """The experiment as a sweep: one system, its sizes, instances and architectures."""
    instances = experiment.seeds if experiment.system == "sk" else (0,)
    entry = SystemEntry(experiment.system, experiment.sizes, instances, experiment.architectures)
    return Sweep(name=f"reproduce {experiment.system} ({experiment.mode})",
                 schedule=experiment.config, systems=(entry,))  # fmt: skip


def run_experiment(
    experiment: Experiment,
    out_dir,
    *,
    progress: bool = True,
    force: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    echo=None,
) -> Path:
    """Train every architecture on every instance (the sweep of :func:`sweep_of`, in this
    process unless a Dask ``scheduler`` or local ``workers`` are named); write the runs,
    plots and the summary; returns the path of summary.md. Run again with the same
    ``out_dir``, it skips what has finished and resumes what was interrupted."""
    from arnn_gen.sweep.runner import run_sweep

    serial = scheduler is None and workers is None
    return run_sweep(
        sweep_of(experiment), out_dir, scheduler=scheduler, workers=workers, threads=threads,
        serial=serial,
        force=force, progress=progress, echo=echo,
        title=f"arnn-gen reproduce {experiment.system} ({experiment.mode})",
        extra={"mode": experiment.mode},
    )  # fmt: skip
