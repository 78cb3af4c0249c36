"""One task of a sweep, as a worker runs it: build the model, train it into its run folder,
resuming from the folder's checkpoint when an earlier attempt was interrupted.

The run folder ``OUT/<group>/<architecture>/`` holds what ``arnn-gen train`` writes
(config.json, metrics, history, checkpoint.pt after every beta, model.pt) plus
``task.json`` (the task's definition and signature) and ``overlap.json`` (P(q) when the
annealing first reaches OVERLAP_BETA, written before that beta's checkpoint, so that a
resumed task records the same histogram). A task whose folder already holds its final
metrics is not trained again: running a task twice gives the same files.

A bundle (:func:`run_bundle`) is the batched tasks of one size and architecture
(``batch_instances``): one module of their K instances, written to ``OUT/modules/``, trained
by one :func:`~arnn_gen.learn.instances.train_instances` call into the K run folders, which
then hold what the K tasks trained alone write. Its members that have finished are skipped;
the others resume together from their checkpoints (saved together, so at the same beta);
members left at different betas (an interruption while the final files were written, a
sweep file given more instances) train in one module per starting beta.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from arnn_gen.errors import ArnnGenError
from arnn_gen.files import write_atomically
from arnn_gen.sweep.spec import BATCHED, EMITTED, SweepTask

__all__ = ["OVERLAP_BETA", "OVERLAP_SAMPLES", "build_model", "build_bundle_model",
           "bundle_capacity", "run_task", "run_bundle", "read_result", "run_folder"]  # fmt: skip

#: The overlap distribution P(q) is recorded when annealing passes this beta (paper, Fig. 4).
OVERLAP_BETA = 1.3
#: Samples of that histogram (drawn with a generator seeded 1: the same for every task).
OVERLAP_SAMPLES = 2000


def run_folder(task: SweepTask, out) -> Path:
    return Path(out) / task.group / task.architecture


def bundle_capacity(N: int, config=None) -> int:  # noqa: N803
    """Most instances of N spins one module holds: their K [N, N] couplings within the
    dense budget (arnn_gen.checks.MAX_DENSE_N), at most MAX_INSTANCES, and with ``config``
    (a TrainConfig) K x N x the most samples it holds at once (a training batch, an
    estimate's eval_samples, P(q)) within MAX_BATCH_SPINS, the bound of ``arnn-gen train``
    on a module of several instances."""
    from arnn_gen.checks import MAX_BATCH_SPINS, MAX_DENSE_N
    from arnn_gen.systems.instances import MAX_INSTANCES

    capacity = min(MAX_INSTANCES, MAX_DENSE_N**2 // max(1, N * N))
    if config is not None:  # the estimates keep all their samples, as the final P(q) does
        drawn = max(config.batch, config.eval_samples, OVERLAP_SAMPLES)
        capacity = min(capacity, MAX_BATCH_SPINS // max(1, drawn * N))
    return max(1, capacity)


def build_model(task: SweepTask, modules):
    """A fresh model of the task's architecture at the schedule's first beta: an emitted
    module (written into ``modules``, deterministically) or a baseline; a random start
    (the baselines', or ``init = "random"``) is drawn from torch's generator seeded with the
    instance, so that a task starts the same on every worker."""
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
                       format=fmt, backend=task.backend, **options)  # fmt: skip
        path = write_module(stages.ir, stages.source, stages.hamiltonian, modules, force=True)
        model_class = load_module(path).Model
        options = {"beta": beta, "dtype": dtype}
        if "init" in inspect.signature(model_class).parameters:  # trained families only
            options["init"] = task.init
        torch.manual_seed(task.instance)  # init = "random" draws from torch, as the baselines
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


def build_bundle_model(tasks, modules):
    """A fresh module of the K instances of ``tasks`` (batched tasks of one bundle, in this
    order) at the schedule's first beta, written into ``modules`` under a name that the
    instances determine: instance k of it is the module :func:`build_model` makes for
    ``tasks[k]``."""
    from arnn_gen.codegen.emit import load_module, write_module
    from arnn_gen.pipeline import lower, resolve

    first = tasks[0]
    if not all(task.batched for task in tasks) or len({t.bundle_key() for t in tasks}) != 1:
        raise ArnnGenError("a module of several instances trains batched tasks of one system, "
                           "size, architecture and schedule")  # fmt: skip
    if first.architecture not in BATCHED:  # pragma: no cover (expand marks only these)
        raise ArnnGenError(f"{first.architecture} has no module of several instances")
    config = first.config
    beta = config.betas()[0]
    variant, k = EMITTED[first.architecture]
    options = first.system_options()
    fmt = options.pop("format", "auto")
    options.pop("seed", None)
    if first.system == "general":
        options["couplings"] = [task.couplings for task in tasks]
    else:
        options["instances"] = tuple(task.instance for task in tasks)
    members = "\0".join(task.id for task in tasks).encode()
    digest = hashlib.sha256(members).hexdigest()[:10]
    name = f"{first.system}_{first.architecture.lower()}_n{first.N}_k{len(tasks)}_{digest}"
    request = resolve(first.system, variant=variant, k=k or 0, beta=beta, name=name,
                      format=fmt, backend=first.backend, **options)  # fmt: skip
    if not request.is_batched():  # one couplings file: a module of that one instance
        request = replace(request, instance_files=(request.couplings,))
    stages = lower(request)
    path = write_module(stages.ir, stages.source, stages.hamiltonian, modules, force=True)
    return load_module(path).Model(beta=beta, dtype=getattr(torch, config.dtype))


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


def _claim(task: SweepTask, out) -> Path:
    """The task's run folder, made, with its task.json (definition and signature); a folder
    holding a run of another definition (another schedule, or trained batched where the
    task is not, or the reverse) is refused."""
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
    return run


def _overlap_generator(task: SweepTask) -> torch.Generator:
    """The generator of the P(q) samples: seeded 1, the same for every task."""
    return torch.Generator(device=torch.device(task.config.device)).manual_seed(1)


def _write_overlap(path: Path, beta: float, x: torch.Tensor) -> None:
    """overlap.json: P(q) of the spins x [S, N] drawn at ``beta``."""
    from arnn_gen.learn.observables import overlap_histogram

    edges, density = overlap_histogram(x.cpu())
    document = {"beta": beta, "edges": edges.tolist(), "density": density.tolist()}
    write_atomically(path, json.dumps(document).encode())


def run_task(task: SweepTask, out, *, threads: int | None = None, progress: bool = False) -> dict:
    """Train the task into ``OUT/<group>/<architecture>/`` (resuming its checkpoint when
    there is one) and return its result (:func:`read_result`) with the seconds this call
    took. Safe to call again after any interruption, or after it finished. A batched task
    trains as a bundle of itself alone (:func:`run_bundle`)."""
    from arnn_gen.learn.train import train

    if task.batched:  # trained as a module of one instance (its checkpoints are of one)
        return run_bundle([task], out, threads=threads, progress=progress)[0]
    started = time.perf_counter()
    done = read_result(task, out)
    if done is not None:
        return {**done, "seconds": 0.0, "trained": False}
    _threads(threads)
    if task.config.device == "cuda":
        _cuda_device()
    run = _claim(task, out)
    model = build_model(task, run.parent / "modules")
    overlap_path = run / "overlap.json"

    def record_overlap(index: int, beta: float) -> None:
        if overlap_path.is_file() or beta < OVERLAP_BETA - 1e-9:
            return
        with torch.no_grad():
            x = model.sample(OVERLAP_SAMPLES, generator=_overlap_generator(task))
        _write_overlap(overlap_path, beta, x)

    resume = (run / "checkpoint.pt").is_file()
    result = train(model, task.config, run, resume=resume, progress=progress,
                   label=task.architecture, before_checkpoint=record_overlap)  # fmt: skip
    if not all(math.isfinite(result.final[k]) for k in ("free_energy", "free_energy_sem")):
        raise ArnnGenError(f"{task.id}: the final estimate is not finite")
    finished = read_result(task, out)
    if finished is None:  # pragma: no cover (train wrote the metrics just now)
        raise ArnnGenError(f"{task.id}: the run folder {run} holds no final metrics")
    return {**finished, "seconds": time.perf_counter() - started, "trained": True}


def _checkpoint_beta(task: SweepTask, out) -> int:
    """How many betas of the schedule the task's checkpoint holds (0: none)."""
    from arnn_gen.learn.train import load_checkpoint

    path = run_folder(task, out) / "checkpoint.pt"
    return int(load_checkpoint(path)["done"]) if path.is_file() else 0


def run_bundle(tasks, out, *, threads: int | None = None, progress: bool = False) -> list[dict]:
    """Train the batched ``tasks`` of one bundle (one system, size, architecture and
    schedule) together: their K instances in one module, one
    :func:`~arnn_gen.learn.instances.train_instances` pass, each into its own run folder.
    Returns each task's result, as :func:`run_task` would, in order; the seconds of a
    training are shared among the tasks it trained. Members that have finished are skipped;
    the others resume from their checkpoints, one module per beta they stopped at (module
    docstring). Safe to call again after any interruption, or after it finished."""
    tasks = list(tasks)
    if not tasks or not all(task.batched for task in tasks):
        raise ArnnGenError("a bundle holds batched tasks (batch_instances)")
    if len({task.bundle_key() for task in tasks}) != 1 or len({t.id for t in tasks}) != len(tasks):
        raise ArnnGenError("a bundle holds distinct tasks of one system, size, architecture "
                           "and schedule")  # fmt: skip
    results: dict[str, dict] = {}
    pending = []
    for task in tasks:
        done = read_result(task, out)
        if done is not None:
            results[task.id] = {**done, "seconds": 0.0, "trained": False}
        else:
            pending.append(task)
    if pending:
        _threads(threads)
        if tasks[0].config.device == "cuda":
            _cuda_device()
        for task in pending:
            _claim(task, out)
    groups: dict[int, list[SweepTask]] = {}
    for task in pending:  # those stopped at one beta resume in one module
        groups.setdefault(_checkpoint_beta(task, out), []).append(task)
    capacity = bundle_capacity(tasks[0].N, tasks[0].config)
    for start, members in sorted(groups.items()):
        for first in range(0, len(members), capacity):
            chunk = members[first : first + capacity]
            results.update(_train_bundle(chunk, out, resume=start > 0, progress=progress))
    return [results[task.id] for task in tasks]


def _train_bundle(members, out, *, resume: bool, progress: bool) -> dict[str, dict]:
    """Train ``members`` (claimed, unfinished, stopped at one beta) in one module; their
    results by id."""
    from arnn_gen.learn.instances import train_instances

    started = time.perf_counter()
    model = build_bundle_model(members, Path(out) / "modules")
    folders = [run_folder(task, out) for task in members]
    drawn: dict[int, torch.Tensor] = {}  # beta index -> the P(q) samples [K, S, N]

    def record_overlap(k: int, index: int, beta: float) -> None:
        path = folders[k] / "overlap.json"
        if path.is_file() or beta < OVERLAP_BETA - 1e-9:
            return
        if index not in drawn:  # each instance's samples, as its own module draws them
            generators = [_overlap_generator(task) for task in members]
            drawn.clear()
            with torch.no_grad():
                drawn[index] = model.sample(OVERLAP_SAMPLES, generator=generators)
        _write_overlap(path, beta, drawn[index][k])

    trained = train_instances(model, members[0].config, folders=folders, resume=resume,
                              progress=progress, label=members[0].architecture,
                              before_checkpoint=record_overlap, regroup=True)  # fmt: skip
    drawn.clear()
    seconds = (time.perf_counter() - started) / len(members)
    results = {}
    for task, result in zip(members, trained, strict=True):
        if not all(math.isfinite(result.final[k]) for k in ("free_energy", "free_energy_sem")):
            raise ArnnGenError(f"{task.id}: the final estimate is not finite")
        finished = read_result(task, out)
        if finished is None:  # pragma: no cover (train_instances wrote the metrics just now)
            raise ArnnGenError(f"{task.id}: the run folder {run_folder(task, out)} holds no "
                               "final metrics")  # fmt: skip
        results[task.id] = {**finished, "seconds": seconds, "trained": True}
    return results
