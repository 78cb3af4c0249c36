"""CW_inf of several Curie-Weiss systems in one module (``emit --system cw --variant inf --J
a,b --h c,d``): each instance is the CW_inf module of its system, and a batched training is
the single runs of its instances."""

from __future__ import annotations

import json
import math

import pytest
import torch
from cli_runner import run
from spins import all_configurations

from arnn_gen import systems
from arnn_gen.codegen.emit import load_module, write_module
from arnn_gen.learn.train import TrainConfig, load_state, train
from arnn_gen.pipeline import lower, resolve

N = 8
COUPLINGS = ((1.0, 0.0), (1.4, 0.0), (0.8, -0.2))  # (J, h) of each instance


def curie_weiss_free_energy(J, h, beta):  # noqa: N803
    """f = -ln Z / (beta N) by the sum over the number K of up spins: M = 2K - N,
    H = -(J / 2N) (M^2 - N) - h M, with binomial multiplicities."""
    terms = []
    for K in range(N + 1):  # noqa: N806
        M = 2 * K - N  # noqa: N806
        energy = -(J / (2 * N)) * (M * M - N) - h * M
        terms.append(math.log(math.comb(N, K)) - beta * energy)
    top = max(terms)
    return -(top + math.log(sum(math.exp(t - top) for t in terms))) / (beta * N)


def emit(folder, **options):
    stages = lower("cw", variant="inf", N=N, beta=1.1, **options)
    return load_module(write_module(stages.ir, stages.source, stages.hamiltonian, folder,
                                    force=True))  # fmt: skip


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cw_instances")
    J, h = zip(*COUPLINGS, strict=True)  # noqa: N806
    batched = emit(folder, J=J, h=h)
    singles = [emit(folder, J=j, h=f, name=f"alone{k}") for k, (j, f) in enumerate(COUPLINGS)]
    return batched, singles


def test_the_module_of_several_systems(modules):
    batched, singles = modules
    Model = batched.Model  # noqa: N806
    assert Model.INSTANCES == 3 and Model.INSTANCE_LABELS == ("0", "1", "2")
    assert Model.INSTANCE_SIGNATURES == tuple(s.HAMILTONIAN_SIGNATURE for s in singles)
    assert Model.EMISSION_J == (1.0, 1.4, 0.8) and Model.EMISSION_H == (0.0, 0.0, -0.2)
    assert batched.__file__.endswith("cw_inf_n8_i3.py")
    with open(batched.__file__) as source:
        assert "--J 1.0,1.4,0.8 --h 0.0,0.0,-0.2" in source.read()
    model = Model(dtype=torch.float64)
    assert model.omega.shape == (3, N) and list(model.state_dict()) == ["omega"]
    for k, single in enumerate(singles):  # the saddle-point start of each system
        alone = single.Model(beta=1.1, dtype=torch.float64)
        assert torch.equal(model.instance_state_dict(k)["omega"], alone.omega.detach())
    assert model.system_scalars() == ((1.0, 1.4, 0.8), (0.0, 0.0, -0.2)) == (model.J, model.h)
    other = Model(J=2.0, h=[0.1, 0.2, 0.3])  # numbers given to the constructor
    assert other.system_scalars() == ((2.0, 2.0, 2.0), (0.1, 0.2, 0.3))
    for bad in ([1.0, 2.0], float("nan"), "x"):
        with pytest.raises(ValueError, match="J must"):
            Model(J=bad)


@pytest.mark.parametrize("init", ["paramagnetic", "random"])
def test_each_instance_is_the_module_of_its_system(modules, init):
    """Logits, log Q, H, the sampler (with per-instance generators) and the gradients of
    log Q equal those of the single modules holding the same omega."""
    batched, singles = modules
    torch.manual_seed(2)
    model = batched.Model(dtype=torch.float64, init=init)
    alone = [single.Model(dtype=torch.float64) for single in singles]
    for k, m in enumerate(alone):
        m.load_state_dict(model.instance_state_dict(k))
    streams = [torch.Generator().manual_seed(7) for _ in COUPLINGS]
    x, log_q = model.sample_with_log_prob(11, generator=streams)
    (log_q * torch.linspace(0.5, 1.5, 11)).sum().backward()
    logits, energies = model.forward(x), model.energy(x)
    for k, m in enumerate(alone):
        xs = m.sample(11, generator=torch.Generator().manual_seed(7))
        assert torch.equal(xs, x[k])
        log_qs = m.log_prob(xs)
        torch.testing.assert_close(log_qs, log_q[k], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(m.forward(xs), logits[k], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(m.energy(xs), energies[k], rtol=1e-12, atol=1e-12)
        (log_qs * torch.linspace(0.5, 1.5, 11)).sum().backward()
        torch.testing.assert_close(m.omega.grad, model.omega.grad[k], rtol=1e-10, atol=1e-12)


def test_every_instance_is_normalised_and_its_energy_exact(modules):
    batched, _ = modules
    torch.manual_seed(0)
    model = batched.Model(dtype=torch.float64, init="random")
    x = all_configurations(N).to(torch.float64).expand(3, -1, -1).contiguous()  # [K, 2^N, N]
    torch.testing.assert_close(model.log_prob(x).exp().sum(-1), torch.ones(3, dtype=torch.float64))
    for k, (J, h) in enumerate(COUPLINGS):  # noqa: N806
        dense = systems.curie_weiss(N, J, h)
        torch.testing.assert_close(model.energy(x)[k], dense.energy(x[k]))


def test_the_sampler_draws_each_instances_conditionals(modules):
    """With one generator, the histogram of the first two spins of every instance agrees
    with the module's own probabilities (binomial standard error)."""
    batched, _ = modules
    torch.manual_seed(1)
    model = batched.Model(dtype=torch.float64, init="random")
    with torch.no_grad():
        x = model.sample(40000, generator=torch.Generator().manual_seed(3))  # [K, B, N]
        pairs = torch.tensor([[a, b] + [1.0] * (N - 2) for a in (-1.0, 1.0) for b in (-1.0, 1.0)])
        logits = model.forward(pairs.expand(3, -1, -1).contiguous().double())
        log_p = torch.nn.functional.logsigmoid(logits[..., :2] * pairs[:, :2]).sum(-1)  # [K, 4]
    for k in range(3):
        for index, (a, b) in enumerate(pairs[:, :2].tolist()):
            frequency = ((x[k, :, 0] == a) & (x[k, :, 1] == b)).double().mean()
            p = log_p[k, index].exp()
            assert abs(frequency - p) < 5 * (p * (1 - p) / 40000) ** 0.5 + 1e-9


def test_a_batched_run_is_the_single_runs_of_its_instances(modules, tmp_path):
    """float64: instance k of a batched training gives the numbers of a single run of
    system k with the same seed to 1e-8 relative, against each system's exact free energy;
    its folder holds a single run's files, which the single module loads."""
    batched, singles = modules
    config = TrainConfig(beta=1.2, beta_start=0.8, beta_step=0.2, steps_per_beta=6, batch=64,
                         lr=2e-2, eval_samples=200, dtype="float64", seed=3)  # fmt: skip
    results = train(batched.Model(beta=0.8), config, tmp_path / "batched", progress=False)
    for k, single in enumerate(singles):
        result = train(single.Model(beta=0.8), config, tmp_path / f"single{k}", progress=False)
        folder = tmp_path / "batched" / f"instance_{k}"
        assert results[k].run_dir == folder
        for mine, theirs in zip(results[k].rows, result.rows, strict=True):
            for key, value in theirs.items():
                assert mine[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
        J, h = COUPLINGS[k]  # noqa: N806
        exact = curie_weiss_free_energy(J, h, 1.2)
        assert results[k].final["exact_free_energy"] == pytest.approx(exact, rel=1e-12)
        assert results[k].final["free_energy"] == pytest.approx(result.final["free_energy"],
                                                                 rel=1e-8)  # fmt: skip
        state = load_state(folder / "model.pt", single.Model(beta=0.8))  # identity checked
        single.Model(beta=0.8).load_state_dict(state)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert len(metrics["rows"]) == 3


def test_the_command_line(tmp_path):
    result = run("emit", "--system", "cw", "--variant", "inf", "-N", "6", "--h", "0,0.1",
                 "--out", tmp_path / "m")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("cw_inf_n6_i2.py")
    trained = run("train", result.stdout.strip(), "--beta", "0.6", "--beta-start", "0.5",
                  "--beta-step", "0.1", "--steps-per-beta", "2", "--batch", "16",
                  "--eval-samples", "32", "--device", "cpu", "--out", tmp_path / "run",
                  "--quiet")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["instance_0", "instance_1"]
    replica = run("emit", "--system", "cw", "--variant", "rs", "-N", "6", "--J", "0.5,1",
                  "--out", tmp_path / "m")  # fmt: skip
    assert replica.exit_code == 0, replica.output  # the dense replica forms of each system
    module = load_module(replica.stdout.strip())
    J, _ = module.Model().system_arrays()  # noqa: N806
    assert torch.equal(J[1], torch.tensor(systems.curie_weiss(6, 1.0).J))


def test_bad_requests_are_one_line(tmp_path):
    cases = [
        (("--system", "cw", "--variant", "inf", "--J", "1,2", "--h", "0,1,2"), "one per instance"),
        (("--system", "cw", "--J", "1,2"), "not exact"),
        (("--system", "sk", "--h", "0,1"), "not sk"),
        (("--system", "cw", "--variant", "inf", "--J", "1,x"), "separated by commas"),
        (("--system", "cw", "--variant", "inf", "--J", "1,inf"), "finite"),
        (("--system", "cw", "--variant", "inf", "--h", "0,1", "--seed", "2"), "--seed"),
        (("--system", "cw", "--variant", "inf", "-N", "20000", "--h", "0,1"), "fewer instances"),
    ]
    for args, fragment in cases:
        result = run("emit", *args, "--out", tmp_path / "o")
        assert result.exit_code in (1, 2), result.output
        assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert resolve("cw", variant="inf", J=[0.5, 1.0]).instance_scalars == ((0.5, 0.0), (1.0, 0.0))
