"""Data-parallel training: two gloo processes on the CPU give the single-process gradient
and step statistics of the union of their samples; one process gives the single-process
run; resume continues every rank's stream; torchrun runs the CLI end to end."""

from __future__ import annotations

import copy
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.distributed.nn  # noqa: F401  (Note [Import torch.distributed.nn first])
import torch.multiprocessing as mp
from cli_runner import assert_one_line_error, run

from arnn_gen import systems
from arnn_gen.codegen.emit import load_module
from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.baselines import make_baseline
from arnn_gen.learn.distributed import DataParallel, generator_state, rank_seed, shares
from arnn_gen.learn.train import (
    TrainConfig,
    _step_figures,
    reinforce_loss,
    sample_with_log_prob,
    train,
)

ROOT = Path(__file__).resolve().parents[1]
BETA = 0.7


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _couplings(tmp_path, N=6, seed=0) -> str:  # noqa: N803
    rng = np.random.default_rng(seed)
    J = np.triu(rng.normal(0, 1 / np.sqrt(N), (N, N)), 1)  # noqa: N806
    path = tmp_path / f"couplings_{N}_{seed}.npz"
    systems.from_couplings(J + J.T, rng.normal(0, 0.3, N)).save(path)
    return str(path)


def _rank_main(rank, world_size, port, check, args):
    """One spawned rank: join a gloo group of world_size, run check(parallel, *args)."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        check(DataParallel("cpu"), *args)
    finally:
        dist.destroy_process_group()


def _spawn(check, *args, world_size=2):
    """check(parallel, *args) on world_size spawned ranks; a failed assertion fails the test."""
    mp.spawn(_rank_main, args=(world_size, _free_port(), check, args), nprocs=world_size)


def _models(module_path, couplings):
    """The same models on every rank: an emitted SK_1RSB and a MADE_21 baseline (random start,
    broadcast from rank 0), in float64."""
    torch.manual_seed(dist.get_rank())  # different random starts: the broadcast must fix them
    replica = load_module(module_path).Model(dtype=torch.float64, init="random")
    made = make_baseline("MADE_21", systems.load(couplings), BETA, dtype=torch.float64)
    return replica, made


def _check_gradients(parallel, module_path, couplings):
    """The summed rank gradients of the surrogate loss are the single-process gradient of the
    union of the samples; the step figures (mean, std, ESS of L) those of the union."""
    for model in _models(module_path, couplings):
        parallel.broadcast_parameters(model)
        single = copy.deepcopy(model)
        x, log_q = sample_with_log_prob(model, 16, parallel.generator(seed=3))  # [8, N] each
        loss, L = reinforce_loss(model, x, BETA, log_q, parallel=parallel)  # noqa: N806
        model.zero_grad()
        loss.backward()
        parallel.sum_gradients(model)
        union = parallel.gather(x)  # [32, N]
        assert len(union) == len(L) == 32 and not torch.equal(union[:16], union[16:])
        union_loss, union_L = reinforce_loss(single, union, BETA)  # noqa: N806
        union_loss.backward()
        size = 0.0
        for mine, theirs in zip(model.parameters(), single.parameters(), strict=True):
            if mine.requires_grad:
                assert torch.allclose(mine.grad, theirs.grad, rtol=0, atol=1e-10)
                size += float(theirs.grad.abs().sum())
        assert size > 1e-3  # a real test: the gradient is not zero
        figures = _step_figures(L, BETA, model.N)
        assert figures == pytest.approx(_step_figures(union_L, BETA, model.N), rel=1e-12)


def test_summed_gradients_are_the_gradient_of_the_union(emitted, tmp_path):
    couplings = _couplings(tmp_path)
    module = emitted("general", variant="krsb", k=1, couplings=couplings)
    assert module.Model.TITLE == "SK_1RSB"
    _spawn(_check_gradients, module.__file__, couplings)


class _Interrupt(Exception):
    pass


def _stop_after_first(index, beta):  # noqa: ARG001
    if index == 0:
        raise _Interrupt


CONFIG = dict(beta=0.5, beta_start=0.3, beta_step=0.1, steps_per_beta=3, batch=32,
              lr=1e-2, eval_samples=101, dtype="float64", seed=7)  # fmt: skip


def _check_resume(parallel, module_path, folder):
    """A run interrupted after its first beta and resumed ends as one never interrupted (each
    rank's generator comes back from the checkpoint); only rank 0 writes."""
    folder = Path(folder)
    config = TrainConfig(**CONFIG)
    Model = load_module(module_path).Model  # noqa: N806
    whole = train(Model(), config, folder / "whole", progress=False, parallel=parallel)
    with pytest.raises(_Interrupt):
        train(Model(), config, folder / "cut", progress=False, parallel=parallel,
              after_beta=_stop_after_first)  # fmt: skip
    dist.barrier()  # rank 0 has written the checkpoint
    checkpoint = torch.load(folder / "cut" / "checkpoint.pt", weights_only=True)
    assert len(checkpoint["generators"]) == 2
    resumed = train(Model(), config, folder / "cut", resume=True, progress=False,
                    parallel=parallel)  # fmt: skip
    assert resumed.rows == whole.rows and resumed.final == whole.final
    assert len(whole.rows) == 3 and all(row["samples"] == 101 for row in whole.rows)
    assert whole.final["exact_free_energy"] is not None
    if parallel.is_writer:
        history = (folder / "whole" / "history.csv").read_text().splitlines()
        assert len(history) == 1 + 9
        states = [torch.load(folder / run / "model.pt") for run in ("whole", "cut")]
        assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.slow
def test_resume_continues_every_rank(tmp_path):
    path = ROOT / "generated" / "general_krsb1_n8.py"
    _spawn(_check_resume, str(path), str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "whole"]


def test_one_process_gives_the_single_process_numbers(tmp_path):
    """G = 1: rank 0 is seeded with the seed itself, so the run is the single-process one."""
    Model = load_module(ROOT / "generated" / "general_krsb1_n8.py").Model  # noqa: N806
    config = TrainConfig(**CONFIG)
    alone = train(Model(), config, tmp_path / "alone", progress=False)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        parallel = train(Model(), config, tmp_path / "parallel", progress=False,
                         parallel=DataParallel("cpu"))  # fmt: skip
    finally:
        dist.destroy_process_group()
    assert parallel.rows == alone.rows and parallel.final == alone.final
    for name in ("history.csv", "metrics.json"):
        written = (tmp_path / "parallel" / name).read_bytes()
        assert written == (tmp_path / "alone" / name).read_bytes()


def test_seeds_shares_and_checkpoint_streams():
    assert rank_seed(5, 0) == 5
    seeds = {rank_seed(5, rank) for rank in range(8)}
    assert len(seeds) == 8 and all(0 <= seed < 2**64 for seed in seeds)
    assert rank_seed(5, 3) == rank_seed(5, 3) != rank_seed(6, 3)
    assert shares(101, 2) == (51, 50) and shares(3, 4) == (1, 1, 1, 0)
    single = {"generator": torch.tensor([1], dtype=torch.uint8)}
    two = {**single, "generators": [torch.tensor([2], dtype=torch.uint8)] * 2}
    assert generator_state(single, 0, 1, "c") is single["generator"]
    assert generator_state(two, 1, 2, "c") is two["generators"][1]
    with pytest.raises(ArnnGenError, match="trained by 2 process.*--nproc-per-node 2"):
        generator_state(two, 0, 1, "c")
    with pytest.raises(ArnnGenError, match="trained by 1 process.*without --distributed"):
        generator_state(single, 0, 2, "c")


# --------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------


SCHEDULE = (
    *("--beta", "0.5", "--beta-start", "0.3", "--beta-step", "0.1", "--steps-per-beta", "3"),
    *("--eval-samples", "200", "--device", "cpu", "--quiet", "--distributed"),
)


def _torchrun(cwd, *args):
    """python -m torch.distributed.run --standalone --nproc-per-node 2 -m arnn_gen ARGS."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "arnn_gen", *map(str, args)]  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("arnn-gen: error")]


@pytest.mark.slow
def test_torchrun_trains_one_run(tmp_path):
    module = ROOT / "generated" / "general_krsb1_n8.py"
    work = tmp_path / "work"
    work.mkdir()
    result = _torchrun(work, "train", module, *SCHEDULE, "--batch", "64", "--out", "run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run: beta = 0.5, f = ")  # rank 0 alone
    assert [p.name for p in work.iterdir()] == ["run"]
    files = {p.name for p in (work / "run").iterdir()}
    assert {"config.json", "metrics.csv", "metrics.json", "history.csv", "checkpoint.pt",
            "model.pt", "free_energy.png"} <= files  # fmt: skip
    assert not [name for name in files if name.startswith(".")]  # no temporaries left
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    assert [row["beta"] for row in metrics["rows"]] == [0.3, 0.4, 0.5]
    for row in (*metrics["rows"], metrics["final"]):
        assert row["samples"] == 200 and math.isfinite(row["free_energy"])
        assert row["relative_error"] < 0.05
    assert len((work / "run" / "history.csv").read_text().splitlines()) == 1 + 9
    checkpoint = torch.load(work / "run" / "checkpoint.pt", weights_only=True)
    assert len(checkpoint["generators"]) == 2
    alone = run("train", module, *SCHEDULE[:-1], "--batch", "64", "--resume", work / "run")
    assert_one_line_error(alone, 1, "trained by 2 process(es), not 1")

    odd = _torchrun(work, "train", module, *SCHEDULE, "--batch", "65", "--out", "odd")
    assert odd.returncode != 0
    assert _errors(odd) == [
        "arnn-gen: error: the batch (65) must be divisible by the number of processes (2) "
        "in data-parallel training"
    ]
    assert not (work / "odd").exists()


def test_distributed_needs_torchrun(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    module = ROOT / "generated" / "general_krsb1_n8.py"
    result = run("train", module, *SCHEDULE, "--batch", "64", "--out", tmp_path / "run")
    assert_one_line_error(result, 1, "--distributed needs the environment torchrun sets")
    assert not (tmp_path / "run").exists()
