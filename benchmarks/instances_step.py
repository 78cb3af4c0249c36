"""K SK instances trained as one module against K single-instance modules (docs/performance.md,
"Many instances in one module").

    python benchmarks/instances_step.py [-N 50] [--instances 8] [--batch 2000] [-k 1]
        [--repeats 5] [--threads 1] [--device cpu|cuda] [--dtype float32]
        [--backend torch|triton] [--out FOLDER]

On a GPU, ``-N 200 --instances 10 --device cuda`` measures the design's goal: ten instances
in under three times the step of one.

It emits SK_kRSB for the SK seeds 0..K-1 as one module (``emit --instances 0-{K-1}``) and
as K single modules, and times one training step as ``arnn-gen train`` takes it (a batch
drawn with its log Q, the energies, the REINFORCE loss, its backward pass, an Adam step):
of the batched module, and of each single module in turn (the K sequential runs), the
repeats interleaved so that a busy moment of the machine slows both sides. The best of
``repeats`` steps after one warm-up step; one JSON object, also appended as a line to
``FOLDER/instances_step.jsonl`` with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _stepper(model, batch: int, device: str):
    """A function that takes one training step of ``model`` and returns its seconds."""
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator(device=device).manual_seed(0)

    def step() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        x, log_q = model.sample_with_log_prob(batch, generator=generator)
        with torch.no_grad():
            L = log_q + model.beta * model.energy(x, validate=False)  # noqa: N806
        loss = ((L - L.mean(-1, keepdim=True)) * log_q).mean(-1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return step


def measure(N: int, instances: int, batch: int, k: int, repeats: int, threads: int,  # noqa: N803
            device: str, dtype: str, backend: str = "torch") -> dict:  # fmt: skip
    import torch

    from arnn_gen.codegen.emit import load_module, write_module
    from arnn_gen.pipeline import lower

    torch.set_num_threads(threads)
    kind = getattr(torch, dtype)
    with tempfile.TemporaryDirectory() as folder:
        stages = lower("sk", variant="krsb", k=k, N=N, instances=f"0-{instances - 1}",
                       backend=backend)  # fmt: skip
        path = write_module(stages.ir, stages.source, stages.hamiltonian, folder)
        batched = load_module(path).Model(device=device, dtype=kind)
        singles = []
        for seed in range(instances):
            stages = lower("sk", variant="krsb", k=k, N=N, seed=seed, name=f"alone{seed}",
                           backend=backend)  # fmt: skip
            path = write_module(stages.ir, stages.source, stages.hamiltonian, folder)
            singles.append(load_module(path).Model(device=device, dtype=kind))
        steppers = [_stepper(model, batch, device) for model in (batched, *singles)]
        best = [float("inf")] * len(steppers)
        for repeat in range(repeats + 1):  # interleaved: a slow moment slows both sides
            for index, step in enumerate(steppers):
                seconds = step()
                if repeat:  # the first step warms up (allocator, caches)
                    best[index] = min(best[index], seconds)
        together, alone = best[0], best[1:]
    one = min(alone)
    return {
        "N": N,
        "instances": instances,
        "batch": batch,
        "k": k,
        "dtype": dtype,
        "device": device,
        "backend": backend,
        "threads": threads,
        "batched_step_s": together,
        "single_step_s": one,
        "sequential_steps_s": sum(alone),
        "batched_over_single": together / one,
        "batched_over_sequential": together / sum(alone),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-N", type=int, default=50)
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("-k", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--backend", default="torch", choices=("torch", "triton"))
    parser.add_argument("--out", default=None)
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    report = measure(options.N, options.instances, options.batch, options.k, options.repeats,
                     options.threads, options.device, options.dtype, options.backend)  # fmt: skip
    report.update(torch=torch.__version__, machine=platform.machine(),
                  processor=platform.processor() or platform.machine())  # fmt: skip
    if options.device == "cuda":
        report["gpu"] = torch.cuda.get_device_name()
    text = json.dumps(report, indent=1)
    print(text)
    if options.out:
        out = Path(options.out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "instances_step.jsonl", "a") as lines:
            lines.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
