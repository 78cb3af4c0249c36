"""arnn_gen.learn.mcmc against exact enumeration: single-spin-flip Metropolis on small SK and CW
systems, and Metropolis-Hastings with an emitted network as proposal."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spins import all_configurations, config_index

from arnn_gen import systems
from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import enumerate_exact, log_boltzmann
from arnn_gen.learn.mcmc import (
    NeuralMCMCResult,
    _metropolis,
    metropolis,
    metropolis_samples,
    neural_metropolis,
)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_matches_exact(hamiltonian, beta, x, *, z=5.0):
    """Energy per spin, <|m|> and every <x_i> of the samples x [S, N] within z standard
    errors of exact enumeration (the samples being independent)."""
    exact = enumerate_exact(hamiltonian, beta)
    samples, n_spins = x.shape
    root = math.sqrt(samples)
    energy = hamiltonian.energy(x) / n_spins  # [S]
    assert abs(float(energy.mean()) - exact.energy) < z * float(energy.std()) / root
    abs_m = x.sum(1).abs() / n_spins  # [S]
    assert abs(float(abs_m.mean()) - exact.magnetization_abs) < z * float(abs_m.std()) / root
    site_se = np.sqrt(np.clip(1.0 - exact.magnetizations**2, 1e-3, None)) / root  # [N]
    assert np.all(np.abs(x.mean(0).numpy() - exact.magnetizations) < z * site_se)


SYSTEMS = {
    "sk": lambda: systems.sherrington_kirkpatrick(10, seed=7),
    "sk_field": lambda: systems.sherrington_kirkpatrick(10, h=0.3, seed=8),
    "cw": lambda: systems.curie_weiss(10),
}


# --------------------------------------------------------------------------------------
# Single-spin-flip Metropolis
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.5, 1.0])
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_metropolis_matches_enumeration(name, beta):
    hamiltonian = SYSTEMS[name]()
    x, local = _metropolis(hamiltonian, beta, chains=4000, sweeps=200, generator=_generator(0))
    assert x.shape == (4000, 10) and x.dtype == torch.float64
    assert bool(((x == 1) | (x == -1)).all())
    _assert_matches_exact(hamiltonian, beta, x)
    # The incrementally updated local fields equal a recomputation.
    recomputed = x @ torch.tensor(hamiltonian.J) + torch.tensor(hamiltonian.h)  # [C, N]
    assert torch.allclose(local, recomputed, rtol=0.0, atol=1e-10)


def test_metropolis_is_reproducible_and_respects_x0():
    hamiltonian = SYSTEMS["sk"]()
    a = metropolis(hamiltonian, 1.0, chains=50, sweeps=5, generator=_generator(1))
    b = metropolis(hamiltonian, 1.0, chains=50, sweeps=5, generator=_generator(1))
    assert torch.equal(a, b)
    x0 = -torch.ones(50, 10)
    kept = x0.clone()
    assert torch.equal(metropolis(hamiltonian, 1.0, chains=50, sweeps=0, x0=x0), x0.double())
    metropolis(hamiltonian, 1.0, chains=50, sweeps=3, x0=x0, generator=_generator(2))
    assert torch.equal(x0, kept)  # not modified in place


def test_metropolis_frozen_ferromagnet_stays_in_its_ground_state():
    # CW at beta = 20: a flip from all-up costs dE = 2 (N - 1) / N, accepted w.p. ~ 2e-16.
    hamiltonian = systems.curie_weiss(10)
    up = torch.ones(100, 10)
    x = metropolis(hamiltonian, 20.0, chains=100, sweeps=20, x0=up, generator=_generator(3))
    assert torch.equal(x, up.double())


def test_metropolis_float32():
    hamiltonian = SYSTEMS["cw"]()
    x, local = _metropolis(
        hamiltonian, 0.5, chains=2000, sweeps=50, dtype=torch.float32, generator=_generator(4)
    )
    assert x.dtype == torch.float32 and local.dtype == torch.float32
    recomputed = x @ torch.tensor(hamiltonian.J, dtype=torch.float32)
    assert torch.allclose(local, recomputed, atol=1e-5)
    _assert_matches_exact(hamiltonian, 0.5, x.double())


def test_metropolis_samples_independent_chains():
    hamiltonian = SYSTEMS["sk_field"]()
    x = metropolis_samples(hamiltonian, 0.5, count=3000, sweeps=60, generator=_generator(5))
    assert x.shape == (3000, 10)
    _assert_matches_exact(hamiltonian, 0.5, x)


def test_metropolis_samples_few_chains_record_every_sweeps():
    hamiltonian = SYSTEMS["sk_field"]()
    options = {"count": 3000, "sweeps": 10, "burn_in": 50, "chains": 400}
    x = metropolis_samples(hamiltonian, 0.5, generator=_generator(6), **options)
    assert x.shape == (3000, 10)
    _assert_matches_exact(hamiltonian, 0.5, x)
    # The same as running the chains by hand: burn_in + sweeps, then sweeps per record.
    g = _generator(6)
    first = metropolis(hamiltonian, 0.5, chains=400, sweeps=60, generator=g)
    second = metropolis(hamiltonian, 0.5, chains=400, sweeps=10, x0=first, generator=g)
    assert torch.equal(x[:400], first) and torch.equal(x[400:800], second)


# --------------------------------------------------------------------------------------
# Neural Metropolis-Hastings
# --------------------------------------------------------------------------------------


def test_neural_metropolis_with_exact_model_accepts_everything(emit):
    Model, _ = emit("sk", "exact", N=8, beta=1.0, seed=3)
    result = neural_metropolis(Model(), chains=2000, steps=20, generator=_generator(7))
    assert isinstance(result, NeuralMCMCResult)
    assert result.steps == 20 and result.samples.shape == (2000, 8)
    assert result.acceptance_rate == pytest.approx(1.0, abs=1e-12)


def test_neural_metropolis_corrects_an_imperfect_model(emit):
    beta, chains = 0.5, 10000
    Model, hamiltonian = emit("sk", "rs", N=8, beta=beta, seed=5)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = Model(init="random")  # small random parameters: Q far from P
    configurations = all_configurations(8)  # [256, 8]
    p = log_boltzmann(hamiltonian, beta, configurations).exp()  # [256]
    with torch.no_grad():
        q = model.log_prob(configurations).double().exp()  # [256]
    tv_model = 0.5 * float((q - p).abs().sum())

    result = neural_metropolis(model, chains=chains, steps=60, generator=_generator(8))
    x = result.samples.double()
    empirical = torch.bincount(config_index(x), minlength=256).double() / chains  # [256]
    tv_chains = 0.5 * float((empirical - p).abs().sum())
    assert tv_model > 0.3
    assert tv_chains < 0.5 * tv_model
    assert 0.2 < result.acceptance_rate < 0.9
    energy = hamiltonian.energy(x) / 8  # [C]
    exact = enumerate_exact(hamiltonian, beta)
    assert abs(float(energy.mean()) - exact.energy) < 5 * float(energy.std()) / chains**0.5
    # Without the correction the model's own samples are visibly biased.
    raw = model.sample(chains, generator=_generator(9)).double()
    raw_energy = hamiltonian.energy(raw) / 8
    assert abs(float(raw_energy.mean()) - exact.energy) > 10 * float(raw_energy.std()) / chains**0.5


def test_neural_metropolis_zero_steps_returns_model_samples(emit):
    Model, _ = emit("sk", "exact", N=8, beta=1.0, seed=3)
    model = Model()
    result = neural_metropolis(model, beta=1.0, chains=30, steps=0, generator=_generator(10))
    assert torch.equal(result.samples, model.sample(30, generator=_generator(10)))
    assert math.isnan(result.acceptance_rate) and result.steps == 0


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_bad_inputs_raise(emit):
    hamiltonian = SYSTEMS["cw"]()
    model = emit("sk", "exact", N=8, beta=1.0, seed=3)[0]()
    cases = [
        (lambda: metropolis(hamiltonian, 0.0, chains=1, sweeps=1), "beta must be a finite"),
        (lambda: metropolis(hamiltonian, math.inf, chains=1, sweeps=1), "beta must be a"),
        (lambda: metropolis(hamiltonian, None, chains=1, sweeps=1), "beta must be a"),
        (lambda: metropolis(hamiltonian, 1.0, chains=0, sweeps=1), "chains must be an integer"),
        (lambda: metropolis(hamiltonian, 1.0, chains=True, sweeps=1), "chains must be an"),
        (lambda: metropolis(hamiltonian, 1.0, chains=2, sweeps=-1), "sweeps must be an integer"),
        (lambda: metropolis(hamiltonian, 1.0, chains=2, sweeps=1.0), "sweeps must be an integer"),
        (lambda: metropolis(hamiltonian.J, 1.0, chains=2, sweeps=1), "expected a Hamiltonian"),
        (
            lambda: metropolis(hamiltonian, 1.0, chains=2, sweeps=1, x0=torch.ones(3, 10)),
            r"x0 must have shape \[2, 10\], got \[3, 10\]",
        ),
        (
            lambda: metropolis(hamiltonian, 1.0, chains=2, sweeps=1, x0=torch.zeros(2, 10)),
            r"x0 must contain only -1 and \+1",
        ),
        (
            lambda: metropolis(hamiltonian, 1.0, chains=2, sweeps=1, dtype=torch.int64),
            "dtype must be a floating torch dtype",
        ),
        (lambda: metropolis_samples(hamiltonian, 1.0, count=0, sweeps=1), "count must be an"),
        (
            lambda: metropolis_samples(hamiltonian, 1.0, count=5, sweeps=1, burn_in=-2),
            "burn_in must be an integer >= 0",
        ),
        (
            lambda: metropolis_samples(hamiltonian, 1.0, count=5, sweeps=1, chains=6),
            "chains must be <= count = 5",
        ),
        (
            lambda: metropolis_samples(hamiltonian, 1.0, count=5, sweeps=0, chains=2),
            "sweeps must be >= 1 when a chain records several samples",
        ),
        (lambda: neural_metropolis(model, chains=0, steps=1), "chains must be an integer >= 1"),
        (lambda: neural_metropolis(model, chains=2, steps=-1), "steps must be an integer >= 0"),
        (lambda: neural_metropolis(model, beta=-1, chains=2, steps=1), "beta must be a finite"),
        (lambda: neural_metropolis(hamiltonian, chains=2, steps=1), "a model needs N, beta"),
    ]
    for call, message in cases:
        with pytest.raises(ArnnGenError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
