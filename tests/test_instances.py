"""Modules of several instances (``emit --instances``, several ``--couplings`` files): each
instance is the single-instance module of its system, and a batched training is the
single runs of its instances."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_runner import run
from spins import all_configurations

from arnn_gen import systems
from arnn_gen.codegen.emit import load_module, write_module
from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.instances import train_instances
from arnn_gen.learn.train import TrainConfig, load_state, train
from arnn_gen.pipeline import lower

N, SEEDS = 7, (0, 1, 2)


def emit(tmp_path, **options):
    stages = lower("sk", N=N, beta=1.2, **options)
    return load_module(write_module(stages.ir, stages.source, stages.hamiltonian, tmp_path,
                                    force=True))  # fmt: skip


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("instances")
    batched = emit(folder, variant="krsb", k=2, instances="0-2")
    singles = [emit(folder, variant="krsb", k=2, seed=seed, name=f"alone{seed}") for seed in SEEDS]
    return batched, singles


def test_the_module_of_several_instances(modules):
    batched, singles = modules
    assert batched.Model.INSTANCES == 3 and batched.Model.INSTANCE_LABELS == ("0", "1", "2")
    assert batched.Model.INSTANCE_SIGNATURES == tuple(s.HAMILTONIAN_SIGNATURE for s in singles)
    with open(batched.__file__) as source:
        assert "--instances 0-2" in source.read()
    model = batched.Model(dtype=torch.float64)
    assert model.a0.shape == (3, 2, N, N) and model.residual_bias.shape == (3, N)
    for k, single in enumerate(singles):  # the paramagnetic start of each instance
        alone = single.Model(beta=1.2, dtype=torch.float64)
        for name, value in alone.state_dict().items():
            assert torch.equal(model.instance_state_dict(k)[name], value), name


@pytest.mark.parametrize("init", ["paramagnetic", "random"])
def test_each_instance_is_the_module_of_its_system(modules, init):
    """Logits, log Q, H, the sampler (with per-instance generators) and the gradients of
    log Q equal those of the single-instance modules holding the same parameters."""
    batched, singles = modules
    torch.manual_seed(3)
    model = batched.Model(dtype=torch.float64, init=init)
    alone = [single.Model(dtype=torch.float64) for single in singles]
    for k, m in enumerate(alone):
        m.load_state_dict(model.instance_state_dict(k))
    streams = [torch.Generator().manual_seed(5) for _ in SEEDS]  # one stream per instance
    x, log_q = model.sample_with_log_prob(9, generator=streams)
    (log_q * torch.linspace(0.5, 1.5, 9)).sum().backward()
    logits = model.forward(x)
    for k, m in enumerate(alone):
        xs, log_qs = m.sample_with_log_prob(9, generator=torch.Generator().manual_seed(5))
        assert torch.equal(xs, x[k])
        torch.testing.assert_close(log_qs, log_q[k], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(m.forward(x[k]), logits[k], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(m.energy(x[k]), model.energy(x)[k], rtol=1e-12, atol=1e-12)
        (log_qs * torch.linspace(0.5, 1.5, 9)).sum().backward()
        for name, parameter in m.named_parameters():
            torch.testing.assert_close(parameter.grad, getattr(model, name).grad[k],
                                       rtol=1e-10, atol=1e-12)  # fmt: skip


def test_every_instance_is_normalised_and_autoregressive(modules):
    batched, _ = modules
    torch.manual_seed(0)
    model = batched.Model(dtype=torch.float64, init="random")
    x = all_configurations(N).to(torch.float64)  # [2^N, N]
    log_q = model.log_prob(x.expand(3, -1, -1).contiguous())  # [K, 2^N]
    torch.testing.assert_close(log_q.exp().sum(-1), torch.ones(3, dtype=torch.float64))
    flipped = x.clone()
    flipped[:, 4:] *= -1  # later spins do not change the first four logits
    both = torch.stack([x, flipped, x])
    logits = model.forward(both)
    torch.testing.assert_close(logits[1, :, :5], model.forward(x.expand(3, -1, -1))[1, :, :5])


def test_a_batched_run_is_the_single_runs_of_its_instances(modules, tmp_path):
    """float64: instance k of a batched training gives the numbers of a single run of
    instance k with the same seed (rows, final estimate, parameters) to 1e-8 relative; its
    folder holds a single run's files, which the single module loads."""
    batched, singles = modules
    config = TrainConfig(beta=1.0, beta_start=0.6, beta_step=0.2, steps_per_beta=6, batch=50,
                         lr=1e-2, eval_samples=120, dtype="float64", seed=4)  # fmt: skip
    model = batched.Model(beta=0.6)
    results = train(model, config, tmp_path / "batched", progress=False)
    for k, single in enumerate(singles):
        alone = single.Model(beta=0.6)
        result = train(alone, config, tmp_path / f"single{k}", progress=False)
        folder = tmp_path / "batched" / f"instance_{SEEDS[k]}"
        assert results[k].run_dir == folder
        for mine, theirs in zip(results[k].rows, result.rows, strict=True):
            for key, value in theirs.items():
                assert mine[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
        assert results[k].final["free_energy"] == pytest.approx(result.final["free_energy"],
                                                                 rel=1e-8)  # fmt: skip
        assert results[k].final["exact_free_energy"] == result.final["exact_free_energy"]
        assert results[k].final["overlap_density"] == pytest.approx(result.final["overlap_density"])
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(model.instance_state_dict(k)[name], value,
                                       rtol=1e-8, atol=1e-10)  # fmt: skip
        single_files = {p.name for p in (tmp_path / f"single{k}").iterdir()}
        assert single_files <= {p.name for p in folder.iterdir()}
        state = load_state(folder / "model.pt", single.Model(beta=0.6))  # identity checked
        single.Model(beta=0.6).load_state_dict(state)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert len(metrics["rows"]) == 3 and metrics["final"]["relative_error"] is not None


def test_a_resumed_batched_run_ends_as_an_uninterrupted_one(modules, tmp_path):
    batched, _ = modules
    config = TrainConfig(beta=1.0, beta_start=0.6, beta_step=0.2, steps_per_beta=4, batch=40,
                         lr=1e-2, eval_samples=80, dtype="float64")  # fmt: skip
    whole = train_instances(batched.Model(beta=0.6), config, tmp_path / "whole", progress=False)
    import arnn_gen.learn.instances as instances

    original = instances._estimates
    calls = []

    def interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the third beta's estimate: two betas are in the checkpoints
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    instances._estimates = interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            train_instances(batched.Model(beta=0.6), config, tmp_path / "cut", progress=False)
    finally:
        instances._estimates = original
    resumed = train_instances(batched.Model(beta=0.6), config, tmp_path / "cut", resume=True,
                              progress=False)  # fmt: skip
    for a, b in zip(whole, resumed, strict=True):
        assert a.rows == b.rows and a.final == b.final


def test_several_couplings_files_make_one_module(tmp_path):
    files = []
    for seed in SEEDS:
        files.append(tmp_path / f"c{seed}.npz")
        systems.sherrington_kirkpatrick(N, seed=seed).save(files[-1])
    result = run("emit", "--system", "general", "--variant", "rs", "--couplings", *files,
                 "--out", tmp_path / "m")  # fmt: skip
    assert result.exit_code == 0, result.output
    module = load_module(result.stdout.strip())
    assert module.Model.INSTANCE_LABELS == ("0", "1", "2")
    assert result.stdout.strip().endswith("general_rs_n7_i3.py")
    J, _ = module.Model().system_arrays()  # noqa: N806
    for k, seed in enumerate(SEEDS):
        assert np.array_equal(J[k].numpy(), systems.sherrington_kirkpatrick(N, seed=seed).J)
    out = tmp_path / "run"
    trained = run("train", result.stdout.strip(), "--beta", "0.5", "--beta-start", "0.4",
                  "--beta-step", "0.1", "--steps-per-beta", "2", "--batch", "16",
                  "--eval-samples", "32", "--device", "cpu", "--out", out, "--quiet")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert trained.stdout.count("instance_") == 3
    assert sorted(p.name for p in out.iterdir()) == ["instance_0", "instance_1", "instance_2"]


def test_bad_requests_are_one_line(tmp_path):
    small = tmp_path / "small.npz"
    systems.sherrington_kirkpatrick(5, seed=0).save(small)
    big = tmp_path / "big.npz"
    systems.sherrington_kirkpatrick(6, seed=0).save(big)
    cases = [
        (("--system", "cw", "--instances", "0-2"), "takes SK seeds"),
        (("--system", "sk", "--instances", "0-2", "--variant", "exact"), "variants rs and krsb"),
        (("--system", "sk", "--instances", "2-1"), "empty"),
        (("--system", "sk", "--instances", "a-b"), "A-B"),
        (("--system", "sk", "--instances", "1,1"), "distinct"),
        (("--system", "sk", "--instances", "0-1", "--seed", "3"), "not both"),
        (("--system", "sk", "--instances", "0-1", "-N", "16384"), "fewer instances"),
        (("--system", "general", "--couplings", small, big), "different sizes"),
        (("--system", "sk", "-N", "5", str(small)), "follow --couplings"),
    ]
    for args, fragment in cases:
        result = run("emit", *args, "--out", tmp_path / "o")
        assert result.exit_code in (1, 2), result.output
        assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_batched_training_refuses_what_it_cannot_do(modules):
    batched, _ = modules
    with pytest.raises(ArnnGenError, match="early-stop"):
        train_instances(batched.Model(), TrainConfig(beta=1.0, early_stop=1e-3), progress=False)
    with pytest.raises(ArnnGenError, match="Adam"):
        train_instances(batched.Model(), TrainConfig(beta=1.0, optimizer="natural"),
                        progress=False)  # fmt: skip


def test_bad_spins_are_a_value_error(modules):
    batched, _ = modules
    model = batched.Model()
    with pytest.raises(ValueError, match=r"\[3, B, 7\]"):
        model.log_prob(torch.ones(2, 4, N))
    with pytest.raises(ValueError, match="-1 and \\+1"):
        model.energy(torch.zeros(3, 4, N))
    with pytest.raises(ValueError, match="one generator or 3"):
        model.sample(2, generator=[torch.Generator()])


def test_sample_and_fit_take_a_module_of_one_system(tmp_path):
    result = run("emit", "--system", "sk", "-N", "5", "--instances", "0-1", "--out", tmp_path)
    module = result.stdout.strip()
    samples = tmp_path / "s.npy"
    np.save(samples, np.ones((4, 5), dtype=np.int8))
    for args in (("sample", module, "-n", "3", "--out", tmp_path / "x.npy"),
                 ("fit", module, samples, "--epochs", "1", "--out", tmp_path / "fit")):  # fmt: skip
        outcome = run(*args)
        assert outcome.exit_code == 1 and "holds 2 instances" in outcome.stderr
        assert len(outcome.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["1L", "MADE_21"])
def test_baselines_of_several_instances_train_as_their_single_runs(name, tmp_path):
    """The baselines of K instances (vmap over the instances) give, instance by instance,
    the samples, log Q, H and the whole single run of that instance's baseline."""
    from arnn_gen.learn.baseline_instances import make_instance_baselines
    from arnn_gen.learn.baselines import make_baseline
    from arnn_gen.systems.instances import InstanceStack

    members = [systems.sherrington_kirkpatrick(6, seed=seed) for seed in SEEDS]
    stack = InstanceStack.of(members, SEEDS)
    config = TrainConfig(beta=0.8, beta_start=0.6, beta_step=0.2, steps_per_beta=5, batch=40,
                         lr=1e-2, eval_samples=60, dtype="float64", seed=2)  # fmt: skip
    batched = make_instance_baselines(name, stack, beta=0.6, dtype=torch.float64)
    results = train(batched, config, tmp_path / "batched", progress=False)
    for k, seed in enumerate(SEEDS):
        torch.manual_seed(seed)  # the start the batched module drew for instance k
        alone = make_baseline(name, members[k], beta=0.6, dtype=torch.float64)
        result = train(alone, config, tmp_path / f"single{k}", progress=False)
        for mine, theirs in zip(results[k].rows, result.rows, strict=True):
            for key, value in theirs.items():
                assert mine[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
        state = torch.load(tmp_path / "batched" / f"instance_{seed}" / "model.pt")
        for key, value in alone.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=1e-8, atol=1e-10)


def test_resuming_with_another_module_is_refused_before_anything_changes(modules, tmp_path):
    batched, _ = modules
    config = TrainConfig(beta=0.6, beta_start=0.6, steps_per_beta=2, batch=16, lr=1e-2,
                         eval_samples=32, dtype="float64")  # fmt: skip
    train_instances(batched.Model(beta=0.6), config, tmp_path / "run", progress=False)
    other = emit(tmp_path / "other", variant="rs", instances="0-2").Model(beta=0.6)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ArnnGenError, match="another module"):
        train_instances(other, config, tmp_path / "run", resume=True, progress=False)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    with pytest.raises(ArnnGenError, match="--compile"):
        train_instances(batched.Model(), TrainConfig(beta=1.0, compile=True), progress=False)


def test_several_files_take_no_seeds(tmp_path):
    files = []
    for seed in (0, 1):
        files.append(tmp_path / f"c{seed}.npz")
        systems.sherrington_kirkpatrick(5, seed=seed).save(files[-1])
    with pytest.raises(ArnnGenError, match="neither --instances nor --seed"):
        lower("general", couplings=[str(f) for f in files], seed=3)


@pytest.mark.gpu
def test_the_cuda_graph_of_batched_sampling_replays_the_eager_steps(modules):
    """On CUDA the K instances' N sampling steps are replayed from one CUDA graph: the same
    draws as the eager loop (per-instance generators), replayed for the next batch of the
    same size, captured again for another size."""
    batched, _ = modules
    torch.manual_seed(0)
    graphed = batched.Model(dtype=torch.float64, device="cuda", init="random")
    eager = batched.Model(dtype=torch.float64, device="cuda")
    eager.load_state_dict(graphed.state_dict())
    eager.CUDA_GRAPHS = False

    def draws(batch, seed):
        out = []
        for model in (graphed, eager):
            streams = [torch.Generator(device="cuda").manual_seed(seed + k) for k in SEEDS]
            out.append(model.sample_with_log_prob(batch, generator=streams))
        assert torch.equal(out[0][0], out[1][0])
        torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-12, atol=1e-12)

    draws(64, 0)
    first = graphed._graph
    assert first is not None and eager._graph is None
    draws(64, 1)
    assert graphed._graph is first  # replayed, not captured again
    draws(32, 2)
    assert graphed._graph is not first
