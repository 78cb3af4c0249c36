"""Training a module of K instances (``emit --instances``) as K runs in one pass.

Input: a batched model (an emitted module with ``INSTANCES``: parameters ``[K, ...]``,
``sample`` -> ``[K, B, N]``, ``log_prob`` -> ``[K, B]``; or the baselines of K instances,
:mod:`arnn_gen.learn.baseline_instances`) and a
:class:`~arnn_gen.learn.train.TrainConfig`. Output: ``RUN/instance_<label>/`` for each
instance (label: the SK seed, or the couplings file's index), each with the files of a
single run (config.json, history.csv, metrics.csv/json, checkpoint.pt, model.pt) in the
single run's format: a model of that instance alone loads its model.pt and resumes its
checkpoint.

Exactly K single runs: instance k draws from its own generator seeded with ``seed`` (the
seed a single run of it takes), in the order a single run draws (the training batches, then
the estimate of every beta in batches of ``batch``, then the overlap samples); its loss is
its own REINFORCE surrogate, and Adam is elementwise, so instance k's parameters, samples
and estimates are those of the single run of instance k, to rounding (tests/test_instances.py).
One sampling pass and one backward pass serve all K instances.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from arnn_gen.errors import ArnnGenError
from arnn_gen.files import write_atomically
from arnn_gen.learn.observables import estimates_from, overlap_histogram
from arnn_gen.learn.train import (
    _CHECKPOINT_VERSION,
    OVERLAP_FINAL_SAMPLES,
    TrainConfig,
    TrainResult,
    _check_finite,
    _Progress,
    _save_torch,
    _step_figures,
    _write_metrics,
    follow_beta,
    label_of,
    load_checkpoint,
    metrics_row,
    reference_free_energy,
)

__all__ = ["is_batched", "instance_folder", "instance_identity", "train_instances"]


def is_batched(model) -> bool:
    """Whether ``model`` holds several instances (a leading instance dimension): an emitted
    module of several instances, or the baselines of several
    (:class:`~arnn_gen.learn.baseline_instances.InstanceBaselines`)."""
    return isinstance(getattr(model, "INSTANCES", None), int)


def instance_folder(run: Path, label: str) -> Path:
    return Path(run) / f"instance_{label}"


def instance_identity(model, index: int) -> dict:
    """What a run folder of instance ``index`` records: the identity of the module of that
    instance alone (its architecture, N and Hamiltonian signature; not its IR, which the
    batched module does not know)."""
    return {
        "architecture": label_of(model),
        "N": int(model.N),
        "hamiltonian_signature": model.INSTANCE_SIGNATURES[index],
        "ir_signature": None,
        "instance": model.INSTANCE_LABELS[index],
        "batched_ir_signature": getattr(model, "IR_SIGNATURE", None),
    }


def _instance_hamiltonians(model) -> list:
    """Each instance's system: a Curie-Weiss system from the numbers J and h the model was
    built with (CW_inf of several instances: ``system_scalars``), else a dense system from
    its float64 arrays."""
    from arnn_gen import systems

    if hasattr(model, "system_scalars"):
        return [systems.CurieWeiss(model.N, J, h) for J, h in zip(*model.system_scalars(),
                                                                    strict=True)]  # fmt: skip
    couplings, fields = model.system_arrays()
    pairs = zip(couplings, fields, strict=True)
    return [systems.from_couplings(J.numpy(), h.numpy()) for J, h in pairs]


@torch.no_grad()
def _estimates(model, beta: float, config: TrainConfig, generators) -> list:
    """Each instance's estimate on eval_samples samples drawn batch at a time, as
    arnn_gen.learn.observables.estimate draws them for a single run."""
    xs, log_qs, energies = [], [], []
    remaining = config.eval_samples
    while remaining > 0:
        count = min(config.batch, remaining)
        x = model.sample(count, generator=generators)  # [K, b, N]
        xs.append(x.to(torch.float64))
        log_qs.append(model.log_prob(x, validate=False).to(torch.float64))  # [K, b]
        energies.append(model.energy(x, validate=False).to(torch.float64))
        remaining -= count
    x, log_q, energy = torch.cat(xs, 1), torch.cat(log_qs, 1), torch.cat(energies, 1)
    return [estimates_from(x[k], log_q[k], energy[k], beta) for k in range(len(x))]


def _instance_optimizer_state(optimizer, parameters, index: int) -> dict:
    """Adam's state of instance ``index`` alone, as Adam over the single module's
    parameters holds it (its step count and the index-th slice of each moment)."""
    state = optimizer.state_dict()
    sliced = {}
    for key, entry in state["state"].items():
        sliced[key] = {name: (value[index].clone() if torch.is_tensor(value) and value.dim()
                              else value) for name, value in entry.items()}  # fmt: skip
    return {"state": sliced, "param_groups": state["param_groups"]}


def _merge_optimizer_states(optimizer, states: list[dict]) -> None:
    """Adam's state from the instances' states (the inverse of _instance_optimizer_state)."""
    merged = {}
    for key, entry in states[0]["state"].items():
        merged[key] = {name: (torch.stack([s["state"][key][name] for s in states])
                              if torch.is_tensor(value) and value.dim() else value)
                       for name, value in entry.items()}  # fmt: skip
    optimizer.load_state_dict({"state": merged, "param_groups": states[0]["param_groups"]})


def _save_together(checkpoints) -> None:
    """Write the instances' checkpoints as one unit: all staged (synced temporaries), then
    renamed together (arnn_gen.files.replace_together), so that an interruption leaves
    every instance at the same beta."""
    import contextlib
    import io

    from arnn_gen.files import replace_together, stage

    with contextlib.ExitStack() as stack:
        staged = []
        for path, payload in checkpoints:
            handle, temporary = stack.enter_context(stage(path))
            buffer = io.BytesIO()
            torch.save(payload, buffer)
            handle.write(buffer.getvalue())
            staged.append((temporary, path))
    replace_together(staged)


def train_instances(
    model,
    config: TrainConfig,
    run_dir=None,
    *,
    resume: bool = False,
    progress: bool = True,
    label: str | None = None,
    folders=None,
    before_checkpoint=None,
    regroup: bool = False,
) -> list[TrainResult]:
    """Anneal and train the K instances of ``model`` together; write
    ``run_dir/instance_<label>/`` for each (module docstring). Returns one result per
    instance. With ``resume``, every instance continues from its folder's checkpoint.

    ``folders``: the K run folders of the instances, in the model's order, instead of
    ``run_dir/instance_<label>/`` (a sweep trains its tasks' folders). ``before_checkpoint(
    instance, index, beta)`` is called for every instance after the estimate of the beta of
    that index and before its checkpoint, as :func:`arnn_gen.learn.train.train` calls its
    hook (a sweep records each instance's P(q) there). ``regroup``: a checkpoint written by
    a module of another set of instances resumes too (each instance's architecture, N and
    system are still checked): a sweep resumes the unfinished instances of a module."""
    if config.early_stop is not None:
        raise ArnnGenError("--early-stop stops each run at its own step: train the instances "
                           "of a batched module without it")  # fmt: skip
    if config.optimizer != "adam":
        raise ArnnGenError("a module of several instances trains with Adam (--optimizer adam)")
    if config.compile:
        raise ArnnGenError("a module of several instances runs eagerly: leave out --compile")
    config = config.for_model(model)
    device = torch.device(config.device)
    model.to(device=device, dtype=getattr(torch, config.dtype))
    count, labels = model.INSTANCES, model.INSTANCE_LABELS
    run = Path(run_dir) if run_dir is not None else None
    if folders is not None:
        folders = [Path(folder) for folder in folders]
        if len(folders) != count or len(set(folders)) != count:
            raise ArnnGenError(f"expected {count} distinct run folders, one per instance, got "
                               f"{len(folders)}")  # fmt: skip
    elif run is not None:
        folders = [instance_folder(run, labels[k]) for k in range(count)]
    writes = folders is not None
    folders = folders if writes else [None] * count
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    generators = [torch.Generator(device=device).manual_seed(config.seed) for _ in range(count)]
    identities = [instance_identity(model, k) for k in range(count)]
    hamiltonians = _instance_hamiltonians(model)  # the exact references' systems
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    betas = config.betas()
    rows: list[list[dict]] = [[] for _ in range(count)]
    history: list[list[dict]] = [[] for _ in range(count)]
    start = 0
    title = label or label_of(model)
    if resume:
        if not writes:
            raise ArnnGenError("resume needs the run folder")
        payloads = [load_checkpoint(folder / "checkpoint.pt") for folder in folders]
        checked = ("architecture", "N", "hamiltonian_signature",
                   *(() if regroup else ("batched_ir_signature",)))  # fmt: skip
        for k, payload in enumerate(payloads):  # all checked before anything is loaded
            recorded = payload.get("identity")
            recorded = recorded if isinstance(recorded, dict) else {}
            for key in checked:
                if recorded.get(key) != identities[k][key]:
                    raise ArnnGenError(f"{folders[k]} was made with another module ({key} "
                                       "differs); use the module that made it")  # fmt: skip
            if payload["config"] != config.to_dict():
                raise ArnnGenError(f"{folders[k]} was made with another configuration")
        if len({payload["done"] for payload in payloads}) != 1:
            where = run if run is not None else ", ".join(str(folder) for folder in folders)
            raise ArnnGenError(f"the instances of {where} stopped at different betas")
        for k, payload in enumerate(payloads):
            model.load_instance_state_dict(k, payload["model"])
            generators[k].set_state(payload["generator"])
            rows[k], history[k] = list(payload["rows"]), list(payload["history"])
        _merge_optimizer_states(optimizer, [payload["optimizer"] for payload in payloads])
        start = payloads[0]["done"]
    if writes:
        for k, folder in enumerate(folders):
            folder.mkdir(parents=True, exist_ok=True)
            meta = {"label": title, "system": getattr(model, "SYSTEM", None), "N": model.N,
                    "config": config.to_dict(), "identity": identities[k]}  # fmt: skip
            text = json.dumps(meta, indent=2, sort_keys=True).encode()
            write_atomically(folder / "config.json", text)

    remaining = sum(config.steps_at(index) for index in range(start, len(betas)))
    bar = _Progress(remaining, progress)
    try:
        for index in range(start, len(betas)):
            beta = betas[index]
            if config.follow_beta and index > 0:
                follow_beta(model, betas[index - 1], beta)
            model.beta = beta
            for step in range(config.steps_at(index)):
                for group in optimizer.param_groups:
                    group["lr"] = config.lr_at(index, step)
                x, log_q = model.sample_with_log_prob(config.batch, generator=generators)
                with torch.no_grad():
                    L = log_q + beta * model.energy(x, validate=False).to(log_q.dtype)  # [K, B]
                # each instance's REINFORCE surrogate: its parameters see only its own
                loss = ((L - L.mean(-1, keepdim=True)) * log_q).mean(-1).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                for k in range(count):
                    mean, spread, _ = _step_figures(L[k], beta, model.N)
                    history[k].append({"beta": beta, "step": step, "free_energy": mean,
                                       "free_energy_std": spread})  # fmt: skip
                bar.update(beta, step, history[0][-1]["free_energy"],
                           history[0][-1]["free_energy_std"])  # fmt: skip
            estimates = _estimates(model, beta, config, generators)
            for k in range(count):
                _check_finite(estimates[k], beta)
                exact = reference_free_energy(hamiltonians[k], beta)
                rows[k].append(metrics_row(estimates[k], exact))
            if before_checkpoint is not None:  # what it records belongs to this beta's state
                for k in range(count):
                    before_checkpoint(k, index, beta)
            if writes:
                checkpoints = []
                for k, folder in enumerate(folders):
                    payload = {
                        "version": _CHECKPOINT_VERSION,
                        "identity": identities[k],
                        "config": config.to_dict(),
                        "done": index + 1,
                        "model": model.instance_state_dict(k),
                        "optimizer": _instance_optimizer_state(optimizer, parameters, k),
                        "generator": generators[k].get_state(),
                        "rows": rows[k],
                        "history": history[k],
                        "parameter_names": names,
                    }
                    checkpoints.append((folder / "checkpoint.pt", payload))
                _save_together(checkpoints)  # every instance at the same beta, or none
                for k, folder in enumerate(folders):
                    _write_metrics(folder, rows[k], history[k], None, title, model)
    finally:
        bar.close()

    model.beta = betas[-1]
    finals = _estimates(model, betas[-1], config, generators)
    with torch.no_grad():
        samples = min(config.eval_samples, OVERLAP_FINAL_SAMPLES)
        x = model.sample(samples, generator=generators)  # [K, S, N]
    results = []
    for k in range(count):
        _check_finite(finals[k], betas[-1])
        final = metrics_row(finals[k], reference_free_energy(hamiltonians[k], betas[-1]))
        edges, density = overlap_histogram(x[k])
        final["overlap_edges"] = [float(v) for v in np.asarray(edges)]
        final["overlap_density"] = [float(v) for v in np.asarray(density)]
        if writes:
            _save_torch(folders[k] / "model.pt", model.instance_state_dict(k))
            _write_metrics(folders[k], rows[k], history[k], final, title, model)
        results.append(TrainResult(tuple(rows[k]), final, folders[k]))
    return results
