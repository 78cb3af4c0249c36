"""Performance benchmarks: the emitted modules against per-site ports and a floor.

Input: architectures (:data:`ARCHITECTURES`), sizes N, a batch B, a device. Output: one
dict, also written as ``<out_dir>/bench.json``, holding every number (see
:func:`run_benchmarks`), and its Markdown report ``bench.md`` (benchmarks/report.py).
Run it from a checkout of the repository (benchmarks/ is not part of the installed package):

    python benchmarks/harness.py --quick --out bench_out
    python benchmarks/harness.py --report bench_out/bench.json   # re-evaluate the targets

``arnn-gen bench`` loads this file from the checkout and calls :func:`run_benchmarks`.
The arnn_gen measured is the checkout's (run as a script, the repository root goes first on
``sys.path``); every measurement process imports the same arnn_gen as the run.

What is measured, for each architecture and N (float32, beta = 1, the SK instance of seed
0 for SK_* and MADE_21, the Curie-Weiss system J = 1, h = 0 for CW_*):

- ``sample_s``: ``model.sample(B)`` (on CUDA also ``sample_without_graph_s``, the replica
  modules' sampling step by step instead of replayed from their CUDA graph);
  ``log_prob_s``: ``model.log_prob(x)`` under no_grad;
  ``train_step_s``: one variational step as ``arnn-gen train`` takes it: samples with log Q
  (:func:`arnn_gen.learn.train.sample_with_log_prob`: one pass and a fused backward for the
  replica modules, sample + log_prob for the others and for the per-site baseline) +
  REINFORCE loss with the energy (:func:`arnn_gen.learn.train.reinforce_loss`) + backward + Adam
  step (absent for CW_N, which has no trainable parameter); ``sample_plus_log_prob_s``,
  their sum. Each is the median of
  ``repeats`` timings after one warm-up call (device synchronised on CUDA).
- The same for the per-site baseline of ``benchmarks/persite.py`` (one module per
  conditional in a Python loop, each recomputing its first layer from x_<i), loaded by
  path from this file's folder; when it is absent the baseline is skipped with a note.
  Ratios ``persite_over_ours`` (the speedup) per cost.
- Every (architecture, N) runs in a fresh subprocess with glibc's malloc thresholds set as
  ``arnn-gen`` sets them (:mod:`arnn_gen.allocator`), for ours and the baseline alike.
- Peak memory of ours: every (architecture, N) runs in a fresh subprocess; on CPU the peak
  resident set size of that process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) read
  right after ours' measurements, so it covers Python, torch, the model and its batches
  but not the baseline (``before_model_mib`` is the same reading before the model was
  built); on CUDA ``torch.cuda.max_memory_allocated`` over ours' measurements.
- The machine (platform, processor, CPU count, torch, threads, device) and its load
  average before and after the run: other processes on a 2-core machine distort timings
  taken with 2 threads.
- The elementwise floor: the time of as many logsigmoid evaluations as one ``log_prob``
  needs, 2 (k + 1) B N (N - 1) / 2 for SK_kRSB (k = 0: SK_RS) plus the B N of log Q's own
  logsigmoid (only those B N for CW_N, CW_inf and MADE_21, whose floor is therefore not an
  efficiency figure). The rate is measured once per run as repeated
  ``torch.nn.functional.logsigmoid`` on flat float32 chunks, the best chunk size of
  :data:`CPU_CHUNKS` (1e4..1e6 elements: cache-sized; one huge tensor is memory-bound and
  would flatter us) or of :data:`CUDA_CHUNKS` on a GPU, where small chunks only measure the
  launch latency. ``ours_over_floor`` for log_prob and sample (both evaluate that many).
- Growth exponents: the least-squares slope of log time against log N over the sizes
  N >= :data:`FIT_MIN_N` (all sizes when fewer than two reach it), per cost, for ours and
  the per-site baseline.

Per-site limits: quick mode runs the baseline for N <= 40; full mode for N <= 200 on the SK
architectures (its training step is O(B N^3)) and N <= 400 on CW_*, and in both modes it
stops for an architecture once one call took over :data:`PERSITE_CALL_LIMIT_S` seconds:
that call is then the only timing of that cost (``single_run``) and larger N are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ARCHITECTURES",
    "COSTS",
    "CPU_CHUNKS",
    "CUDA_CHUNKS",
    "FIT_MIN_N",
    "PERSITE_CALL_LIMIT_S",
    "growth_exponent",
    "logsigmoid_count",
    "main",
    "measure_floor",
    "persite_path",
    "rereport",
    "run_benchmarks",
]

ARCHITECTURES: tuple[str, ...] = ("SK_RS", "SK_1RSB", "SK_2RSB", "CW_N", "CW_inf", "MADE_21")
"""Architectures the benchmark knows, by the paper's names."""

COSTS: tuple[str, ...] = ("sample", "log_prob", "train_step", "sample_plus_log_prob")
"""Timed costs; each is reported as ``<cost>_s`` (median seconds)."""

# (system, variant, k) of the emitted architectures; MADE_21 is a baseline of arnn_gen.
_EMITTED = {
    "SK_RS": ("sk", "rs", 0),
    "SK_1RSB": ("sk", "krsb", 1),
    "SK_2RSB": ("sk", "krsb", 2),
    "CW_N": ("cw", "exact", 1),
    "CW_inf": ("cw", "inf", 1),
}
# The per-site port of each architecture in benchmarks/persite.py (MADE_21 has none).
_PERSITE_CLASS = {
    "SK_RS": "PerSiteReplica",
    "SK_1RSB": "PerSiteReplica",
    "SK_2RSB": "PerSiteReplica",
    "CW_N": "PerSiteCWN",
    "CW_inf": "PerSiteCWInf",
}

QUICK = {"sizes": (20, 40), "batch": 256, "repeats": 2}
FULL = {"sizes": (50, 100, 200, 400), "batch": 2000, "repeats": 3}
QUICK_PERSITE_MAX_N = 40
FULL_PERSITE_MAX_N = {"SK_RS": 200, "SK_1RSB": 200, "SK_2RSB": 200, "CW_N": 400, "CW_inf": 400}
PERSITE_CALL_LIMIT_S = 60.0
"""A per-site call slower than this is timed once, and larger N are not attempted."""

CPU_CHUNKS: tuple[int, ...] = (10_000, 30_000, 100_000, 300_000, 1_000_000)
CUDA_CHUNKS: tuple[int, ...] = (100_000, 1_000_000, 10_000_000)
FIT_MIN_N = 100
"""Growth exponents are fitted over N >= FIT_MIN_N (all sizes when fewer than two reach it)."""

MEMORY_METHODS = {
    "cpu": "peak RSS (getrusage ru_maxrss) of a fresh process per (architecture, N), read "
    "after ours' measurements: the whole process (Python, torch, model, batches)",
    "cuda": "torch.cuda.max_memory_allocated over ours' measurements, fresh process per "
    "(architecture, N)",
}


# --------------------------------------------------------------------------------------
# Counting, fitting, the floor
# --------------------------------------------------------------------------------------


def _depth(architecture: str) -> int | None:
    """k of SK_kRSB (0 for SK_RS), None for the other architectures."""
    if architecture.startswith("SK_"):
        return _EMITTED[architecture][2]
    return None


def logsigmoid_count(architecture: str, N: int, batch: int) -> int:  # noqa: N803
    """logsigmoid evaluations of one log_prob of ``batch`` samples: 2 (k + 1) B N (N - 1) / 2
    for SK_kRSB (two signs, k + 1 layers, N (N - 1) / 2 pairs l > i) plus B N (log Q's own
    logsigmoid); only the B N for the other architectures."""
    k = _depth(architecture)
    pairs = 0 if k is None else 2 * (k + 1) * N * (N - 1) // 2
    return batch * (pairs + N)


def growth_exponent(sizes: Sequence[int], times: Sequence[float | None]) -> dict | None:
    """Least-squares slope of log time against log N over N >= FIT_MIN_N (all points when
    fewer than two reach it): {"exponent", "sizes"}; None with fewer than two timings."""
    points = [(n, t) for n, t in zip(sizes, times, strict=True) if t is not None and t > 0]
    large = [(n, t) for n, t in points if n >= FIT_MIN_N]
    points = large if len(large) >= 2 else points
    if len({n for n, _ in points}) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return {"exponent": slope, "sizes": [n for n, _ in points]}


def _synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_floor(
    *, device: str = "cpu", quick: bool = False, chunks: Sequence[int] | None = None
) -> dict:
    """Evaluations per second of torch.nn.functional.logsigmoid on flat float32 chunks.

    For each chunk size the chunk is evaluated over and over for a fixed time (0.02 s per
    timing in quick mode, 0.2 s otherwise: bounded even on a busy machine), five timings
    after a warm-up, median rate; the best chunk size gives ``evals_per_s``. Returns
    {"chunk_evals_per_s": {size: rate}, "best_chunk", "evals_per_s", "seconds_per_timing"}.
    """
    import torch

    chunks = tuple(chunks or (CUDA_CHUNKS if device.startswith("cuda") else CPU_CHUNKS))
    budget = 0.02 if quick else 0.2
    generator = torch.Generator(device=device).manual_seed(0)
    rates: dict[str, float] = {}
    for size in chunks:
        values = torch.randn(size, generator=generator, device=device)  # [size] float32
        group = max(1, 100_000 // size)  # calls between two clock readings

        def rate(values=values, group=group, size=size) -> float:
            calls = 0
            _synchronize(device)
            start = time.perf_counter()
            while True:
                for _ in range(group):
                    torch.nn.functional.logsigmoid(values)
                calls += group
                _synchronize(device)
                elapsed = time.perf_counter() - start
                if elapsed >= budget:
                    return calls * size / elapsed

        rate()
        rates[str(size)] = statistics.median(rate() for _ in range(5))
    best = max(rates, key=rates.__getitem__)
    return {
        "chunk_evals_per_s": rates,
        "best_chunk": int(best),
        "evals_per_s": rates[best],
        "seconds_per_timing": budget,
    }


# --------------------------------------------------------------------------------------
# One (architecture, N): runs in a fresh process
# --------------------------------------------------------------------------------------


HERE = Path(__file__).resolve().parent
"""The benchmarks/ folder this file is in."""


def _load(name: str, path: Path | str):
    """The Python file ``path`` imported as module ``name`` (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report():
    """benchmarks/report.py, the Markdown report, imported once."""
    if "benchmarks_report" not in sys.modules:
        sys.modules["benchmarks_report"] = _load("benchmarks_report", HERE / "report.py")
    return sys.modules["benchmarks_report"]


def persite_path() -> Path | None:
    """benchmarks/persite.py beside this file, or None when it is absent."""
    path = HERE / "persite.py"
    return path if path.is_file() else None


def _load_persite(path: str):
    return _load("benchmarks_persite", path)


def _build_ours(architecture: str, N: int, device: str, folder: str):  # noqa: N803
    """The emitted module of ``architecture`` at size N (or MADE_21), float32 on device."""
    import torch

    if architecture == "MADE_21":
        from arnn_gen.learn.baselines import make_baseline
        from arnn_gen.systems import sherrington_kirkpatrick

        hamiltonian = sherrington_kirkpatrick(N, seed=0)
        return make_baseline("MADE_21", hamiltonian, device=device, dtype=torch.float32)
    from arnn_gen.codegen.emit import load_module, write_module
    from arnn_gen.pipeline import lower

    system, variant, k = _EMITTED[architecture]
    stages = lower(system, variant=variant, k=k, N=N, seed=0)
    module = load_module(write_module(stages.ir, stages.source, stages.hamiltonian, folder))
    return module.Model(device=device, dtype=torch.float32)


def _trainable(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


def _time_calls(
    function: Callable[[], Any], repeats: int, device: str, limit: float | None = None
) -> dict:
    """{"median_s", "runs", "warmup_s", "single_run"}: median of ``repeats`` calls after a
    warm-up call; with a limit, a warm-up slower than it is the only timing."""

    def timed() -> float:
        _synchronize(device)
        start = time.perf_counter()
        function()
        _synchronize(device)
        return time.perf_counter() - start

    warmup = timed()
    if limit is not None and warmup > limit:
        return {"median_s": warmup, "runs": [warmup], "warmup_s": warmup, "single_run": True}
    runs = [timed() for _ in range(repeats)]
    return {
        "median_s": statistics.median(runs),
        "runs": runs,
        "warmup_s": warmup,
        "single_run": False,
    }


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or "out of memory" in str(error).lower()


def _measure_costs(model, batch: int, repeats: int, device: str, limit: float | None) -> dict:
    """Timings of sample, log_prob and a training step of one model. A cost that fails (out
    of memory, typically) is recorded as {"error": message} and the others still run."""
    import torch

    from arnn_gen.learn.train import reinforce_loss, sample_with_log_prob

    generator = torch.Generator(device=device).manual_seed(0)
    costs: dict[str, Any] = {}
    with torch.no_grad():
        x = model.sample(batch, generator=generator)  # [B, N], reused by log_prob

    def sample() -> None:
        model.sample(batch, generator=generator)

    def log_prob() -> None:
        with torch.no_grad():
            model.log_prob(x)

    parameters = _trainable(model)
    optimizer = torch.optim.Adam(parameters, lr=1e-3) if parameters else None

    def train_step() -> None:
        samples, log_q = sample_with_log_prob(model, batch, generator)
        loss, _ = reinforce_loss(model, samples, model.beta, log_q)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sample_without_graph() -> None:
        model.CUDA_GRAPHS = False  # an instance attribute, removed again below
        try:
            model.sample(batch, generator=generator)
        finally:
            del model.CUDA_GRAPHS

    functions = {"sample": sample, "log_prob": log_prob}
    if optimizer is not None:
        functions["train_step"] = train_step
    else:
        costs["train_step"] = {"error": "no trainable parameter"}
    if device.startswith("cuda") and getattr(model, "CUDA_GRAPHS", False):
        # what the CUDA graph of sampling saves: the same sampling step by step
        functions["sample_without_graph"] = sample_without_graph
    for name, function in functions.items():
        try:
            costs[name] = _time_calls(function, repeats, device, limit)
        except (RuntimeError, MemoryError) as error:
            if not _is_out_of_memory(error):
                raise
            costs[name] = {"error": f"out of memory: {str(error).splitlines()[0][:200]}"}
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        finally:
            if parameters:
                model.zero_grad(set_to_none=True)
    record = {f"{name}_s": cost.get("median_s") for name, cost in costs.items()}
    if record.get("sample_s") is not None and record.get("log_prob_s") is not None:
        record["sample_plus_log_prob_s"] = record["sample_s"] + record["log_prob_s"]
    else:
        record["sample_plus_log_prob_s"] = None
    record["details"] = costs
    return record


def _memory_mib(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_case(spec: dict) -> dict:
    """Every measurement of one (architecture, N); run by :func:`run_benchmarks` in a fresh
    process so that the peak memory is this model's. ``spec``: architecture, N, batch,
    repeats, device, threads, persite (path or None), compiled."""
    import torch

    from arnn_gen.allocator import keep_freed_memory

    keep_freed_memory()  # as arnn-gen does: Note [Freed memory and page faults]
    torch.set_num_threads(spec["threads"])
    device, architecture, N = spec["device"], spec["architecture"], spec["N"]  # noqa: N806
    batch, repeats = spec["batch"], spec["repeats"]
    record: dict[str, Any] = {"architecture": architecture, "N": N, "batch": batch}
    with tempfile.TemporaryDirectory() as folder:
        if device.startswith("cuda"):
            torch.cuda.init()
            torch.cuda.reset_peak_memory_stats()
        before = _memory_mib(device)
        model = _build_ours(architecture, N, device, folder)
        record["parameters"] = sum(p.numel() for p in _trainable(model))
        record["ours"] = _measure_costs(model, batch, repeats, device, None)
        record["memory"] = {
            "peak_mib": _memory_mib(device),
            "before_model_mib": before,
            "method": MEMORY_METHODS["cuda" if device.startswith("cuda") else "cpu"],
        }
        if spec.get("compiled"):
            record["ours_compiled"] = _measure_compiled(model, batch, repeats, device)
        if spec.get("persite"):
            persite = getattr(_load_persite(spec["persite"]), _PERSITE_CLASS[architecture])
            baseline = persite.from_model(model)
            del model
            limit = spec.get("persite_limit_s", PERSITE_CALL_LIMIT_S)
            record["persite"] = _measure_costs(baseline, batch, repeats, device, limit)
    return record


def _measure_compiled(model, batch: int, repeats: int, device: str) -> dict:
    """Timings after ``model.enable_compile()`` (when the model has it): the first calls,
    which compile, are reported as ``compile_s``; warnings (an eager fallback) are kept."""
    if not hasattr(model, "enable_compile"):
        return {"error": "the model has no enable_compile()"}
    import torch

    generator = torch.Generator(device=device).manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            model.enable_compile()
            with torch.no_grad():
                x = model.sample(batch, generator=generator)
                model.log_prob(x)
            model.log_prob(x).sum().backward()  # the replica modules: the fused backward
            if hasattr(model, "sample_with_log_prob"):
                model.sample_with_log_prob(batch, generator=generator)[1].sum().backward()
            model.zero_grad(set_to_none=True)
            _synchronize(device)
        except Exception as error:  # noqa: BLE001 (any backend failure is a result here)
            return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
        compile_s = time.perf_counter() - start
        record = _measure_costs(model, batch, repeats, device, None)
    record["compile_s"] = compile_s
    record["warnings"] = sorted({str(w.message).splitlines()[0][:200] for w in caught})
    return record


def _run_case(spec: dict) -> dict:
    """:func:`measure_case` in a fresh Python process (its peak memory is the case's)."""
    import arnn_gen

    # the child measures the arnn_gen of this run and this very file, wherever it started
    root = str(Path(arnn_gen.__file__).resolve().parents[1])
    this = str(Path(__file__).resolve())
    code = (
        "import importlib.util, json, sys\n"
        f"sys.path.insert(0, {root!r})\n"
        f"spec = importlib.util.spec_from_file_location('benchmarks_harness', {this!r})\n"
        "harness = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(harness)\n"
        "print('@@RESULT ' + json.dumps(harness.measure_case(json.loads(sys.stdin.read()))))\n"
    )
    environment = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]))
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("@@RESULT "):
            return json.loads(line[len("@@RESULT ") :])
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    return {
        "architecture": spec["architecture"],
        "N": spec["N"],
        "batch": spec["batch"],
        "error": f"measurement process failed (exit {done.returncode}): " + " | ".join(tail),
    }


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


def _machine(device: str, threads: int) -> dict:
    import torch

    record = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "threads": threads,
        "device": device,
        "device_name": None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                record["processor"] = line.split(":", 1)[1].strip()
                break
    if device.startswith("cuda"):
        record["device_name"] = torch.cuda.get_device_name(torch.device(device))
        record["cuda"] = torch.version.cuda
    return record


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _add_ratios(record: dict, evals_per_s: float) -> None:
    """The floor of the case and the ratios persite / ours and ours / floor."""
    ours = record.get("ours", {})
    persite = record.get("persite") or {}
    count = logsigmoid_count(record["architecture"], record["N"], record["batch"])
    floor_s = count / evals_per_s
    record["floor"] = {"logsigmoid_evaluations": count, "floor_s": floor_s}
    record["persite_over_ours"] = {
        cost: _ratio(persite.get(f"{cost}_s"), ours.get(f"{cost}_s")) for cost in COSTS
    }
    record["ours_over_floor"] = {
        cost: _ratio(ours.get(f"{cost}_s"), floor_s) for cost in ("log_prob", "sample")
    }
    compiled = record.get("ours_compiled")
    if compiled is not None and "error" not in compiled:
        record["persite_over_compiled"] = {
            cost: _ratio(persite.get(f"{cost}_s"), compiled.get(f"{cost}_s")) for cost in COSTS
        }
        record["compiled_over_floor"] = {
            cost: _ratio(compiled.get(f"{cost}_s"), floor_s) for cost in ("log_prob", "sample")
        }


def _persite_plan(architecture: str, N: int, quick: bool, persite_max_n) -> tuple[bool, str]:  # noqa: N803
    """Whether the per-site baseline runs at this size, and why not."""
    if architecture not in _PERSITE_CLASS:
        return False, "no per-site version (measured as ours only)"
    if persite_max_n is None:
        limit = QUICK_PERSITE_MAX_N if quick else FULL_PERSITE_MAX_N[architecture]
    elif isinstance(persite_max_n, dict):
        limit = persite_max_n.get(architecture, 0)
    else:
        limit = int(persite_max_n)
    if N > limit:
        return False, f"per-site baseline run only for N <= {limit}"
    return True, ""


def _targets(results: list[dict], growth: dict, device: str = "cpu") -> list[dict]:
    """The performance targets for the device (CPU, or the GPU targets on CUDA),
    evaluated on what was measured (never asserted)."""

    def find(architecture: str, N: int) -> dict | None:  # noqa: N803
        for record in results:
            if record["architecture"] == architecture and record["N"] == N:
                return record
        return None

    targets = []

    def add(name: str, value: float | None, threshold: float, at_least: bool) -> None:
        met = None if value is None else (value >= threshold if at_least else value <= threshold)
        targets.append({"target": name, "value": value, "threshold": threshold, "met": met})

    def speedups(record: dict):
        """(mode, per-site / ours in that mode) for ours eager, then compiled if timed."""
        yield "ours", record.get("persite_over_ours", {})
        if "persite_over_compiled" in record:
            yield "compiled", record["persite_over_compiled"]

    if device.startswith("cuda"):
        record = find("SK_1RSB", 200)
        for mode, speedup in speedups(record) if record is not None else ():
            add(f"SK_1RSB N=200 train_step persite/{mode} >= 30", speedup.get("train_step"),
                30.0, True)  # fmt: skip
        record = find("SK_1RSB", 1000)
        if record is not None:
            add("SK_1RSB N=1000 train_step ours (s) <= 0.1",
                record.get("ours", {}).get("train_step_s"), 0.1, False)  # fmt: skip
            compiled = record.get("ours_compiled")
            if compiled is not None and "error" not in compiled:
                add("SK_1RSB N=1000 train_step compiled (s) <= 0.1",
                    compiled.get("train_step_s"), 0.1, False)  # fmt: skip
        return targets
    record = find("SK_1RSB", 200)
    for mode, speedup in speedups(record) if record is not None else ():
        add(f"SK_1RSB N=200 train_step persite/{mode} >= 3", speedup.get("train_step"), 3.0, True)
        add(f"SK_1RSB N=200 sample persite/{mode} >= 2.5", speedup.get("sample"), 2.5, True)
    record = find("CW_N", 200)
    if record is not None:
        value = record.get("persite_over_ours", {}).get("sample_plus_log_prob")
        add("CW_N N=200 sample+log_prob persite/ours >= 50", value, 50.0, True)
    for record in results:
        if record["architecture"] in ("SK_1RSB", "SK_2RSB") and "ours_over_floor" in record:
            value = record["ours_over_floor"].get("log_prob")
            name = f"{record['architecture']} N={record['N']} log_prob ours/floor <= 2"
            add(name, value, 2.0, False)
            if "compiled_over_floor" in record:
                value = record["compiled_over_floor"].get("log_prob")
                name = f"{record['architecture']} N={record['N']} log_prob compiled/floor <= 2"
                add(name, value, 2.0, False)
    for architecture, fits in growth.items():
        fit = fits["ours"].get("train_step")
        if fit is not None and min(fit["sizes"]) >= FIT_MIN_N:
            add(f"{architecture} train_step growth exponent <= 2.2", fit["exponent"], 2.2, False)
    return targets


def run_benchmarks(
    *,
    quick: bool,
    out_dir: Path,
    device: str = "cpu",
    threads: int = 2,
    repeats: int | None = None,
    sizes: Sequence[int] | None = None,
    architectures: Sequence[str] | None = None,
    batch: int | None = None,
    persite_max_n: int | dict | None = None,
    compiled: bool = False,
    progress: Callable[[str], Any] | None = print,
) -> dict:
    """Measure every architecture at every size; write ``out_dir/bench.json``; return it.

    quick: sizes (20, 40), B = 256, 2 repeats, the per-site baseline for N <= 40; otherwise
    sizes (50, 100, 200, 400), B = 2000, 3 repeats, the baseline up to N = 200 (SK_*) or
    400 (CW_*). ``sizes``, ``batch``, ``repeats`` (default None: the mode's) and
    ``persite_max_n`` (an int or {architecture: max N}) override the mode. ``compiled``:
    also time ``model.enable_compile()`` where the model has it. ``progress``: called with
    one line per finished step (None: silent).

    The result (and bench.json): {"mode", "settings", "machine", "floor", "persite",
    "results": [one record per (architecture, N)], "growth", "targets"}. A record holds
    ``ours`` and ``persite`` ({"sample_s", "log_prob_s", "train_step_s",
    "sample_plus_log_prob_s", "details"}: medians in seconds, None where not measured),
    ``memory``, ``floor``, ``persite_over_ours`` and ``ours_over_floor`` per cost, and
    ``persite_note`` when the baseline was skipped.
    """
    import torch

    say = progress or (lambda line: None)
    mode = QUICK if quick else FULL
    sizes = tuple(int(n) for n in (sizes or mode["sizes"]))
    batch = int(batch or mode["batch"])
    repeats = int(repeats or mode["repeats"])
    architectures = tuple(architectures or ARCHITECTURES)
    unknown = sorted(set(architectures) - set(ARCHITECTURES))
    if unknown:
        raise ValueError(f"unknown architecture(s) {unknown}; choose from {ARCHITECTURES}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    found = persite_path()
    persite = {
        "available": found is not None,
        "path": None if found is None else str(found),
        "note": "benchmarks/persite.py loaded by path"
        if found is not None
        else "benchmarks/persite.py not found: per-site baseline skipped",
        "call_limit_s": PERSITE_CALL_LIMIT_S,
    }
    machine = _machine(device, threads)  # before the run: its load average is the machine's
    say(f"floor: timing logsigmoid on {device} ...")
    floor = measure_floor(device=device, quick=quick)
    say(f"floor: {floor['evals_per_s']:.3g} logsigmoid/s (best chunk {floor['best_chunk']})")

    results: list[dict] = []
    for architecture in architectures:
        too_slow = False
        for N in sizes:  # noqa: N806
            wanted, note = _persite_plan(architecture, N, quick, persite_max_n)
            if wanted and found is None:
                wanted, note = False, persite["note"]
            if wanted and too_slow:
                wanted, note = False, f"a smaller N took over {PERSITE_CALL_LIMIT_S:g} s a call"
            spec = {
                "architecture": architecture,
                "N": N,
                "batch": batch,
                "repeats": repeats,
                "device": device,
                "threads": threads,
                "persite": str(found) if wanted else None,
                "persite_limit_s": PERSITE_CALL_LIMIT_S,
                "compiled": compiled,
            }
            record = _run_case(spec)
            if "error" not in record:
                _add_ratios(record, floor["evals_per_s"])
                if not wanted:
                    record["persite"] = None
                    record["persite_note"] = note
                details = (record.get("persite") or {}).get("details", {})
                too_slow = too_slow or any(d.get("single_run") for d in details.values())
            results.append(record)
            say(_summary(record))

    growth = {}
    for architecture in architectures:
        records = [r for r in results if r["architecture"] == architecture and "error" not in r]
        growth[architecture] = {
            which: {
                cost: growth_exponent(
                    [r["N"] for r in records],
                    [(r.get(which) or {}).get(f"{cost}_s") for r in records],
                )
                for cost in COSTS
            }
            for which in ("ours", "persite")
        }
    if hasattr(os, "getloadavg"):
        machine["load_average_after"] = list(os.getloadavg())
    report = {
        "schema": 1,
        "mode": "quick" if quick else "full",
        "settings": {
            "device": device,
            "threads": threads,
            "dtype": "float32",
            "beta": 1.0,
            "batch": batch,
            "repeats": repeats,
            "sizes": list(sizes),
            "architectures": list(architectures),
            "fit_min_n": FIT_MIN_N,
            "compiled": compiled,
            "memory_method": MEMORY_METHODS["cuda" if device.startswith("cuda") else "cpu"],
            "floor_count": "2 (k + 1) B N (N - 1) / 2 + B N logsigmoid for SK_kRSB (k = 0: "
            "SK_RS); B N for CW_N, CW_inf, MADE_21",
        },
        "machine": machine,
        "floor": floor,
        "persite": persite,
        "results": results,
        "growth": growth,
        "targets": _targets(results, growth, device),
    }
    from arnn_gen.files import write_atomically

    path = out_dir / "bench.json"
    write_atomically(path, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    say(f"wrote {path}")
    for written in _report().write_report(report, out_dir):
        say(f"wrote {written}")
    return report


def rereport(path: Path, say: Callable[[str], None] = print) -> dict:
    """Evaluate the targets of this version on the numbers of an existing ``bench.json``
    (measured elsewhere, on a GPU say) and rewrite it with its ``bench.md``; nothing is
    measured again. The report, updated."""
    from arnn_gen.files import write_atomically

    try:
        report = json.loads(Path(path).read_text())
        results, growth = report["results"], report["growth"]
        device = report["settings"]["device"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a bench.json: {error}") from None
    report["targets"] = _targets(results, growth, device)
    write_atomically(Path(path), (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    say(f"wrote {path}")
    for written in _report().write_report(report, Path(path).parent):
        say(f"wrote {written}")
    return report


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}s"


def _summary(record: dict) -> str:
    """One line per case for the progress output."""
    head = f"{record['architecture']} N={record['N']} B={record['batch']}:"
    if "error" in record:
        return f"{head} {record['error']}"
    ours, persite = record["ours"], record.get("persite") or {}
    parts = [
        f"ours sample {_seconds(ours.get('sample_s'))}",
        f"log_prob {_seconds(ours.get('log_prob_s'))}",
        f"train {_seconds(ours.get('train_step_s'))}",
        f"peak {record['memory']['peak_mib']:.0f} MiB",
    ]
    over = record["ours_over_floor"].get("log_prob")
    if over is not None and _depth(record["architecture"]) is not None:
        parts.append(f"log_prob/floor {over:.2f}")
    if persite:
        speed = record["persite_over_ours"]
        parts.append(
            "per-site/ours "
            + " ".join(
                f"{cost} {speed[cost]:.2f}x"
                for cost in ("sample", "log_prob", "train_step")
                if speed.get(cost) is not None
            )
        )
    elif record.get("persite_note"):
        parts.append(f"per-site: {record['persite_note']}")
    return f"{head} " + ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/harness.py [--quick] [--device cpu] [--out DIR] [--sizes N ...]``."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/harness.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--out", default="bench_out", help="folder of bench.json")
    parser.add_argument("--sizes", type=int, nargs="+", help="sizes N (default: the mode's)")
    parser.add_argument(
        "--architectures", nargs="+", choices=ARCHITECTURES, help="default: all of them"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, help="timings per cost (default: the mode's)")
    parser.add_argument("--batch", type=int, help="batch size B (default: the mode's)")
    parser.add_argument(
        "--persite-max-n", type=int, help="largest N of the per-site baseline (default: mode's)"
    )
    parser.add_argument("--compiled", action="store_true", help="also time enable_compile()")
    parser.add_argument(
        "--report",
        metavar="BENCH_JSON",
        help="measure nothing: evaluate this version's targets on a bench.json, rewrite it "
        "and its bench.md",
    )
    options = parser.parse_args(argv)
    if options.report is not None:
        try:
            rereport(Path(options.report))
        except ValueError as error:
            parser.exit(2, f"error: {error}\n")
        return 0
    run_benchmarks(
        quick=options.quick,
        out_dir=Path(options.out),
        device=options.device,
        threads=options.threads,
        repeats=options.repeats,
        sizes=options.sizes,
        architectures=options.architectures,
        batch=options.batch,
        persite_max_n=options.persite_max_n,
        compiled=options.compiled,
        progress=lambda line: print(line, flush=True),
    )
    return 0


if __name__ == "__main__":
    # the checkout's arnn_gen, installed or not: the repository root before this folder
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
