"""The frontier replica networks' training step against the dense one (docs/performance.md,
"Sparse systems: the frontier networks").

    python benchmarks/frontier_step.py [--sides 16 32 48 64] [--dense-sides 16 32]
        [--batch 500] [--repeats 3] [--threads 1] [--device cpu|cuda]
        [--backend torch|triton] [--out FOLDER]

On a GPU, ``--device cuda --sides 64 --dense-sides 32`` measures the design's goal of a
frontier step at N = 4096 under 50 ms; ``--backend triton`` emits both networks with their
Triton kernels (``emit --backend triton``).

For each periodic L x L Edwards-Anderson lattice (gaussian couplings, seed 0, row-major
order) it emits SK_1RSB twice, over the frontier (``ea2d``) and dense (the same couplings as
the dense replica family), and times one training step as ``arnn-gen train`` takes it: a batch
drawn with its log Q (sample_with_log_prob), the energies, the REINFORCE loss, its backward
pass and an Adam step. Each measurement runs in its own process, so that its peak resident
memory (ru_maxrss) is its own. The best of ``repeats`` steps after one warm-up step is
reported, with the work ratio the frontier promises: dense pairs N (N - 1) / 2 over frontier
pairs sum_i |F^+_i|.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(side: int, layout: str, batch: int, repeats: int, threads: int, device: str,
            backend: str = "torch") -> dict:  # fmt: skip
    """One measurement, in this process: see the module docstring."""
    import torch

    from arnn_gen.codegen.emit import load_module, render_module, write_module
    from arnn_gen.codegen.families import build_ir
    from arnn_gen.pipeline import lower
    from arnn_gen.symbolic.simplify import reduce_conditional
    from arnn_gen.systems import ea2d, frontier, site_order

    torch.set_num_threads(threads)
    lattice = ea2d(side, side, boundary="periodic", disorder="gaussian", seed=0)
    width = frontier(lattice, site_order(lattice, "natural"))
    with tempfile.TemporaryDirectory() as folder:
        if layout == "frontier":
            stages = lower("ea2d", L=side, W=side, seed=0, backend=backend)
            ir, source, system = stages.ir, stages.source, stages.hamiltonian
        else:  # the same couplings, dense, through the dense replica family
            system = lattice.to_dense()
            reduction = reduce_conditional("general", "krsb", k=1)
            ir = build_ir(system, reduction, beta=1.0, command="benchmarks/frontier_step.py",
                          backend=backend)  # fmt: skip
            source = render_module(ir)
        module = load_module(write_module(ir, source, system, folder))
        model = module.Model(device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        x, log_q = model.sample_with_log_prob(batch)
        with torch.no_grad():
            loss_terms = log_q.detach() + model.energy(x, validate=False)
        loss = ((loss_terms - loss_terms.mean()) * log_q).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def synchronize():
        if device == "cuda":
            torch.cuda.synchronize()

    step()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    N = side * side  # noqa: N806
    pairs = int(model.frontier_size.sum()) if layout == "frontier" else None
    return {
        "side": side,
        "N": N,
        "layout": layout,
        "family": ir.family,
        "backend": backend,
        "batch": batch,
        "threads": threads,
        "device": device,
        "step_s": min(times),
        "steps_s": times,
        "frontier_width": width.width,
        "frontier_pairs": pairs,
        "dense_pairs": N * (N - 1) // 2,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "max_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[16, 32, 48, 64])
    parser.add_argument("--dense-sides", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--backend", choices=("torch", "triton"), default="torch")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--one", nargs=2, metavar=("SIDE", "LAYOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        record = measure(
            int(args.one[0]),
            args.one[1],
            args.batch,
            args.repeats,
            args.threads,
            args.device,
            args.backend,
        )
        print(json.dumps(record))
        return
    records = []
    jobs = [(side, "frontier") for side in args.sides]
    jobs += [(side, "dense") for side in args.dense_sides]
    for side, layout in jobs:
        command = [sys.executable, __file__, "--one", str(side), layout, "--batch",
                   str(args.batch), "--repeats", str(args.repeats), "--threads",
                   str(args.threads), "--device", args.device, "--backend",
                   args.backend]  # fmt: skip
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        records.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(records[-1]), flush=True)
    by_key = {(r["side"], r["layout"]): r for r in records}
    lines = [
        "| L | N | width | frontier step (s) | dense step (s) | speed-up | work ratio | "
        "frontier RSS (MiB) | dense RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for side in args.sides:
        sparse = by_key[(side, "frontier")]
        dense = by_key.get((side, "dense"))
        ratio = sparse["dense_pairs"] / sparse["frontier_pairs"]
        lines.append(
            f"| {side} | {sparse['N']} | {sparse['frontier_width']} | {sparse['step_s']:.3f} | "
            + (f"{dense['step_s']:.3f} | {dense['step_s'] / sparse['step_s']:.1f} | "
               if dense else "- | - | ")
            + f"{ratio:.1f} | {sparse['max_rss_mib']:.0f} | "
            + (f"{dense['max_rss_mib']:.0f} |" if dense else "- |")
        )  # fmt: skip
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {
            "command": " ".join(["python", "benchmarks/frontier_step.py", *sys.argv[1:]]),
            "machine": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
        (args.out / "frontier_step.json").write_text(
            json.dumps({"meta": meta, "records": records}, indent=1) + "\n"
        )
        (args.out / "frontier_step.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
