"""Run a sweep's tasks on Dask (``arnn-gen sweep``), or in this process, resumably.

Input: a :class:`~arnn_gen.sweep.spec.Sweep` and an output root. Output: one run folder per
task (:mod:`arnn_gen.sweep.task`), ``manifest.json`` (each task's definition signature,
state, attempts, seconds and last error) and the report (:mod:`arnn_gen.sweep.report`).

Resumable and idempotent: a task whose run folder holds its final metrics is skipped; one
that was interrupted (a killed worker, a lost node, Ctrl-C) resumes from the checkpoint its
run folder holds (written after every beta), so that it ends with the numbers an
uninterrupted run gives. Dask's scheduler re-runs the task of a worker that died; running
the same sweep again retries whatever failed. Only this process writes the manifest.

The batched tasks of one bundle (``batch_instances``: one system, size, architecture and
schedule) run as one unit, one Dask task (:func:`arnn_gen.sweep.task.run_bundle`); the
manifest keeps an entry per task, and a bundle's failure is each of its tasks'.

Note [Threads of a sweep]
    torch uses as many threads as the machine has cores. Several trainings per machine, each
    with all the cores, spin in each other's OpenMP barriers: small-N runs then slow down by
    orders of magnitude. So each task sets torch's threads to its share: with the local
    cluster, workers = cores (or GPUs) and threads = cores // workers; on an existing
    cluster, ``--threads`` (default 1), which should be the cores of a worker machine
    divided by the tasks it runs at once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from arnn_gen.errors import ArnnGenError
from arnn_gen.files import write_atomically
from arnn_gen.sweep.spec import Sweep, SweepTask, expand
from arnn_gen.sweep.task import bundle_capacity, read_result, run_bundle, run_folder, run_task

__all__ = ["MANIFEST", "Manifest", "run_sweep", "default_workers"]

MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1


class Manifest:
    """``OUT/manifest.json``: per task id, its signature, state (pending, running, done,
    failed), attempts, seconds of training and last error; written atomically after every
    change, by the process that runs the sweep only."""

    def __init__(self, out: Path, sweep: Sweep):
        self.path = Path(out) / MANIFEST
        self.document = {"version": _MANIFEST_VERSION, "name": sweep.name,
                         "schedule": sweep.schedule.to_dict(), "tasks": {}}  # fmt: skip
        if self.path.is_file():
            try:
                found = json.loads(self.path.read_text())
            except (OSError, ValueError):
                raise ArnnGenError(f"{self.path} is not a sweep manifest (unreadable JSON); "
                                   "move it away to start afresh") from None  # fmt: skip
            if not isinstance(found, dict) or found.get("version") != _MANIFEST_VERSION:
                raise ArnnGenError(f"{self.path} is not an arnn-gen sweep manifest")
            self.document["tasks"] = dict(found.get("tasks", {}))

    def entry(self, task: SweepTask) -> dict:
        return self.document["tasks"].get(task.id, {})

    def admit(self, task: SweepTask, out: Path, *, force: bool) -> bool:
        """Enter the task; True when it must (still) run. A task recorded, or a run folder
        found, with another definition is refused unless ``force``, which removes its run
        folder first."""
        signature = task.signature()
        entry = self.entry(task)
        folder = run_folder(task, out)
        recorded = entry.get("signature")
        if recorded is None and (folder / "task.json").is_file():
            try:
                recorded = json.loads((folder / "task.json").read_text()).get("signature")
            except (OSError, ValueError, AttributeError):
                recorded = "unreadable"
        if recorded is not None and recorded != signature:
            if not force:
                raise ArnnGenError(
                    f"{folder} holds the task {task.id} of another definition (schedule, "
                    "system or options changed); use --force to replace it, or another --out"
                )
            shutil.rmtree(folder, ignore_errors=True)
            entry = {}
        if read_result(task, out) is not None:
            state = "done"
        else:
            state = "pending" if entry.get("state") != "failed" else "failed"
        self.document["tasks"][task.id] = {
            "signature": signature, "state": state, "attempts": entry.get("attempts", 0),
            "seconds": entry.get("seconds", 0.0), "error": entry.get("error"),
            "folder": f"{task.group}/{task.architecture}",
        }  # fmt: skip
        return state != "done"

    def update(self, task: SweepTask, **changes) -> None:
        self.document["tasks"][task.id].update(changes)
        self.save()

    def save(self) -> None:
        write_atomically(self.path, json.dumps(self.document, indent=1, sort_keys=True).encode())


def default_workers(device: str) -> int:
    """Workers of the local cluster: one per GPU on CUDA, else one per core."""
    if device == "cuda":
        import torch

        return max(1, torch.cuda.device_count())
    return max(1, os.cpu_count() or 1)


def run_sweep(
    sweep: Sweep,
    out,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    serial: bool = False,
    force: bool = False,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
    title: str | None = None,
    extra: dict | None = None,
) -> Path:
    """Run every task of ``sweep`` not yet finished under ``out`` and write the report;
    returns the path of ``summary.md``.

    ``serial``: in this process, one task after the other (no Dask needed). Else on Dask:
    ``scheduler`` is the address of an existing cluster's scheduler (its workers must see
    ``out`` at the same path), or None for a local cluster of ``workers`` processes
    (default_workers). ``threads``: torch's threads per task (Note [Threads of a sweep]).
    A failed task does not stop the others; the sweep then ends with an error naming it,
    after the report of the rest. ``echo`` receives one line per finished task; ``title``
    and ``extra`` go to the report.
    """
    from arnn_gen.sweep.report import write_report

    echo = echo or (lambda line: None)
    tasks = expand(sweep)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out, sweep)
    todo = [task for task in tasks if manifest.admit(task, out, force=force)]
    manifest.save()
    done_before = len(tasks) - len(todo)
    if done_before:
        echo(f"{done_before} of {len(tasks)} tasks already finished in {out}")
    failures: list[tuple[str, str]] = []
    counter = iter(range(done_before + 1, len(tasks) + 1))

    def finished(task: SweepTask, result: dict | None, error: str | None) -> None:
        entry = manifest.entry(task)
        if error is not None:
            failures.append((task.id, error))
            manifest.update(task, state="failed", error=error)
            echo(f"[{next(counter)}/{len(tasks)}] {task.id} failed: {error}")
            return
        seconds = entry.get("seconds", 0.0) + result["seconds"]
        manifest.update(task, state="done", error=None, seconds=seconds)
        final = result["final"]
        line = f"f = {final['free_energy']:.6f} +- {final['free_energy_sem']:.1e}"
        if final.get("relative_error") is not None:
            line += f", relative error {final['relative_error']:.2e}"
        echo(f"[{next(counter)}/{len(tasks)}] {task.id} done in {result['seconds']:.1f} s: {line}")

    def started(task: SweepTask) -> None:
        manifest.update(task, state="running", attempts=manifest.entry(task)["attempts"] + 1)

    units = _units(todo)
    if units and serial:
        _run_here(units, out, threads, progress, started, finished)
    elif units:
        _run_on_dask(units, out, scheduler, workers, threads, sweep.schedule.device, started,
                     finished)  # fmt: skip
    finished = [task for task in tasks if manifest.entry(task).get("state") == "done"]
    summary = None
    if finished:  # the report of what finished, failures or not
        summary = write_report(out, tasks, title=title or f"arnn-gen sweep {sweep.name}",
                               manifest=manifest.document, extra=extra)  # fmt: skip
    if failures:
        first_id, first_error = failures[0]
        covered = "the report covers the others" if finished else "none finished"
        raise ArnnGenError(
            f"{len(failures)} of {len(tasks)} tasks failed ({covered}); first: {first_id}: "
            f"{first_error}; run the same command again to retry them"
        )
    if summary is None:  # pragma: no cover (no task and no failure: expand gives >= 1)
        raise ArnnGenError(f"no task of this sweep has finished in {out}")
    return summary


def _message(error: BaseException) -> str:
    if isinstance(error, ArnnGenError):
        return " ".join(str(error).split())
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


def _units(todo: list[SweepTask]) -> list[list[SweepTask]]:
    """What runs as one: a task alone, or the batched tasks of one bundle (at most as many
    as one module holds), in the order of their first task."""
    units: list[list[SweepTask]] = []
    open_units: dict[tuple, list[SweepTask]] = {}
    for task in todo:
        key = task.bundle_key()
        if key is None:
            units.append([task])
            continue
        unit = open_units.get(key)
        if unit is None or len(unit) >= bundle_capacity(task.N, task.config):
            unit = open_units[key] = []
            units.append(unit)
        unit.append(task)
    return units


def _run_unit(unit: list[SweepTask], out, *, threads=None, progress=False) -> list[dict]:
    """The results of a unit's tasks: a bundle trained together, or a task alone."""
    if unit[0].batched:
        return run_bundle(unit, out, threads=threads, progress=progress)
    return [run_task(unit[0], out, threads=threads, progress=progress)]


def _run_here(units, out, threads, progress, started, finished) -> None:
    for unit in units:
        for task in unit:
            started(task)
        try:
            results = _run_unit(unit, out, threads=threads, progress=progress)
        except Exception as error:  # noqa: BLE001 (as on Dask: the task fails, not the sweep)
            for task in unit:
                finished(task, None, _message(error))
        else:
            for task, result in zip(unit, results, strict=True):
                finished(task, result, None)


def _run_on_dask(units, out, scheduler, workers, threads, device, started, finished) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ArnnGenError(
            "arnn-gen sweep runs its tasks on Dask: pip install 'arnn-gen[sweep]' "
            "(or add --serial to run them here)"
        ) from None
    cluster = None
    if scheduler is None:
        workers = workers or default_workers(device)
        if threads is None:  # Note [Threads of a sweep]
            threads = max(1, (os.cpu_count() or 1) // workers)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)  # fmt: skip
        address = cluster.scheduler_address
    else:
        address = scheduler
        threads = 1 if threads is None else threads
    try:
        try:
            client = Client(address, timeout="30s")
        except (OSError, TimeoutError) as error:
            raise ArnnGenError(f"cannot reach the Dask scheduler at {address}: "
                               f"{_message(error)}") from None  # fmt: skip
        with client:
            futures = {}
            for unit in units:
                for task in unit:
                    started(task)
                name = unit[0].id if len(unit) == 1 else f"{unit[0].id}+{len(unit) - 1}"
                key = f"arnn-gen-{name}-{uuid.uuid4().hex[:8]}"
                future = client.submit(_run_unit, unit, str(out), threads=threads, key=key,
                                       pure=False)  # fmt: skip
                futures[future.key] = (future, unit)
            for future in as_completed([f for f, _ in futures.values()]):
                unit = futures[future.key][1]
                try:
                    results = future.result()
                except Exception as error:  # noqa: BLE001 (a task's failure, or a lost worker)
                    for task in unit:
                        finished(task, None, _message(error))
                else:
                    for task, result in zip(unit, results, strict=True):
                        finished(task, result, None)
    finally:
        if cluster is not None:
            cluster.close()
