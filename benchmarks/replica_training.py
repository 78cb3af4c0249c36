"""Training the replica forms: ablations, floors and the paper's architecture comparison.

    python benchmarks/replica_training.py run --arch SK_1RSB --instance paper:20:0 >> runs.jsonl
    python benchmarks/replica_training.py table runs.jsonl [--by tag|arch]

``run`` trains one architecture on one instance and prints one JSON line: the options, the
rows at beta = 0.5, 1.0, 1.5 and the final estimate (relative error of f and of the
importance-sampled F_IS, each with its standard error, on ``--eval`` fresh samples), the
wall time, and with ``--floor-steps S`` the floor: S more steps at the final beta with the
learning rate falling along a cosine from lr to lr/100, then evaluated the same way.
``table`` prints markdown tables of such lines: per group (``--by``), N and beta, the mean
over the runs of each relative error with the spread (standard deviation) over them, or for
a single run the error with its standard error; where
no exact value is known (N > 20) the error is f - f_best over the lowest f any run reached
on that instance, and F_IS's column is (F_IS - f_best) / |f_best|.

Instances:
- ``paper:N:S`` is the instance of the paper's code: numpy's legacy generator seeded S, then
  J[i, j] ~ Normal(0, 1/sqrt(N)) drawn for i = 0..N-1, j = 0..i-1 in that order, J made
  symmetric, h = 0 (written to a temporary .npz and emitted as ``--system general``);
- ``sk:N:S`` is arnn-gen's ``--system sk -N N --seed S`` (the instances of ``reproduce sk``).

Defaults are the budget of the comparison with the paper's code: beta 0.1, 0.15, ..., 1.5,
300 steps per beta, batch 2000, float32, and the trainer's own defaults for the rest (Adam
at lr 1e-3, no warm-up, follow_beta on, a fixed learning rate); ``--init``, ``--offset`` (the
bias of the outer k-RSB layers at the paramagnetic start), ``--warmup``, ``--lr``,
``--lr-min``, ``--no-follow-beta``, ``--optimizer``, ``--damping``, ``--dtype`` and ``--seed``
change one thing at a time for ablations.
Each process uses ``--threads`` torch threads (1 by default: run two at once on two cores).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from arnn_gen.codegen.emit import load_module, write_module
from arnn_gen.learn.baselines import make_baseline
from arnn_gen.learn.experiments import BASELINE_NAMES, EMITTED
from arnn_gen.learn.train import (
    TrainConfig,
    train,
)
from arnn_gen.pipeline import build_system, lower
from arnn_gen.systems import from_couplings

#: The betas whose rows a run reports (besides the final estimate).
REPORTED_BETAS = (0.5, 1.0, 1.5)
#: Figures kept of each estimate.
FIGURES = (
    "free_energy",
    "free_energy_sem",
    "free_energy_is",
    "free_energy_is_sem",
    "ess",
    "relative_error",
    "relative_error_sem",
    "relative_error_is",
    "relative_error_is_sem",
)


def paper_couplings(N: int, seed: int) -> np.ndarray:  # noqa: N803
    """The SK couplings of the paper's code for (N, seed); see the module docstring."""
    rng = np.random.RandomState(seed)
    J = np.zeros((N, N))
    for i in range(N):
        for j in range(i):
            J[i, j] = rng.normal(0.0, 1.0 / math.sqrt(N))
    return J + J.T


def parse_instance(text: str) -> tuple[str, int, int]:
    kind, N, seed = text.split(":")
    if kind not in ("paper", "sk"):
        raise SystemExit(f"instance kind must be paper or sk, got {kind!r}")
    return kind, int(N), int(seed)


def make_model(arch: str, instance: str, beta: float, dtype: str, folder: Path, init: str,
               offset: float | None):  # fmt: skip
    """A fresh model of ``arch`` on ``instance`` at the first beta of the schedule."""
    kind, N, seed = parse_instance(instance)
    if kind == "paper":
        couplings = paper_couplings(N, seed)
        path = folder / f"paper_n{N}_s{seed}.npz"
        np.savez(path, J=couplings, h=np.zeros(N))
        system, options = "general", {"couplings": str(path)}
        hamiltonian = from_couplings(couplings, np.zeros(N))
    else:
        system, options = "sk", {"N": N, "seed": seed}
        hamiltonian = build_system("sk", N, seed=seed, default_n=N)
    torch_dtype = getattr(torch, dtype)
    if arch in BASELINE_NAMES:
        return make_baseline(arch, hamiltonian, beta=beta, dtype=torch_dtype, init="random")
    variant, k = EMITTED[arch]
    stages = lower(system, variant=variant, k=k or 0, beta=beta, name="model", **options)
    module = load_module(write_module(stages.ir, stages.source, stages.hamiltonian, folder))
    model = module.Model(beta=beta, dtype=torch_dtype, init=init)
    if init == "paramagnetic" and offset is not None:
        with torch.no_grad():  # the outer layers' bias: -offset on the pairs l > i
            for r in range(1, model.K + 1):
                getattr(model, f"b{r}").copy_(-offset * model.later)
    return model


def figures(row: dict) -> dict:
    return {key: row.get(key) for key in FIGURES}


def floor(model, config: TrainConfig, steps: int) -> dict:
    """The floor: ``steps`` more steps at the final beta, the learning rate falling along a
    cosine from config.lr to config.lr / 100 (the trainer's lr_min, with a fresh optimizer),
    then the trainer's final estimate on config.eval_samples samples."""
    beta = config.betas()[-1]
    fixed = replace(config, beta_start=beta, steps_per_beta=steps, warmup_steps=0,
                    lr_min=config.lr / 100, seed=config.seed + 1)  # fmt: skip
    return figures(train(model, fixed, None, progress=False).final)


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    options = {"beta": args.beta, "beta_start": 0.1, "beta_step": 0.05,
               "steps_per_beta": args.steps, "batch": args.batch, "lr": args.lr,
               "optimizer": args.optimizer,
               "seed": args.seed, "eval_samples": args.eval, "dtype": args.dtype,
               "follow_beta": args.follow_beta}  # fmt: skip
    if args.damping is not None:
        options["damping"] = args.damping
    if args.warmup is not None:
        options["warmup_steps"] = args.warmup
    if args.lr_min is not None:
        options["lr_min"] = args.lr_min if args.lr_min > 0 else None
    config = TrainConfig(**options)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        model = make_model(args.arch, args.instance, config.betas()[0], args.dtype,
                           Path(folder), args.init, args.offset)  # fmt: skip
        config = config.for_model(model)  # the learning rate it runs, when --lr is left out
        clock = time.perf_counter()
        result = train(model, config, None, progress=False)
        seconds = time.perf_counter() - clock
        line = {
            "tag": args.tag or args.arch,
            "arch": args.arch,
            "instance": args.instance,
            "N": parse_instance(args.instance)[1],
            "options": {
                **vars(args),
                "config": {f.name: getattr(config, f.name) for f in fields(config)},
            },  # fmt: skip
            "seconds": seconds,
            "rows": {
                f"{row['beta']:.2f}": figures(row)
                for row in result.rows
                if any(math.isclose(row["beta"], b) for b in REPORTED_BETAS)
            },  # fmt: skip
            "final": figures(result.final),
        }
        if args.floor_steps:
            line["floor"] = floor(model, config, args.floor_steps)
            line["floor_steps"] = args.floor_steps
    return line


def _mean_spread(values: list[tuple[float, float]]) -> str:
    """``mean ± spread`` of (error, standard error) pairs over several runs (the standard
    deviation over them); ``error ± standard error`` of a single run."""
    if not values:
        return "-"
    errors = [error for error, _ in values]
    if len(values) == 1:
        return f"{errors[0]:.2e} ± {values[0][1]:.0e}"
    return f"{statistics.fmean(errors):.2e} ± {statistics.stdev(errors):.1e}"


def table(lines: list[dict], by: str) -> str:
    """Markdown: per group and N, mean ± spread over runs of the relative errors."""
    best: dict[tuple[str, str], float] = {}  # (instance, stage) -> lowest f of any run
    for line in lines:
        for stage, row in _stages(line):
            key = (line["instance"], stage)
            best[key] = min(best.get(key, math.inf), row["free_energy"])
    groups: dict[tuple[str, int], list[dict]] = {}
    for line in lines:
        groups.setdefault((line[by], line["N"]), []).append(line)
    stages = sorted({stage for line in lines for stage, _ in _stages(line)}, key=_stage_order)
    out = [f"| {by} | N | runs | " + " | ".join(stages) + " | IS at the end |",
           "|---|---|---|" + "---|" * (len(stages) + 1)]  # fmt: skip
    for (group, N), members in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        cells = []
        for stage in stages:
            errors = [_error(line, stage, best) for line in members]
            cells.append(_mean_spread([e for e in errors if e is not None]))
        cells.append(_mean_spread([_is_error(line, best) for line in members]))
        out.append(f"| {group} | {N} | {len(members)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _stages(line: dict):
    yield from ((f"beta {beta}", row) for beta, row in line["rows"].items())
    yield "final", line["final"]
    if "floor" in line:
        yield "floor", line["floor"]


def _last(line: dict) -> dict:
    """The last estimate of a run: its floor if it has one, else its final estimate."""
    return line.get("floor", line["final"])


def _stage_order(stage: str):
    return (2 * (stage == "floor") + (stage == "final"), stage)


def _error(line: dict, stage: str, best: dict) -> tuple[float, float] | None:
    """(relative error, its standard error) of a run at a stage: against the exact f, or
    f - f_best over |f_best| where no exact value is known."""
    row = dict(_stages(line)).get(stage)
    if row is None:
        return None
    if row.get("relative_error") is not None:
        return row["relative_error"], row["relative_error_sem"]
    reference = best[(line["instance"], stage)]
    return (row["free_energy"] - reference) / abs(reference), row["free_energy_sem"] / abs(
        reference
    )


def _is_error(line: dict, best: dict) -> tuple[float, float]:
    """(error of F_IS, its standard error) at a run's last estimate: relative to the exact
    f, or, where none is known, (F_IS - f_best) / |f_best| (negative where F_IS lies below
    the lowest variational f, as it should: F_IS estimates F, f bounds it from above)."""
    stage = "floor" if "floor" in line else "final"
    row = _last(line)
    if row.get("relative_error_is") is not None:
        return row["relative_error_is"], row["relative_error_is_sem"]
    reference = best[(line["instance"], stage)]
    error = (row["free_energy_is"] - reference) / abs(reference)
    return error, row["free_energy_is_sem"] / abs(reference)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="train one architecture, print one JSON line")
    one.add_argument("--arch", default="SK_1RSB", choices=(*EMITTED, *BASELINE_NAMES))
    one.add_argument("--instance", default="paper:20:0")
    one.add_argument("--beta", type=float, default=1.5)
    one.add_argument("--steps", type=int, default=300)
    one.add_argument("--warmup", type=int, default=None)
    one.add_argument("--batch", type=int, default=2000)
    one.add_argument("--lr", type=float, default=None, help="default: the optimizer's")
    one.add_argument("--optimizer", choices=("adam", "natural"), default="adam")
    one.add_argument("--damping", type=float, default=None)
    one.add_argument("--lr-min", type=float, default=None, help="0: a fixed learning rate")
    one.add_argument("--follow-beta", action=argparse.BooleanOptionalAction, default=True)
    one.add_argument("--init", choices=("paramagnetic", "random"), default="paramagnetic")
    one.add_argument("--offset", type=float, default=None)
    one.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    one.add_argument("--seed", type=int, default=0)
    one.add_argument("--eval", type=int, default=20000)
    one.add_argument("--floor-steps", type=int, default=0)
    one.add_argument("--threads", type=int, default=1)
    one.add_argument("--tag", default="")
    summary = commands.add_parser("table", help="markdown tables of run lines")
    summary.add_argument("files", nargs="+")
    summary.add_argument("--by", choices=("tag", "arch"), default="tag")
    args = parser.parse_args(argv)
    if args.command == "run":
        print(json.dumps(run(args)), flush=True)
    else:
        lines = [json.loads(text) for name in args.files for text in open(name) if text.strip()]
        print(table(lines, args.by))


if __name__ == "__main__":
    sys.exit(main())
