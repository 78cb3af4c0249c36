"""arnn_gen.learn.observables against exact references (docs/physics.md section 5).

An exact network (H2ARNN, CW_N) has Q = P, so L = log Q + beta H = -log Z for every sample:
the variational and importance-sampled free energies are exact with zero spread and the
ESS equals the number of samples. An imperfect network (SK_RS from random parameters) is
checked against the exact enumeration of its own Q over all 2^8 states.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from spins import all_configurations

from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import curie_weiss_exact, enumerate_exact
from arnn_gen.learn.observables import (
    Estimates,
    estimate,
    estimates_from,
    overlap_histogram,
    overlaps,
)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------
# Exact models: zero-variance estimators
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.5, 1.0])
def test_exact_h2arnn_gives_exact_free_energy(emit, beta):
    Model, hamiltonian = emit("sk", "exact", N=8, beta=beta, seed=3)
    model = Model()
    exact = enumerate_exact(hamiltonian, beta)
    est = estimate(model, samples=4000, batch_size=1000, generator=_generator(0))

    assert (est.beta, est.N, est.samples) == (beta, 8, 4000)
    assert est.free_energy == pytest.approx(exact.free_energy, abs=1e-10)
    assert est.free_energy_std < 1e-10
    assert est.free_energy_sem < 1e-10
    assert est.free_energy_is == pytest.approx(exact.free_energy, abs=1e-10)
    assert est.free_energy_is_sem < 1e-10
    assert est.ess == pytest.approx(4000, rel=1e-6)
    # Sampled observables agree with enumeration within sampling error.
    x = model.sample(4000, generator=_generator(1))
    energy_se = float(model.energy(x).std()) / 8 / math.sqrt(4000)
    assert abs(est.energy - exact.energy) < 5 * energy_se
    assert abs(est.entropy - exact.entropy) < 5 * beta * energy_se  # s = beta (e - f)
    abs_m_se = float(x.sum(1).abs().std()) / 8 / math.sqrt(4000)
    assert abs(est.magnetization_abs - exact.magnetization_abs) < 5 * abs_m_se
    site_se = np.sqrt(np.clip(1 - exact.magnetizations**2, 1e-3, None) / 4000)
    assert np.all(np.abs(est.magnetizations - exact.magnetizations) < 5 * site_se)


def test_exact_curie_weiss_n200_gives_exact_free_energy(emit):
    Model, _ = emit("cw", "exact", N=200, beta=1.2)
    est = estimate(Model(), samples=2000, batch_size=700, generator=_generator(2))
    exact = curie_weiss_exact(200, 1.2)
    assert est.samples == 2000
    assert est.free_energy == pytest.approx(exact.free_energy, abs=1e-10)
    assert est.free_energy_std < 1e-10
    assert est.free_energy_is == pytest.approx(exact.free_energy, abs=1e-10)
    assert est.ess == pytest.approx(2000, rel=1e-6)
    assert abs(est.magnetization_abs - exact.magnetization_abs) < 0.03


def test_beta_option_overrides_model_beta(emit):
    # An exact model at beta = 1 judged at beta = 1: same as the default; judged at another
    # beta it is no longer exact, and the bound F[Q] >= F(beta) holds strictly.
    Model, hamiltonian = emit("sk", "exact", N=8, beta=1.0, seed=3)
    model = Model()
    same = estimate(model, beta=1.0, samples=500, generator=_generator(0))
    default = estimate(model, samples=500, generator=_generator(0))
    assert same == default
    other = estimate(model, beta=0.5, samples=4000, generator=_generator(0))
    assert other.beta == 0.5
    assert other.free_energy_std > 1e-3
    assert other.free_energy > enumerate_exact(hamiltonian, 0.5).free_energy


# --------------------------------------------------------------------------------------
# An imperfect model, against the enumeration of its own Q
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imperfect(emit):
    """SK_RS (N = 8, beta = 1) from random parameters, float64, and its exact Q."""
    Model, hamiltonian = emit("sk", "rs", N=8, beta=1.0, seed=5)
    with torch.random.fork_rng():
        torch.manual_seed(11)
        model = Model(init="random", dtype=torch.float64)
    x = all_configurations(8)  # [256, 8]
    with torch.no_grad():
        q = model.log_prob(x).exp()  # [256]
    assert float(q.sum()) == pytest.approx(1.0, abs=1e-12)
    return model, hamiltonian, x, q


def test_imperfect_model_bounds_and_identities(imperfect):
    model, hamiltonian, x, q = imperfect
    beta, n_spins, samples = 1.0, 8, 20000
    est = estimate(model, samples=samples, generator=_generator(3))
    exact = enumerate_exact(hamiltonian, beta)

    # Exact moments under Q of the per-spin L / (beta N), H / N, -log Q / N.
    energy = hamiltonian.energy(x) / n_spins  # [256]
    minus_log_q = -torch.log(q) / n_spins  # [256]
    free = energy - minus_log_q / beta  # [256] L / (beta N)

    def mean_se(values):
        mean = float(q @ values)
        return mean, math.sqrt(float(q @ (values - mean) ** 2) / samples)

    f_q, f_se = mean_se(free)
    e_q, e_se = mean_se(energy)
    s_q, s_se = mean_se(minus_log_q)

    # Variational bound, well beyond sampling error; the estimate matches F[Q].
    assert f_q > exact.free_energy
    assert est.free_energy - exact.free_energy > 10 * est.free_energy_sem
    assert abs(est.free_energy - f_q) < 5 * f_se
    assert est.free_energy_sem == pytest.approx(f_se, rel=0.1)
    # Importance sampling removes the bias.
    assert abs(est.free_energy_is - exact.free_energy) < 4 * est.free_energy_is_sem
    assert 1.0 < est.ess < samples
    # f[Q] = e - s / beta for the sample means, up to rounding.
    assert est.free_energy == pytest.approx(est.energy - est.entropy / beta, abs=1e-12)
    assert abs(est.energy - e_q) < 5 * e_se
    assert abs(est.entropy - s_q) < 5 * s_se
    # Magnetisations of Q.
    m_q = (q @ x).numpy()  # [8]
    site_se = np.sqrt((1 - m_q**2) / samples)
    assert np.all(np.abs(est.magnetizations - m_q) < 5 * site_se)
    abs_m, abs_m_se = mean_se(x.sum(1).abs() / n_spins)
    assert abs(est.magnetization_abs - abs_m) < 5 * abs_m_se


def test_estimate_is_reproducible_and_batches_cover_samples(imperfect):
    model = imperfect[0]
    a = estimate(model, samples=2500, batch_size=1000, generator=_generator(4))
    b = estimate(model, samples=2500, batch_size=1000, generator=_generator(4))
    assert a == b and hash(a) == hash(b)
    assert a.samples == 2500


# --------------------------------------------------------------------------------------
# estimates_from on hand-made numbers
# --------------------------------------------------------------------------------------


def test_estimates_from_matches_formulas():
    x = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, -1.0], [-1.0, -1.0, -1.0], [1, 1, 1]])
    log_q = torch.tensor([-1.0, -2.0, -3.5, -0.25])
    energy = torch.tensor([0.5, -1.0, 2.0, -3.0])
    beta, n_spins = 0.7, 3
    est = estimates_from(x, log_q, energy, beta)

    loss = log_q.double().numpy() + beta * energy.double().numpy()
    free = loss / (beta * n_spins)
    w = np.exp(-loss)
    assert est.free_energy == pytest.approx(free.mean(), rel=1e-14)
    assert est.free_energy_std == pytest.approx(free.std(ddof=1), rel=1e-14)
    assert est.free_energy_sem == pytest.approx(free.std(ddof=1) / 2, rel=1e-14)
    assert est.free_energy_is == pytest.approx(-np.log(w.mean()) / (beta * n_spins), rel=1e-14)
    expected_is_sem = w.std(ddof=1) / w.mean() / 2 / (beta * n_spins)
    assert est.free_energy_is_sem == pytest.approx(expected_is_sem, rel=1e-12)
    assert est.ess == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-12)
    assert est.energy == pytest.approx(energy.double().mean().item() / 3, rel=1e-14)
    assert est.entropy == pytest.approx(-log_q.double().mean().item() / 3, rel=1e-14)
    assert est.magnetization_abs == pytest.approx((1 / 3 + 1 / 3 + 1 + 1) / 4, rel=1e-14)
    np.testing.assert_allclose(est.magnetizations, [0.5, 0.0, -0.5])


def test_estimates_from_is_stable_for_huge_log_weights():
    # L of order 1e4: exp(-L) underflows, the log-sum-exp does not.
    x = torch.ones(3, 2)
    log_q = torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64)
    energy = torch.tensor([1e4, 1e4 + 1.0, 1e4 + 50.0], dtype=torch.float64)
    est = estimates_from(x, log_q, energy, 1.0)
    loss = log_q + energy
    expected = -(torch.logsumexp(-loss, 0) - math.log(3)) / 2
    assert est.free_energy_is == pytest.approx(float(expected), rel=1e-14)
    assert math.isfinite(est.free_energy_is_sem) and math.isfinite(est.ess)
    assert 1.0 <= est.ess <= 3.0


def test_single_sample_has_zero_spread():
    est = estimates_from(torch.ones(1, 4), torch.tensor([-1.0]), torch.tensor([2.0]), 1.0)
    assert est.samples == 1
    assert est.free_energy_std == 0.0 and est.free_energy_is_sem == 0.0
    assert est.ess == pytest.approx(1.0)
    assert est.free_energy == pytest.approx(est.free_energy_is)


def test_to_dict_is_json_and_keyed_by_fields():
    est = estimates_from(torch.ones(2, 3), torch.zeros(2), torch.zeros(2), 2.0)
    data = est.to_dict()
    assert list(data) == [f.name for f in dataclasses.fields(Estimates)]
    assert json.loads(json.dumps(data)) == data
    assert data["magnetizations"] == [1.0, 1.0, 1.0]
    assert Estimates(**{**data, "magnetizations": np.array(data["magnetizations"])}) == est
    with pytest.raises(ValueError):
        est.magnetizations[0] = 0.0  # read-only


# --------------------------------------------------------------------------------------
# Overlaps
# --------------------------------------------------------------------------------------


def test_overlaps_shape_and_values(imperfect):
    model = imperfect[0]
    x = model.sample(1001, generator=_generator(5))  # odd: the last row is unused
    q = overlaps(x)
    assert q.shape == (500,) and q.dtype == torch.float64
    assert bool(((q >= -1) & (q <= 1)).all())
    distance = (1 - q) * 8 / 2  # Hamming distances d, q = 1 - 2 d / N
    assert torch.equal(distance, distance.round())
    expected = (x[:500].double() * x[500:1000].double()).mean(1)
    assert torch.allclose(q, expected, atol=1e-15)


def test_overlap_of_a_concentrated_model_is_one(emit):
    # CW_N with a strong field at low temperature: all spins up with probability ~1 - 1e-16.
    Model, _ = emit("cw", "exact", N=20, beta=5.0, h=2.0)
    x = Model().sample(400, generator=_generator(6))
    assert bool((x == 1).all())
    assert torch.equal(overlaps(x), torch.ones(200, dtype=torch.float64))
    edges, density = overlap_histogram(x)
    assert density[-1] == pytest.approx(1.0 / (edges[-1] - edges[-2]))
    assert density[:-1].sum() == 0


def test_overlap_histogram_is_normalised(imperfect):
    x = imperfect[0].sample(3000, generator=_generator(7))
    for bins in (1, 8, 41):
        edges, density = overlap_histogram(x, bins=bins)
        assert edges.shape == (bins + 1,) and density.shape == (bins,)
        assert edges[0] == -1.0 and edges[-1] == 1.0
        assert float(np.sum(density * np.diff(edges))) == pytest.approx(1.0, abs=1e-12)
    edges, _ = overlap_histogram(x, bins=41)
    assert not np.any(np.isclose(edges, 0.0))  # odd bins: q = 0 is a bin centre


@pytest.mark.parametrize("n_spins, per_bin", [(6, 1), (20, 1), (40, 1), (41, 2), (100, 3)])
def test_default_overlap_bins_are_aligned_with_the_values_of_q(n_spins, per_bin):
    """Every bin holds per_bin of the N + 1 values of q, each strictly inside a bin, and the
    histogram of uniformly spread overlaps is flat (no empty or doubled bins)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.where(torch.rand(40000, n_spins, generator=generator) < 0.5, 1.0, -1.0)
    edges, density = overlap_histogram(x)
    values = (-n_spins + 2 * np.arange(n_spins + 1)) / n_spins
    counts, _ = np.histogram(values, bins=edges)
    assert len(density) <= 41
    assert np.all(counts[:-1] == per_bin) and 1 <= counts[-1] <= per_bin
    assert np.all(np.abs(values[:, None] - edges[None, :]) > 0.5 / n_spins)  # not on edges
    assert float(np.sum(density * np.diff(edges))) == pytest.approx(1.0, abs=1e-12)
    # q = a.b / N with independent uniform spins: binomial weights, no aliasing ripple
    from math import comb

    expected = np.array([comb(n_spins, k) for k in range(n_spins + 1)], dtype=float)
    expected = np.histogram(values, bins=edges, weights=expected / expected.sum())[0]
    assert np.allclose(density * np.diff(edges), expected, atol=0.01)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_bad_inputs_raise(imperfect):
    model = imperfect[0]
    x, log_q, energy = torch.ones(3, 2), torch.zeros(3), torch.zeros(3)
    cases = [
        (lambda: estimates_from(x, log_q, energy, 0.0), "beta must be a finite number > 0"),
        (lambda: estimates_from(x, log_q, energy, math.nan), "beta must be a finite number"),
        (lambda: estimates_from(x, log_q, energy, True), "beta must be a finite number"),
        (lambda: estimates_from(x, log_q, energy, "hot"), "beta must be a finite number"),
        (lambda: estimates_from(torch.ones(3), log_q, energy, 1.0), r"shape \[S, N\]"),
        (lambda: estimates_from(torch.zeros(3, 2), log_q, energy, 1.0), "only -1 and \\+1"),
        (lambda: estimates_from(x, torch.zeros(2), energy, 1.0), r"log_q must have shape \[3\]"),
        (lambda: estimates_from(x, log_q, torch.zeros(3, 1), 1.0), "energy must have shape"),
        (
            lambda: estimates_from(x, torch.full((3,), math.inf), energy, 1.0),
            "log_q must be finite",
        ),
        (lambda: estimate(model, samples=0), "samples must be an integer >= 1"),
        (lambda: estimate(model, samples=10, batch_size=2.5), "batch_size must be an integer"),
        (lambda: estimate(model, beta=-1.0, samples=10), "beta must be a finite number > 0"),
        (lambda: estimate(object()), "a model needs N, beta, sample, log_prob and energy"),
        (lambda: overlaps(torch.ones(1, 4)), "overlaps need at least 2 samples"),
        (lambda: overlap_histogram(torch.ones(4, 4), bins=0), "bins must be an integer >= 1"),
    ]
    for call, message in cases:
        with pytest.raises(ArnnGenError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
