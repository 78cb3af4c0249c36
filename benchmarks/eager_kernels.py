"""Throughput of the eager torch operations the replica layers can be written with, on
cache-sized blocks shaped like the layers' ([sign, sites, pairs, B], the parameters
[sign, sites, pairs, 1] broadcast over the batch B): the measurements behind Note [Eager
layers on the CPU] of templates/replica.py.j2.

    python benchmarks/eager_kernels.py [--threads 2]

Prints numbers evaluated per second (best of 5 rounds) for logsigmoid, softplus, sigmoid,
log, their in-place forms, the layer input b + a z as torch.addcmul and as a * z with an
in-place add_ of b, and the whole layer y = logsigmoid(b + a z) both ways, in float32 and
float64.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from arnn_gen.allocator import keep_freed_memory

SHAPE = (2, 1, 128, 2000)  # one site's block of 128 pairs, B = 2000 (PAIRS_PER_BLOCK)
CALLS = 100


def _rate(function, elements: int) -> float:
    """Elements per second of ``function()``: best of 5 rounds of CALLS calls."""
    for _ in range(10):
        function()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(CALLS):
            function()
        best = min(best, time.perf_counter() - start)
    return CALLS * elements / best


def _cases(z, a, b):
    """The operations timed, on the layer's input z and its parameters a, b."""
    u = torch.addcmul(b, a, z)
    s, scratch = torch.sigmoid(u), u.clone()
    return {
        "logsigmoid(u)": lambda: torch.nn.functional.logsigmoid(u),
        "-softplus(-u) (softplus only)": lambda: torch.nn.functional.softplus(u),
        "sigmoid(u)": lambda: torch.sigmoid(u),
        "log(s), s = sigmoid(u)": lambda: torch.log(s),
        "u.sigmoid_() (in place, after a copy_)": lambda: scratch.copy_(u).sigmoid_(),
        "copy_ alone (for the line above)": lambda: scratch.copy_(u),
        "addcmul(b, a, z)": lambda: torch.addcmul(b, a, z),
        "(a * z).add_(b)": lambda: (a * z).add_(b),
        "layer: logsigmoid(addcmul(b, a, z))": lambda: torch.nn.functional.logsigmoid(
            torch.addcmul(b, a, z)
        ),
        "layer: (a * z).add_(b).sigmoid_().log_()": lambda: (a * z).add_(b).sigmoid_().log_(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    threads = parser.parse_args().threads
    keep_freed_memory()
    torch.set_num_threads(threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{threads} threads, block {list(SHAPE)}")  # fmt: skip
    for dtype in (torch.float32, torch.float64):
        generator = torch.Generator().manual_seed(0)
        z = torch.randn(SHAPE, generator=generator, dtype=dtype)
        a = torch.randn(*SHAPE[:-1], 1, generator=generator, dtype=dtype)
        b = torch.randn(*SHAPE[:-1], 1, generator=generator, dtype=dtype)
        cases = _cases(z, a, b)
        print(f"\n{dtype}")
        for name, function in cases.items():
            print(f"  {name:42s} {_rate(function, z.numel()):.3g} per s")


if __name__ == "__main__":
    main()
