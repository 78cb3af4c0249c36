"""Peak memory and time of SK_kRSB log_prob + backward (the memory target).

    python benchmarks/replica_memory.py [--N 200] [--batch 2000] [-k 1] [--threads 2]
                                        [--through-forward]

Emits the module into a temporary folder, then, in a fresh process (so that the peak
resident set size belongs to this measurement alone), samples a batch, runs
log_prob(x).mean().backward() once to warm up and then `--repeat` times, and prints the
peak RSS and the median time as one JSON line, with the allocator thresholds arnn-gen sets
(arnn_gen/allocator.py). log_prob with autograd (maximum-likelihood
training, `fit`) takes the fused gradient pass; `--through-forward` measures instead
autograd through forward, logsigmoid(x * model(x)).sum(-1), the path log_prob took before
(and still takes with learn_couplings). Numbers are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile

from arnn_gen.codegen.emit import write_module
from arnn_gen.pipeline import lower

MEASURE = r"""
import json, resource, statistics, sys, time
import torch
from arnn_gen.allocator import keep_freed_memory
keep_freed_memory()  # as arnn-gen fit does: Note [Freed memory and page faults]
sys.path.insert(0, {folder!r})
import {name} as module
torch.set_num_threads({threads})
model = module.Model(dtype=torch.{dtype})
x = model.sample({batch}, generator=torch.Generator().manual_seed(0))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range({repeat} + 1):
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    ({log_q}).mean().backward()
    times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"peak_rss_mib": peak / 1024, "rss_before_mib": before / 1024,
                  "median_s": statistics.median(times[1:])}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, default=200)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("-k", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--through-forward", action="store_true")
    options = parser.parse_args()
    log_q = (
        "torch.nn.functional.logsigmoid(x * model(x)).sum(-1)"
        if options.through_forward
        else "model.log_prob(x)"
    )
    stages = lower("sk", variant="krsb", N=options.N, k=options.k)
    with tempfile.TemporaryDirectory() as folder:
        path = write_module(stages.ir, stages.source, stages.hamiltonian, folder)
        code = MEASURE.format(
            folder=folder,
            name=path.stem,
            threads=options.threads,
            dtype=options.dtype,
            batch=options.batch,
            repeat=options.repeat,
            log_q=log_q,
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(done.stderr)
    record = json.loads(done.stdout)
    import torch

    record.update(
        N=options.N,
        batch=options.batch,
        k=options.k,
        dtype=options.dtype,
        log_q=log_q,
        threads=options.threads,
        torch=torch.__version__,
        machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        cpus=len(__import__("os").sched_getaffinity(0)),
    )
    print(json.dumps(record, sort_keys=True))


if __name__ == "__main__":
    main()
