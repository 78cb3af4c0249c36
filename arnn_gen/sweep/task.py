"""One task of a sweep, as a worker runs it: build the model, train it into its run folder,
resuming from the folder's checkpoint when an earlier attempt was interrupted.

The run folder ``OUT/<group>/<architecture>/`` holds what ``arnn-gen train`` writes
(config.json, metrics, history, checkpoint.pt after every beta, model.pt) plus
``task.json`` (the task's definition and signature) and ``overlap.json`` (P(q) when the
annealing first reaches OVERLAP_BETA, written before that beta's checkpoint, so that a
resumed task records the same histogram). A task whose folder already holds its final
metrics is not trained again: running a task twice gives the same files.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path

import torch

from arnn_gen.errors import ArnnGenError
from arnn_gen.files import write_atomically
from arnn_gen.sweep.spec import EMITTED, SweepTask

__all__ = ["OVERLAP_BETA", "OVERLAP_SAMPLES", "build_model", "run_task", "read_result",
           "run_folder"]  # fmt: skip

#: The overlap distribution P(q) is recorded when annealing passes this beta (paper, Fig. 4).
OVERLAP_BETA = 1.3
#: Samples of that histogram (drawn with a generator seeded 1: the same for every task).
OVERLAP_SAMPLES = 2000


def run_folder(task: SweepTask, out) -> Path:
    return Path(out) / task.group / task.architecture


def build_model(task: SweepTask, modules):
    """A fresh model of the task's architecture at the schedule's first beta: an emitted
    module (written into ``modules``, deterministically) or a baseline (random start drawn
    from torch's generator seeded with the instance)."""
    from arnn_gen.codegen.emit import load_module, write_module
    from arnn_gen.learn.baselines import make_baseline
    from arnn_gen.pipeline import build_system, default_size, lower, resolve
    from arnn_gen.systems import as_hamiltonian

    config = task.config
    beta = config.betas()[0]
    dtype = getattr(torch, config.dtype)
    options = task.system_options()
    fmt = options.pop("format", "auto")
    if task.architecture in EMITTED:
        variant, k = EMITTED[task.architecture]
        name = f"{task.system}_{task.architecture.lower()}_n{task.N}_s{task.instance}"
        stages = lower(task.system, variant=variant, k=k or 0, beta=beta, name=name,
                       format=fmt, **options)  # fmt: skip
        path = write_module(stages.ir, stages.source, stages.hamiltonian, modules, force=True)
        model_class = load_module(path).Model
        options = {"beta": beta, "dtype": dtype}
        if "init" in inspect.signature(model_class).parameters:  # trained families only
            options["init"] = task.init
        return model_class(**options)
    request = resolve(task.system, format=fmt, **options)
    hamiltonian = build_system(
        task.system, None if request.L is not None else request.N,
        default_n=request.N or default_size(task.system, "krsb"), **request.system_options(),
    )  # fmt: skip
    if hasattr(hamiltonian, "to_dense"):  # the baselines read dense couplings (sparse systems)
        hamiltonian = hamiltonian.to_dense()
    torch.manual_seed(task.instance)  # baselines draw their random start from torch
    return make_baseline(task.architecture, as_hamiltonian(hamiltonian), beta=beta, dtype=dtype,
                         init="random")  # fmt: skip


def read_result(task: SweepTask, out) -> dict | None:
    """The task's result from its run folder, or None when it has not finished: its rows,
    final estimate (without the histogram) and overlap record."""
    run = run_folder(task, out)
    try:
        metrics = json.loads((run / "metrics.json").read_text())
        recorded = json.loads((run / "task.json").read_text())
        overlap = {}
        if (run / "overlap.json").is_file():
            overlap = json.loads((run / "overlap.json").read_text())
    except (OSError, ValueError):
        return None
    if not all(isinstance(d, dict) for d in (metrics, recorded, overlap)):
        return None
    if not metrics.get("final") or recorded.get("signature") != task.signature():
        return None
    final = {k: v for k, v in metrics["final"].items() if not k.startswith("overlap")}
    return {**task.to_dict(), "rows": metrics["rows"], "final": final, "overlap": overlap}


def _threads(threads: int | None) -> None:
    """torch's threads for this task (Note [Threads of a sweep] in arnn_gen.sweep.runner);
    None leaves them as they are (a sweep run in this process)."""
    if threads is not None:
        torch.set_num_threads(max(1, threads))


def _cuda_device() -> None:
    """On a machine with several GPUs, a Dask worker named k takes GPU k mod count (the
    schedule's device stays "cuda", so a task resumed on another GPU keeps its config)."""
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        torch.cuda.set_device(int(name) % torch.cuda.device_count())


def run_task(task: SweepTask, out, *, threads: int | None = None, progress: bool = False) -> dict:
    """Train the task into ``OUT/<group>/<architecture>/`` (resuming its checkpoint when
    there is one) and return its result (:func:`read_result`) with the seconds this call
    took. Safe to call again after any interruption, or after it finished."""
    from arnn_gen.learn.observables import overlap_histogram
    from arnn_gen.learn.train import train

    started = time.perf_counter()
    done = read_result(task, out)
    if done is not None:
        return {**done, "seconds": 0.0, "trained": False}
    _threads(threads)
    if task.config.device == "cuda":
        _cuda_device()
    run = run_folder(task, out)
    run.mkdir(parents=True, exist_ok=True)
    record = {"task": task.to_dict(), "signature": task.signature()}
    previous = run / "task.json"
    if previous.is_file():
        try:
            recorded = json.loads(previous.read_text()).get("signature")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded != record["signature"]:
            raise ArnnGenError(f"{run} holds a run of another task definition; remove it or "
                               "run the sweep with --force")  # fmt: skip
    write_atomically(previous, json.dumps(record, indent=1, sort_keys=True).encode())
    model = build_model(task, run.parent / "modules")
    overlap_path = run / "overlap.json"

    def record_overlap(index: int, beta: float) -> None:
        if overlap_path.is_file() or beta < OVERLAP_BETA - 1e-9:
            return
        with torch.no_grad():
            x = model.sample(OVERLAP_SAMPLES, generator=torch.Generator(
                device=torch.device(task.config.device)).manual_seed(1))  # fmt: skip
        edges, density = overlap_histogram(x.cpu())
        document = {"beta": beta, "edges": edges.tolist(), "density": density.tolist()}
        write_atomically(overlap_path, json.dumps(document).encode())

    resume = (run / "checkpoint.pt").is_file()
    result = train(model, task.config, run, resume=resume, progress=progress,
                   label=task.architecture, before_checkpoint=record_overlap)  # fmt: skip
    if not all(math.isfinite(result.final[k]) for k in ("free_energy", "free_energy_sem")):
        raise ArnnGenError(f"{task.id}: the final estimate is not finite")
    finished = read_result(task, out)
    if finished is None:  # pragma: no cover (train wrote the metrics just now)
        raise ArnnGenError(f"{task.id}: the run folder {run} holds no final metrics")
    return {**finished, "seconds": time.perf_counter() - started, "trained": True}
