"""Time single operations of emitted modules on one thread: log_prob, sample, and the
replica forms' choice of the sigmoid forms (``_through_sigmoid``, run before every pass).

Finer than ``arnn-gen bench --quick`` (whose medians of three repeats vary by tens of per
cent between runs on a 2-core machine): each figure is the best of ``--repeats`` timings of
``--loops`` calls, so two commits can be compared by running this script under each.

    python benchmarks/module_ops.py [--N 20] [--batch 256] [--loops 200] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from arnn_gen.codegen.emit import load_module, write_module
from arnn_gen.pipeline import lower

#: (label, system, variant, k) of the modules timed.
MODULES = (
    ("SK_RS", "sk", "rs", 0),
    ("SK_1RSB", "sk", "krsb", 1),
    ("CW_N", "cw", "exact", 0),
)


def best_time(function, loops: int, repeats: int) -> float:
    """Seconds per call: the best of ``repeats`` runs of ``loops`` calls, after a warm-up."""
    for _ in range(max(1, loops // 4)):
        function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            function()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--loops", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, system, variant, k in MODULES:
            stages = lower(system, variant=variant, k=k, N=args.N, beta=1.0, name=f"m{len(rows)}")
            path = write_module(stages.ir, stages.source, stages.hamiltonian, folder)
            model = load_module(path).Model()
            x = model.sample(args.batch)
            operations = {
                "log_prob": lambda model=model, x=x: model.log_prob(x, validate=False),
                "sample": lambda model=model: model.sample(args.batch),
            }
            if hasattr(model, "_through_sigmoid"):
                operations["through_sigmoid"] = model._through_sigmoid
            for name, function in operations.items():
                seconds = best_time(function, args.loops, args.repeats)
                rows.append({"architecture": label, "operation": name, "us": seconds * 1e6})
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
