"""The Triton kernels of the replica forms (``emit --backend triton``) against the torch code,
and the card's special-function throughput (docs/performance.md, "The Triton kernels").

    python benchmarks/triton_step.py [--sizes 200 1000 4000] [-k 1] [--batch 2000]
        [--dtypes float32 float64] [--repeats 5] [--device cuda] [--out FOLDER]

For each N and dtype it emits SK_kRSB of the SK instance of seed 0 twice, with the torch
and the Triton backend, and times with benchmarks/harness.py's ``_measure_costs`` (median of
``repeats`` after a warm-up): ``sample``, ``log_prob``, ``train_step`` (one step as ``arnn-gen
train`` takes it) and, on CUDA, sampling without the CUDA graph. It first measures the
card's throughput of exp and log (a kernel that applies log(1 + exp(-|x|)) 64 times to each
number it loads, so that memory does not limit it), then reports what fraction of it each
timing reaches: a training step evaluates 2 (k + 1) N (N - 1) / 2 B layers in the sampling
pass (an exp and a log each) and again in the fused gradient pass (an exp and a log for the
layer, an exp for its slope), 10 (k + 1) N (N - 1) / 2 B special functions in all; sampling
alone 4 (k + 1) N (N - 1) / 2 B. With N = 200 among the sizes it also projects the paper's
protocol, 39 x 1000 training steps.

One JSON object, printed, and written as ``FOLDER/triton_step.json`` with ``--out``. On the
CPU it runs the kernels under Triton's interpreter (TRITON_INTERPRET=1, set here before
triton is imported): a check that the script works, at small sizes, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: log(1 + exp(-|x|)) applied this many times to each number of the throughput kernel.
ROUNDS = 64


def special_function_throughput(device: str, dtype: str, count: int, repeats: int) -> dict:
    """exp + log per second on ``device``: the best of ``repeats`` runs of a kernel over
    ``count`` numbers, 2 ROUNDS special functions each."""
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def rounds(x_ptr, y_ptr, n, ROUNDS: tl.constexpr, BLOCK: tl.constexpr):  # noqa: N803
        index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        inside = index < n
        x = tl.load(x_ptr + index, mask=inside, other=0.0)
        for _ in range(ROUNDS):
            x = tl.log(1.0 + tl.exp(-tl.abs(x)))
        tl.store(y_ptr + index, x, mask=inside)

    x = torch.randn(count, device=device, dtype=getattr(torch, dtype))
    y = torch.empty_like(x)
    block = 1024
    grid = (triton.cdiv(count, block),)
    best = float("inf")
    for repeat in range(repeats + 1):
        _synchronize(device)
        start = time.perf_counter()
        rounds[grid](x, y, count, ROUNDS=ROUNDS, BLOCK=block)
        _synchronize(device)
        if repeat:  # the first run compiles
            best = min(best, time.perf_counter() - start)
    per_second = 2 * ROUNDS * count / best
    return {"dtype": dtype, "numbers": count, "seconds": best, "per_second": per_second}


def _synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def special_functions(N: int, k: int, batch: int) -> dict:  # noqa: N803
    """Special functions (exp, log) of one sampling pass and of one training step."""
    layers = 2 * (k + 1) * N * (N - 1) // 2 * batch  # both signs, every layer and pair
    return {"sample": 2 * layers, "train_step": 5 * layers}


def measure(sizes, k: int, batch: int, dtypes, repeats: int, device: str,  # noqa: PLR0913
            throughput_numbers: int) -> dict:  # fmt: skip
    import torch

    from arnn_gen.codegen.emit import load_module, write_module
    from arnn_gen.pipeline import lower

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from harness import _measure_costs

    report = {"k": k, "batch": batch, "device": device, "repeats": repeats, "cases": []}
    report["throughput"] = {
        dtype: special_function_throughput(device, dtype, throughput_numbers, repeats)
        for dtype in dtypes
    }
    with tempfile.TemporaryDirectory() as folder:
        for N in sizes:  # noqa: N806
            counts = special_functions(N, k, batch)
            for backend in ("torch", "triton"):
                stages = lower("sk", variant="krsb", k=k, N=N, backend=backend,
                               name=f"sk_{backend}_n{N}")  # fmt: skip
                path = write_module(stages.ir, stages.source, stages.hamiltonian, folder)
                module = load_module(path)
                for dtype in dtypes:
                    model = module.Model(device=device, dtype=getattr(torch, dtype))
                    costs = _measure_costs(model, batch, repeats, device, None)
                    timings = {key: value for key, value in costs.items() if key != "details"}
                    case = {"N": N, "backend": backend, "dtype": dtype, **timings}
                    rate = report["throughput"][dtype]["per_second"]
                    for name in ("sample", "train_step"):
                        seconds = case.get(f"{name}_s")
                        case[f"{name}_fraction_of_throughput"] = (
                            counts[name] / seconds / rate if seconds else None
                        )
                    report["cases"].append(case)
                    print(json.dumps(case), file=sys.stderr)
                    del model
                    if device == "cuda":
                        torch.cuda.empty_cache()
    steps = [c for c in report["cases"] if c["N"] == 200 and c.get("train_step_s")]
    report["protocol_39x1000_s"] = {
        f"{c['backend']}_{c['dtype']}": 39 * 1000 * c["train_step_s"] for c in steps
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 4000])
    parser.add_argument("-k", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"],
                        choices=("float32", "float64"))  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--throughput-numbers", type=int, default=1 << 24)
    parser.add_argument("--out", default=None)
    options = parser.parse_args()
    if options.device == "cpu":  # the interpreter: chosen before triton is imported
        os.environ["TRITON_INTERPRET"] = "1"
    sys.path.insert(0, str(ROOT))
    import torch

    report = measure(options.sizes, options.k, options.batch, options.dtypes, options.repeats,
                     options.device, options.throughput_numbers)  # fmt: skip
    report.update(torch=torch.__version__, machine=platform.machine())
    import triton

    report["triton"] = triton.__version__
    if options.device == "cuda":
        report["gpu"] = torch.cuda.get_device_name()
    text = json.dumps(report, indent=1)
    print(text)
    if options.out:
        out = Path(options.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "triton_step.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
