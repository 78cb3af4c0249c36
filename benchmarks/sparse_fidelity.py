"""Variational free energies of the frontier networks and the baselines on sparse systems,
against exact references (docs/RESULTS.md, "Sparse systems").

    python benchmarks/sparse_fidelity.py ea2d --instances 0 1 2 3 4 --out FOLDER
    python benchmarks/sparse_fidelity.py ising2d --out FOLDER
    python benchmarks/sparse_fidelity.py summary FOLDER [FOLDER ...]

``ea2d``: the 16 x 16 Edwards-Anderson lattice with open boundaries and gaussian couplings
(instances = seeds), exact at every beta by frontier elimination (width 15 in row-major
order). ``ising2d``: the 16 x 16 ferromagnet on a torus, exact by Kaufman's formula (its
frontier, about 32 sites wide, is beyond elimination). Each instance trains the frontier
SK_1RSB and SK_RS networks and the 1L and MADE_21 baselines with the same annealing schedule
(``--beta-step``, ``--steps-per-beta``, ``--batch``, ``--lr``; the defaults are a short
schedule that fits a CPU, the paper's is 0.05, 1000, 2000, 1e-3) and records, per beta, the
variational f, F_IS, the ESS and their relative errors (``arnn_gen.learn.train.train``'s
metrics rows). ``summary`` prints the markdown tables of docs/RESULTS.md from the folders.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ARCHITECTURES = ("SK_1RSB", "SK_RS", "1L", "MADE_21")
SIDE = 16


def _system_options(system: str, seed: int) -> dict:
    if system == "ea2d":
        return {"L": SIDE, "W": SIDE, "boundary": "open", "disorder": "gaussian", "seed": seed}
    return {"L": SIDE, "W": SIDE, "boundary": "periodic", "J": 1.0}


def _model(system: str, architecture: str, seed: int, beta: float, dtype):
    import torch

    from arnn_gen.codegen.emit import load_module, write_module
    from arnn_gen.learn.baselines import make_baseline
    from arnn_gen.pipeline import lower

    variant, k = {"SK_1RSB": ("krsb", 1), "SK_RS": ("rs", 0)}.get(architecture, ("krsb", 1))
    stages = lower(system, variant=variant, k=k, beta=beta, **_system_options(system, seed))
    if architecture in ("SK_1RSB", "SK_RS"):
        with tempfile.TemporaryDirectory() as folder:
            path = write_module(stages.ir, stages.source, stages.hamiltonian, folder)
            return load_module(path).Model(beta=beta, dtype=dtype)
    torch.manual_seed(seed)  # the baselines' random start
    dense = stages.hamiltonian.to_dense()
    return make_baseline(architecture, dense, beta=beta, dtype=dtype, init="random")


def run(args) -> None:
    import torch

    from arnn_gen.learn.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    config = TrainConfig(
        beta=args.beta, beta_start=args.beta_start, beta_step=args.beta_step,
        steps_per_beta=args.steps_per_beta, batch=args.batch, lr=args.lr,
        eval_samples=args.eval_samples, dtype=args.dtype, seed=args.seed,
    )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "command.json").write_text(json.dumps({
        "command": " ".join(["python", "benchmarks/sparse_fidelity.py", *sys.argv[1:]]),
        "machine": platform.platform(), "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(), "torch": torch.__version__,
        "config": config.to_dict(),
    }, indent=1) + "\n")  # fmt: skip
    instances = args.instances if args.system == "ea2d" else [0]
    for seed in instances:
        for architecture in args.architectures:
            folder = args.out / f"{args.system}_s{seed}_{architecture}"
            if (folder / "seconds.txt").exists():  # a finished run
                continue
            model = _model(args.system, architecture, seed, config.betas()[0],
                           getattr(torch, args.dtype))  # fmt: skip
            start = time.perf_counter()
            train(model, config, folder, progress=False, label=architecture)
            seconds = time.perf_counter() - start
            (folder / "seconds.txt").write_text(f"{seconds:.1f}\n")
            print(f"{folder.name}: {seconds:.0f} s", flush=True)


def _rows(folder: Path) -> list[dict]:
    return json.loads((folder / "metrics.json").read_text())["rows"]


def summary(folders: list[Path]) -> str:
    """Markdown: per system and architecture, the relative error of f (mean and worst over
    the instances) at a few betas, the final F_IS error and ESS."""
    runs = {}
    for base in folders:
        for folder in sorted(base.glob("*_s*_*")):
            if (folder / "seconds.txt").exists():  # a finished run
                system, seed, architecture = folder.name.split("_", 2)
                runs.setdefault((system, architecture), []).append(_rows(folder))
    lines = []
    for system in ("ea2d", "ising2d"):
        chosen = [(a, runs[(system, a)]) for a in ARCHITECTURES if (system, a) in runs]
        if not chosen:
            continue
        betas = [row["beta"] for row in chosen[0][1][0]]
        shown = [b for b in betas if any(abs(b - t) < 1e-9 for t in (0.5, 1.0, 1.5, 2.0))]
        lines += [f"**{system}**, {len(chosen[0][1])} instance(s): relative error of f "
                  "(mean over instances, worst in brackets); F_IS error and ESS at the last beta",
                  "",
                  "| architecture | " + " | ".join(f"beta = {b:g}" for b in shown)
                  + " | F_IS error | ESS |",
                  "|---|" + "---|" * (len(shown) + 2)]  # fmt: skip
        for architecture, instances in chosen:
            cells = []
            for b in shown:
                errors = [next(r for r in rows if abs(r["beta"] - b) < 1e-9)["relative_error"]
                          for rows in instances]  # fmt: skip
                cells.append(f"{statistics.fmean(errors):.2e} ({max(errors):.1e})")
            last = [rows[-1] for rows in instances]
            is_error = statistics.fmean(r["relative_error_is"] for r in last)
            ess = statistics.fmean(r["ess"] for r in last)
            lines.append(f"| {architecture} | " + " | ".join(cells)
                         + f" | {is_error:.2e} | {ess:.0f} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=("ea2d", "ising2d", "summary"))
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--instances", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES),
                        choices=ARCHITECTURES)  # fmt: skip
    parser.add_argument("--beta", type=float, default=2.0)
    parser.add_argument("--beta-start", type=float, default=0.1)
    parser.add_argument("--beta-step", type=float, default=0.1)
    parser.add_argument("--steps-per-beta", type=int, default=40)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--eval-samples", type=int, default=5000)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.system == "summary":
        print(summary(args.folders))
        return
    if args.out is None:
        parser.error("--out FOLDER is required")
    run(args)


if __name__ == "__main__":
    main()
