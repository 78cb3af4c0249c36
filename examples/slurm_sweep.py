"""Run a sweep on a SLURM cluster through dask-jobqueue (pip install 'arnn-gen[sweep]'
dask-jobqueue).

Each SLURM job is one Dask worker that runs one training at a time with ``CORES`` torch
threads (Note [Threads of a sweep] in arnn_gen.sweep.runner); the output folder must be on
a file system that the login node and every compute node see at the same path. Run it on
the login node (in tmux or screen: it holds the scheduler), and again after any
interruption: finished tasks are skipped, interrupted ones resume from their checkpoints.

    python examples/slurm_sweep.py examples/sk_paper.toml --out /shared/runs/sk_paper --jobs 20

For GPUs, add e.g. ``job_extra_directives=["--gres=gpu:1"]`` and set the sweep's device to
"cuda". The same is done from the command line with a scheduler started by hand:
``dask scheduler`` on one node, ``dask worker tcp://HOST:8786 --nthreads 1`` in each job,
then ``arnn-gen sweep SWEEP.toml --scheduler tcp://HOST:8786 --threads CORES``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dask_jobqueue import SLURMCluster

from arnn_gen.sweep import read_sweep, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="the sweep file (TOML)")
    parser.add_argument("--out", required=True, help="output root on a shared file system")
    parser.add_argument("--jobs", type=int, default=10, help="SLURM jobs (Dask workers)")
    parser.add_argument("--cores", type=int, default=4, help="cores per job = torch threads")
    parser.add_argument("--memory", default="16GB", help="memory per job")
    parser.add_argument("--walltime", default="24:00:00")
    parser.add_argument("--queue", default=None, help="SLURM partition")
    options = parser.parse_args()

    cluster = SLURMCluster(
        cores=options.cores,
        processes=1,  # one worker per job ...
        memory=options.memory,
        walltime=options.walltime,
        queue=options.queue,
        # ... that runs one training at a time with all the job's cores
        worker_extra_args=["--nthreads", "1"],
        job_script_prologue=[f"export OMP_NUM_THREADS={options.cores}"],
    )
    cluster.scale(jobs=options.jobs)
    try:
        summary = run_sweep(read_sweep(options.sweep), Path(options.out),
                            scheduler=cluster.scheduler_address, threads=options.cores,
                            echo=print)  # fmt: skip
        print(summary.read_text())
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
