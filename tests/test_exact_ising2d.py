"""Closed-form references (arnn_gen.exact.ising2d, docs/physics.md section 8) against frontier
elimination, enumeration, high-precision quadrature of Onsager's integral (mpmath), Catalan's
constant, and averages over SK couplings computed here."""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import mpmath
import numpy as np
import pytest

from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import (
    BETA_C,
    enumerate_exact,
    frontier_exact,
    kaufman_exact,
    kaufman_log_z,
    onsager_free_energy,
    sk_annealed_free_energy,
    sk_annealed_log_z,
)
from arnn_gen.exact.ising2d import _onsager_integral
from arnn_gen.systems import from_couplings, sherrington_kirkpatrick

BETAS = [0.25, BETA_C, 0.7]


def torus(L, W, J=1.0):  # noqa: N803
    """The L x W torus (rows of W sites) as an edge list, and the constant of its self-bonds.

    Bonds to the right and below, wrapping; a bond met twice (L or W = 2) adds up to 2J, a bond
    of a site to itself (L or W = 1) is the constant -J of the energy.
    """
    index = np.arange(L * W).reshape(L, W)
    couplings, constant = {}, 0.0
    for r, c in itertools.product(range(L), range(W)):
        for a, b in ((index[r, c], index[r, (c + 1) % W]), (index[r, c], index[(r + 1) % L, c])):
            if a == b:
                constant += J
            else:
                key = (min(a, b), max(a, b))
                couplings[key] = couplings.get(key, 0.0) + J
    edges = np.array(sorted(couplings), dtype=np.int64).reshape(-1, 2)
    weights = np.array([couplings[tuple(e)] for e in edges.tolist()])
    system = SimpleNamespace(N=L * W, h=np.zeros(L * W), edges=edges, weights=weights)
    return system, constant


def frontier_log_z(L, W, beta, J=1.0):  # noqa: N803
    system, constant = torus(L, W, J)
    return frontier_exact(system, beta).log_z + beta * constant


# --------------------------------------------------------------------------------------
# Kaufman
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("L", "W"), [(3, 3), (4, 4), (4, 6), (6, 4), (5, 5), (3, 5), (5, 3)])
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("J", [1.0, 0.6])
def test_kaufman_matches_frontier_elimination(L, W, beta, J):  # noqa: N803
    assert kaufman_log_z(L, W, beta, J) == pytest.approx(frontier_log_z(L, W, beta, J), abs=1e-11)


@pytest.mark.parametrize(("L", "W"), [(1, 1), (1, 4), (4, 1), (2, 2), (2, 3), (3, 2), (2, 5)])
def test_kaufman_on_thin_tori_with_doubled_bonds(L, W):  # noqa: N803
    for beta in BETAS:
        assert kaufman_log_z(L, W, beta) == pytest.approx(frontier_log_z(L, W, beta), abs=1e-11)


@pytest.mark.parametrize("beta", BETAS)
def test_kaufman_matches_enumeration_at_4x4(beta):
    system, _ = torus(4, 4)
    J = np.zeros((16, 16))  # noqa: N806
    J[system.edges[:, 0], system.edges[:, 1]] = system.weights
    reference = enumerate_exact(from_couplings(J + J.T, np.zeros(16)), beta)
    result = kaufman_exact(4, 4, beta)
    assert result.method == "kaufman"
    for key in ("log_z", "free_energy", "energy", "entropy"):
        assert getattr(result, key) == pytest.approx(getattr(reference, key), abs=1e-12), key
    np.testing.assert_array_equal(result.magnetizations, np.zeros(16))
    assert result.magnetization_abs is None
    assert json.loads(json.dumps(result.to_dict()))["magnetization_abs"] is None


@pytest.mark.parametrize(("L", "W"), [(4, 6), (6, 4), (5, 3)])
@pytest.mark.parametrize("beta", BETAS)
def test_kaufman_energy_matches_frontier_elimination(L, W, beta):  # noqa: N803
    system, _ = torus(L, W, 0.9)
    reference = frontier_exact(system, beta)
    result = kaufman_exact(L, W, beta, 0.9)
    for key in ("log_z", "free_energy", "energy", "entropy"):
        assert getattr(result, key) == pytest.approx(getattr(reference, key), abs=1e-11), key


@pytest.mark.parametrize(("L", "W"), [(4, 4), (4, 6), (2, 4)])
def test_kaufman_antiferromagnet_on_even_tori(L, W):  # noqa: N803
    system, _ = torus(L, W, -1.0)
    for beta in BETAS:
        reference = frontier_exact(system, beta)
        result = kaufman_exact(L, W, beta, -1.0)
        assert result.log_z == pytest.approx(reference.log_z, abs=1e-11)
        assert result.energy == pytest.approx(reference.energy, abs=1e-11)


def test_kaufman_special_couplings_and_refusals():
    assert kaufman_log_z(3, 5, 0.7, 0.0) == pytest.approx(15 * math.log(2.0), abs=1e-15)
    assert kaufman_exact(3, 5, 0.7, 0.0).energy == 0.0
    with pytest.raises(ArnnGenError, match=r"J < 0 only on tori with L and W even .* L=3, W=4"):
        kaufman_log_z(3, 4, 0.5, -1.0)
    with pytest.raises(ArnnGenError, match=r"the torus side L must be an integer >= 1, got 0"):
        kaufman_log_z(0, 4, 0.5)
    with pytest.raises(ArnnGenError, match=r"beta must be a finite number > 0"):
        kaufman_exact(4, 4, 0.0)
    with pytest.raises(ArnnGenError, match=r"overflows Kaufman's formula in float64"):
        kaufman_log_z(4, 4, 400.0)
    with pytest.raises(ArnnGenError, match=r"the coupling J must be a finite number"):
        kaufman_log_z(4, 4, 0.5, math.nan)


def test_kaufman_deep_in_both_phases():
    """Large tori far from beta_c against the leading terms of the series in each phase."""
    # High temperature: log Z / N = ln 2 + 2 ln cosh K + O(tanh^4 K) = ln 2 + K^2 + O(K^4).
    beta = 1e-3
    assert kaufman_log_z(32, 32, beta) / 1024 == pytest.approx(math.log(2) + beta**2, abs=1e-9)
    # Low temperature: two ground states of energy -2N, then gaps of 8: 2 N K + ln 2 + O(e^-8K).
    assert kaufman_log_z(16, 12, 20.0) == pytest.approx(2 * 192 * 20.0 + math.log(2), rel=1e-14)


# --------------------------------------------------------------------------------------
# Onsager
# --------------------------------------------------------------------------------------


def onsager_by_mpmath(beta, J=1.0):  # noqa: N803
    """-beta f from the integral of docs/physics.md section 8 as written, at 30 digits."""
    with mpmath.workdps(30):
        K = mpmath.mpf(beta) * abs(J)  # noqa: N806
        c2, s2 = mpmath.cosh(2 * K) ** 2, mpmath.sinh(2 * K) ** 2

        def integrand(t):
            return mpmath.log(c2 + mpmath.sqrt(s2**2 + 1 - 2 * s2 * mpmath.cos(t)))

        integral = mpmath.quad(integrand, [0, mpmath.pi / 8, mpmath.pi])
        return float(mpmath.log(2) / 2 + integral / (2 * mpmath.pi))


@pytest.mark.parametrize("beta", [0.05, 0.3, BETA_C, 0.45, 0.6, 1.5, 5.0])
def test_onsager_matches_high_precision_quadrature(beta):
    assert -beta * onsager_free_energy(beta) == pytest.approx(onsager_by_mpmath(beta), abs=1e-13)
    assert onsager_free_energy(beta, -1.0) == onsager_free_energy(beta, 1.0)
    assert onsager_free_energy(beta / 2, 2.0) == pytest.approx(
        onsager_free_energy(beta, 1.0) * 2, rel=1e-13
    )


def test_onsager_at_beta_c_is_the_catalan_closed_form():
    catalan = float(mpmath.catalan)
    expected = math.log(2.0) / 2 + 2 * catalan / math.pi
    assert BETA_C == pytest.approx(float(mpmath.log(1 + mpmath.sqrt(2)) / 2), rel=1e-16)
    assert -BETA_C * onsager_free_energy(BETA_C) == pytest.approx(expected, abs=2e-15)


def test_onsager_integral_agrees_with_adaptive_quadrature():
    scipy_integrate = pytest.importorskip("scipy.integrate")
    for K in (0.1, BETA_C, BETA_C * (1 + 1e-8), 0.8, 10.0):  # noqa: N806
        s = math.sinh(2 * K)
        t_c = abs(s * s - 1) / s  # where the integrand bends near beta_c

        def integrand(t, K=K):  # noqa: N803
            c, s = math.cosh(2 * K), math.sinh(2 * K)
            return math.log1p(math.sqrt(s**4 + 1 - 2 * s * s * math.cos(t)) / c**2)

        points = [t_c] if 0 < t_c < math.pi else None
        value, _ = scipy_integrate.quad(
            integrand, 0, math.pi, points=points, epsabs=1e-14, limit=200
        )
        assert _onsager_integral(K) == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize("beta", [0.3, BETA_C, 0.6])
def test_kaufman_converges_to_onsager(beta):
    limit = onsager_free_energy(beta)
    gaps = [abs(-kaufman_log_z(L, L, beta) / (beta * L * L) - limit) for L in (16, 64, 128)]
    assert gaps[2] < gaps[1] < gaps[0] or gaps[2] < 1e-14
    assert gaps[2] < 1e-4


def test_onsager_limits():
    assert onsager_free_energy(1e-4) == pytest.approx(-math.log(2) / 1e-4 - 1e-4, abs=1e-10)
    assert onsager_free_energy(30.0) == pytest.approx(-2.0, abs=1e-14)
    with pytest.raises(ArnnGenError, match=r"beta must be a finite number > 0"):
        onsager_free_energy(-1.0)


# --------------------------------------------------------------------------------------
# Annealed SK
# --------------------------------------------------------------------------------------


def gaussian_average_z(N, beta, J):  # noqa: N803
    """E Z over J_ij ~ Normal(0, J^2/N), by Gauss-Hermite quadrature of each pair's factor
    E exp(beta J_ij x_i x_j), multiplied over the pairs and summed over the 2^N configurations."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)  # for the weight exp(-z^2/2)
    weights = weights / math.sqrt(2 * math.pi)
    sigma = J / math.sqrt(N)
    total = 0.0
    for x in itertools.product((-1, 1), repeat=N):
        product = 1.0
        for i, j in itertools.combinations(range(N), 2):
            product *= float(np.dot(weights, np.exp(beta * sigma * nodes * x[i] * x[j])))
        total += product
    return total


@pytest.mark.parametrize("N", [2, 3, 4])
@pytest.mark.parametrize(("beta", "J"), [(0.5, 1.0), (1.7, 1.0), (0.8, 2.5)])
def test_annealed_log_z_is_the_log_of_the_average_z(N, beta, J):  # noqa: N803
    expected = math.log(gaussian_average_z(N, beta, J))
    assert sk_annealed_log_z(N, beta, J) == pytest.approx(expected, abs=1e-12)


def test_annealed_log_z_over_sk_instances():
    """Monte Carlo over the project's SK instances: the mean of Z (within 5 standard errors),
    and Jensen's bound E log Z <= log E Z."""
    N, beta = 4, 0.6  # noqa: N806
    configurations = np.array(list(itertools.product((-1.0, 1.0), repeat=N)))  # [16, N]
    z_values, log_z_values = [], []
    for seed in range(3000):
        J = sherrington_kirkpatrick(N, seed=seed).J  # noqa: N806
        energies = -0.5 * np.einsum("ci,ij,cj->c", configurations, J, configurations)
        z = np.exp(-beta * energies).sum()
        z_values.append(z)
        log_z_values.append(math.log(z))
    mean, error = np.mean(z_values), np.std(z_values) / math.sqrt(len(z_values))
    assert abs(mean - math.exp(sk_annealed_log_z(N, beta))) < 5 * error
    assert np.mean(log_z_values) < sk_annealed_log_z(N, beta)


def test_annealed_free_energy_is_the_large_n_limit():
    beta, J = 0.7, 1.3  # noqa: N806
    limit = sk_annealed_free_energy(beta, J)
    assert limit == -math.log(2) / beta - beta * J**2 / 4
    gaps = [
        abs(-sk_annealed_log_z(N, beta, J) / (beta * N) - limit) for N in (10, 100, 10**4, 10**6)
    ]
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] == pytest.approx(beta * J**2 / (4 * 10**6), rel=1e-6)  # the 1/N term


def test_annealed_refusals():
    with pytest.raises(ArnnGenError, match=r"the number of spins N must be an integer >= 1"):
        sk_annealed_log_z(0, 1.0)
    with pytest.raises(ArnnGenError, match=r"beta must be a finite number > 0"):
        sk_annealed_free_energy(0.0)
