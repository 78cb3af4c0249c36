"""Training step of SK_1RSB with the fused gradient pass compiled in several ways (issue 5).

Written to diagnose the compiled gradient pass on CUDA, which inductor (torch 2.11, H200)
failed to compile with an AssertionError in its coalesce tiling analysis, leaving the pass
to the eager code (benchmarks/RESULTS.md, GPU section). Each variant runs in its own
process (inductor's caches and config are per process), a failure prints its traceback:

``eager``     no torch.compile;
``compiled``  ``model.enable_compile()`` as shipped (coalesce tiling analysis off);
``coalesce``  the same, with the gradient pass compiled with the analysis on;
``cumsum``    ``coalesce`` with a block's fields as a cumulative sum (the form before
              session 5), to tell the analysis from the block fields' matrix product;
``static``    ``coalesce`` with the gradient pass compiled for static shapes (one graph per
              block: fast, but many compilations at large N).

The compiled gradient pass is called without enable_compile's fallback, so that a failed
compilation is an error here. Timed: the bench's training step (samples with log Q,
REINFORCE loss, backward, Adam step), B = 2000, float32, median of 7 calls
(``arnn_gen.bench._time_calls``) after a first step that compiles.

    python benchmarks/compile_variants.py --device cuda -N 200 eager compiled coalesce
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

VARIANTS = ("eager", "compiled", "coalesce", "cumsum", "static")


def _cumulative_fields(self, field, spins, couplings):
    """A block's fields phi_{i,l} [c, L, B] as an exclusive cumulative sum over its sites."""
    if spins.shape[0] == 1:
        return field.unsqueeze(0)
    terms = couplings.unsqueeze(-1) * spins.unsqueeze(1)
    return field + (terms.cumsum(0) - terms)


def run_variant(variant: str, device: str, N: int, batch: int) -> float:  # noqa: N803
    """Median seconds of a training step of ``variant`` (module docstring)."""
    import torch

    from arnn_gen.allocator import keep_freed_memory
    from arnn_gen.bench import _synchronize, _time_calls
    from arnn_gen.codegen.emit import load_module, write_module
    from arnn_gen.learn.train import reinforce_loss, sample_with_log_prob
    from arnn_gen.pipeline import lower

    keep_freed_memory()
    stages = lower("sk", variant="krsb", k=1, N=N, seed=0)
    folder = Path(tempfile.mkdtemp())
    module = load_module(write_module(stages.ir, stages.source, stages.hamiltonian, folder))
    if variant == "cumsum":
        module.Model._block_fields = _cumulative_fields
    torch.manual_seed(0)
    model = module.Model(device=device, dtype=torch.float32, init="random")
    if variant != "eager":
        model.enable_compile()
    if variant in ("coalesce", "cumsum", "static"):
        torch._dynamo.config.recompile_limit = 64  # static: one graph per block
        dynamic = variant != "static"
        model._compiled["grads"] = torch.compile(model._block_grads, dynamic=dynamic)
    if variant != "eager":
        call = model._call

        def strict(name, eager, *args):
            if name == "grads":  # no fallback to the eager code: a failure is an error
                return model._compiled["grads"](*args)
            return call(name, eager, *args)

        model._call = strict
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator(device=device).manual_seed(0)

    def step():  # as the bench's training step (arnn_gen.bench._measure_costs)
        samples, log_q = sample_with_log_prob(model, batch, generator)
        loss, _ = reinforce_loss(model, samples, model.beta, log_q)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    step()
    _synchronize(device)
    print(f"[{variant}] first step (compilation) {time.perf_counter() - start:.1f} s", flush=True)
    return _time_calls(step, 7, device)["median_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", metavar="VARIANT", help=f"of {VARIANTS}")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("-N", type=int, default=200)
    parser.add_argument("-B", "--batch", type=int, default=2000)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    options.variants = options.variants or list(VARIANTS)
    unknown = sorted(set(options.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {VARIANTS}")
    if options.one:  # a single variant, in this process
        (variant,) = options.variants
        try:
            seconds = run_variant(variant, options.device, options.N, options.batch)
        except Exception:  # noqa: BLE001 (what failed is the result)
            print(f"[{variant}] FAILED")
            print("\n".join(f"[{variant}] {line}" for line in traceback.format_exc().splitlines()))
            return 1
        print(f"[{variant}] N={options.N} B={options.batch} {options.device}: "
              f"training step {1e3 * seconds:.2f} ms (median of 7)")  # fmt: skip
        return 0
    status = 0
    for variant in options.variants:  # one process each, one after the other
        command = [sys.executable, __file__, "--one", "--device", options.device,
                   "-N", str(options.N), "-B", str(options.batch), variant]  # fmt: skip
        status |= subprocess.run(command, check=False).returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
