"""Sweeps: many trainings (systems, sizes, instances, architectures) from one file, run on
Dask or in this process, resumable, with one report (``arnn-gen sweep``, ``arnn-gen
reproduce``).

    spec     the sweep file (TOML) -> Sweep -> SweepTask per (instance, architecture)
    task     one task in a worker: build the model, train it into its run folder (resuming);
             or a bundle: the batched tasks of one size and architecture in one module
    runner   the manifest and the executors (Dask's local or remote cluster, or serial)
    report   the run folders -> summary.json / .md / .csv and the paper's figures
"""

from arnn_gen.sweep.report import write_report
from arnn_gen.sweep.runner import MANIFEST, run_sweep
from arnn_gen.sweep.spec import (
    BASELINE_NAMES,
    BATCHED,
    EMITTED,
    Sweep,
    SweepTask,
    SystemEntry,
    expand,
    parse_sweep,
    read_sweep,
)
from arnn_gen.sweep.task import OVERLAP_BETA, run_bundle, run_task

__all__ = [
    "BASELINE_NAMES",
    "BATCHED",
    "EMITTED",
    "MANIFEST",
    "OVERLAP_BETA",
    "Sweep",
    "SweepTask",
    "SystemEntry",
    "expand",
    "parse_sweep",
    "read_sweep",
    "run_bundle",
    "run_sweep",
    "run_task",
    "write_report",
]
