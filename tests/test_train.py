"""Stage 6: variational training, its gradient, resume, and maximum likelihood."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from spins import all_configurations, log_prob_through_forward

from arnn_gen import systems
from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import enumerate_exact
from arnn_gen.learn.train import (
    METRIC_KEYS,
    TrainConfig,
    _step_figures,
    beta_schedule,
    load_checkpoint,
    reinforce_loss,
    sample_with_log_prob,
    train,
)


def random_general(tmp_path, N, seed, field=0.1):  # noqa: N803
    rng = np.random.default_rng(seed)
    J = np.triu(rng.normal(0, 1 / np.sqrt(N), (N, N)), 1)  # noqa: N806
    path = tmp_path / f"couplings_{N}_{seed}.npz"
    systems.from_couplings(J + J.T, rng.normal(0, field, N)).save(path)
    return str(path)


def test_beta_schedule():
    assert beta_schedule(0.1, 0.3, 0.05) == (0.1, 0.15, 0.2, 0.25, 0.3)
    assert beta_schedule(0.1, 0.32, 0.1) == (0.1, 0.2, 0.3, 0.32)
    assert beta_schedule(1.0, 1.0, 0.05) == (1.0,)
    assert len(beta_schedule(0.1, 2.0, 0.05)) == 39  # the paper's 39 values
    with pytest.raises(ArnnGenError, match="beta_step"):
        TrainConfig(beta=1.0, beta_step=0.0)


@pytest.mark.slow
def test_sk_1rsb_reaches_the_exact_free_energy(emitted, tmp_path):
    """N = 12 general instance at beta = 1: from the paramagnetic start, SK_1RSB gets within
    1e-3 of the enumerated f, and F_IS is within 3 standard errors of it."""
    couplings = random_general(tmp_path, 12, seed=0)
    module = emitted("general", variant="krsb", k=1, couplings=couplings)
    model = module.Model(dtype=torch.float64)
    config = TrainConfig(beta=1.0, beta_start=1.0, steps_per_beta=150, batch=500, lr=1e-2,
                         eval_samples=20000, dtype="float64")  # fmt: skip
    result = train(model, config, tmp_path / "run", progress=False)
    exact = enumerate_exact(systems.load(couplings), 1.0).free_energy
    final = result.final
    assert final["exact_free_energy"] == pytest.approx(exact, rel=1e-12)
    assert final["relative_error"] < 1e-3
    assert abs(final["free_energy_is"] - exact) < 3 * final["free_energy_is_sem"]
    assert final["free_energy"] >= exact - 3 * final["free_energy_sem"]  # variational bound
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["rows"][-1]["beta"] == 1.0 and set(METRIC_KEYS) <= set(metrics["rows"][0])
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert header == ",".join(METRIC_KEYS)


@pytest.mark.parametrize(
    "system, options",
    [("sk", {"variant": "exact", "N": 8}), ("cw", {"variant": "exact", "N": 60})],
)
def test_exact_variants_need_no_training(emitted, tmp_path, system, options):
    module = emitted(system, **options)
    model = module.Model()
    config = TrainConfig(beta=1.2, beta_start=0.4, beta_step=0.4, batch=1000,
                         eval_samples=4000, dtype="float64")  # fmt: skip
    result = train(model, config, tmp_path / "run", progress=False)
    for row in (*result.rows, result.final):
        assert row["relative_error"] < 1e-10
        assert row["free_energy_std"] < 1e-10
    # every beta is estimated on eval_samples samples, as the final estimate is
    assert [row["ess"] for row in result.rows] == pytest.approx([4000.0] * 3, rel=1e-9)
    assert result.final["ess"] == pytest.approx(4000.0, rel=1e-9)


@pytest.mark.parametrize("one_pass", [False, True])
def test_reinforce_gradient_equals_the_exact_gradient(emitted, one_pass):
    """E[(L - mean L) grad log Q] = beta grad F[Q] (N = 6, by enumeration), within 5 sigma;
    with log Q from sample and autograd through forward, and from the one-pass sampler with
    its fused backward (what train uses); the exact gradient through forward too."""
    module = emitted("sk", variant="rs", N=6, seed=2)
    torch.manual_seed(3)
    model = module.Model(dtype=torch.float64, init="random")
    beta = 0.8
    X = all_configurations(6)
    log_q = log_prob_through_forward(model, X)
    exact_objective = (log_q.exp() * (log_q + beta * model.energy(X))).sum()
    exact = torch.autograd.grad(exact_objective, [model.a1])[0].flatten()
    generator = torch.Generator().manual_seed(4)
    estimates = []
    for _ in range(20):
        if one_pass:
            x, log_q = sample_with_log_prob(model, 10000, generator)
            loss, _ = reinforce_loss(model, x, beta, log_q)
        else:
            x = model.sample(10000, generator=generator)
            loss, _ = reinforce_loss(model, x, beta, log_prob_through_forward(model, x))
        estimates.append(torch.autograd.grad(loss, [model.a1])[0].flatten())
    estimates = torch.stack(estimates)
    mean, sem = estimates.mean(0), estimates.std(0) / np.sqrt(len(estimates))
    assert (exact.abs() > 1e-3).sum() >= 10  # a real test: many non-zero components
    assert ((mean - exact).abs() <= 5 * sem + 1e-9).all()


def _small_config(**changes):
    options = dict(beta=0.4, beta_start=0.1, beta_step=0.1, steps_per_beta=4, batch=64,
                   lr=1e-2, eval_samples=256, dtype="float64", seed=5)  # fmt: skip
    options.update(changes)
    return TrainConfig(**options)


def test_resume_after_an_interruption_equals_an_uninterrupted_run(emitted, tmp_path):
    module = emitted("sk", variant="krsb", k=1, N=6, seed=1)
    config = _small_config()
    whole = module.Model(dtype=torch.float64)
    expected = train(whole, config, tmp_path / "whole", progress=False)

    class Interrupt(Exception):
        pass

    def stop_after_second(index, beta):
        if index == 1:
            raise Interrupt

    broken = module.Model(dtype=torch.float64)
    with pytest.raises(Interrupt):
        train(broken, config, tmp_path / "broken", progress=False, after_beta=stop_after_second)
    assert load_checkpoint(tmp_path / "broken" / "checkpoint.pt")["done"] == 2
    resumed = module.Model(dtype=torch.float64)
    result = train(resumed, config, tmp_path / "broken", resume=True, progress=False)
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert result.rows == expected.rows
    assert result.final == expected.final


def test_resume_errors(emitted, tmp_path):
    module = emitted("sk", variant="rs", N=5)
    config = _small_config(beta=0.2)
    with pytest.raises(ArnnGenError, match="does not exist"):
        train(module.Model(), config, tmp_path / "none", resume=True, progress=False)
    run = tmp_path / "bad"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArnnGenError, match="cannot read checkpoint"):
        train(module.Model(), config, run, resume=True, progress=False)
    train(module.Model(), config, tmp_path / "ok", progress=False)
    with pytest.raises(ArnnGenError, match="another configuration"):
        train(module.Model(), _small_config(beta=0.3), tmp_path / "ok", resume=True,
              progress=False)  # fmt: skip


def test_same_seed_same_numbers(emitted, tmp_path):
    module = emitted("sk", variant="rs", N=6)
    first = train(module.Model(), _small_config(), None, progress=False)
    second = train(module.Model(), _small_config(), None, progress=False)
    assert first.rows == second.rows and first.final == second.final


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_figures_are_the_batch_mean_std_and_ess(dtype):
    """The per-step figures of history.csv and the progress bar, against their definitions
    (docs/physics.md section 5) evaluated in numpy: F = L / (beta N), ESS = (sum w)^2 / sum w^2
    with w = exp(-L), shifted by min L (ESS is scale-free) so that exp stays in range."""
    L = torch.tensor([-310.5, -312.25, -309.0, -315.75, -311.0], dtype=dtype)
    beta, N = 1.5, 100  # noqa: N806
    mean, spread, ess = _step_figures(L, beta, N)
    # L / (beta N) is divided in L's dtype; the spread is a difference of such quotients
    rel, spread_rel = (1e-6, 1e-4) if dtype == torch.float32 else (1e-12, 1e-10)
    f = L.double().numpy() / (beta * N)
    w = np.exp(-(L.double().numpy() - L.double().numpy().min()))
    assert mean == pytest.approx(f.mean(), rel=rel)
    assert spread == pytest.approx(f.std(ddof=1), rel=spread_rel)
    assert ess == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-9)
    assert 1.0 <= ess <= len(L)
    assert _step_figures(L[:1], beta, N) == pytest.approx((f[0], 0.0, 1.0), rel=rel)
    assert all(isinstance(v, float) for v in _step_figures(L, beta, N))


def test_sample_with_log_prob_falls_back_to_sample_and_log_prob():
    """Models without a one-pass sampler (the baselines): sample, then log_prob."""
    from arnn_gen.learn.baselines import make_baseline

    torch.manual_seed(0)
    model = make_baseline("MADE_21", systems.sherrington_kirkpatrick(6, seed=0),
                          dtype=torch.float64, init="random")  # fmt: skip
    x, log_q = sample_with_log_prob(model, 32, torch.Generator().manual_seed(1))
    assert x.shape == (32, 6) and log_q.requires_grad
    assert torch.equal(x, model.sample(32, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(log_q, model.log_prob(x))


@pytest.mark.parametrize("variant", ["krsb", "rs", "exact"])
def test_the_exact_reference_uses_the_float64_couplings(variant, tmp_path):
    # A float32 module keeps J rounded to float32; the reference must not (it equals
    # `arnn-gen exact` to the last digits, not to the 9th).
    from arnn_gen.codegen.emit import load_module, write_module
    from arnn_gen.learn.train import exact_free_energy
    from arnn_gen.pipeline import lower

    stages = lower("sk", variant=variant, N=10, seed=4, dtype="float32")
    model = load_module(write_module(stages.ir, stages.source, stages.hamiltonian, tmp_path))
    model = model.Model()
    reference = enumerate_exact(systems.sherrington_kirkpatrick(10, seed=4), 1.3).free_energy
    assert exact_free_energy(model, 1.3) == pytest.approx(reference, rel=1e-14, abs=0)
