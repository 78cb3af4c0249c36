"""A longer SK comparison than `arnn-gen reproduce sk --quick`, still on a laptop CPU.

    python examples/compare_sk.py [OUT_DIR]

One N = 16 SK instance (seed 0), beta 0.1 -> 2.0 in steps of 0.1, 150 Adam steps per beta
(lr 3e-3, batch 1000), the six architectures of the paper's SK comparison; exact references
by enumeration. Writes run folders, plots and summary.md into OUT_DIR (default
runs/compare_sk). docs/RESULTS.md quotes its output.
"""

from __future__ import annotations

import sys

from arnn_gen.learn.experiments import Experiment, run_experiment
from arnn_gen.learn.train import TrainConfig

experiment = Experiment(
    system="sk",
    sizes=(16,),
    seeds=(0,),
    architectures=("SK_RS", "SK_1RSB", "SK_2RSB", "1L", "MADE_21", "MADE_22"),
    config=TrainConfig(
        beta=2.0,
        beta_start=0.1,
        beta_step=0.1,
        steps_per_beta=150,
        batch=1000,
        lr=3e-3,
        eval_samples=20000,
        dtype="float64",
    ),
    mode="medium (examples/compare_sk.py)",
)

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/compare_sk"
    print(open(run_experiment(experiment, out, progress=False)).read())
