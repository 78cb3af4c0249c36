"""Tests of arnn_gen.exact against independent naive references (docs/physics.md sections 1-3)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import (
    MAX_ENUMERATION_N,
    ExactResult,
    curie_weiss_exact,
    curie_weiss_mean_field,
    enumerate_configurations,
    enumerate_exact,
    exact,
    exact_conditionals,
    log_boltzmann,
    solve_magnetization,
)
from arnn_gen.systems import curie_weiss, from_couplings, sherrington_kirkpatrick

TOL = 1e-10


def random_hamiltonian(N: int, seed: int, field_scale: float = 0.5):  # noqa: N803
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(N, N))
    couplings = np.triu(a, 1) + np.triu(a, 1).T
    return from_couplings(couplings, field_scale * rng.normal(size=N))


def naive_energy(H, x) -> float:  # noqa: N803
    """H(x) by explicit loops over i < j."""
    total = 0.0
    for i in range(H.N):
        total -= H.h[i] * x[i]
        for j in range(i + 1, H.N):
            total -= H.J[i, j] * x[i] * x[j]
    return total


def naive_thermodynamics(H, beta: float) -> dict:  # noqa: N803
    """log Z and the averages by a plain Python loop over itertools.product (math.fsum)."""
    configs = list(itertools.product((1, -1), repeat=H.N))
    energies = [naive_energy(H, x) for x in configs]
    shift = max(-beta * e for e in energies)
    weights = [math.exp(-beta * e - shift) for e in energies]
    z = math.fsum(weights)
    mean = lambda values: math.fsum(w * v for w, v in zip(weights, values, strict=True)) / z  # noqa: E731
    log_z = shift + math.log(z)
    energy = mean(energies)
    return {
        "log_z": log_z,
        "free_energy": -log_z / (beta * H.N),
        "energy": energy / H.N,
        "entropy": (beta * energy + log_z) / H.N,
        "magnetization_abs": mean([abs(sum(x)) for x in configs]) / H.N,
        "magnetizations": [mean([x[i] for x in configs]) for i in range(H.N)],
    }


# --------------------------------------------------------------------------------------
# Enumeration
# --------------------------------------------------------------------------------------


def test_enumerate_configurations_order():
    configs = enumerate_configurations(4)
    expected = torch.tensor(list(itertools.product((1.0, -1.0), repeat=4)), dtype=torch.float64)
    assert torch.equal(configs, expected)
    assert torch.equal(enumerate_configurations(4, start=3, stop=9), expected[3:9])
    assert enumerate_configurations(3, dtype=torch.float32).dtype == torch.float32
    assert enumerate_configurations(0).shape == (1, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"N": -1}, r"N must be an integer >= 0, got -1"),
        ({"N": 3, "start": 5, "stop": 4}, r"start <= stop <= 2\^N = 8, got start=5, stop=4"),
        ({"N": 3, "stop": 9}, r"stop <= 2\^N = 8"),
        ({"N": 30}, r"limited to N <= 24 spins \(got N=30\)"),
        ({"N": 63, "stop": 1}, r"supports N <= 62"),
    ],
)
def test_enumerate_configurations_errors(kwargs, match):
    with pytest.raises(ArnnGenError, match=match):
        enumerate_configurations(**kwargs)


@pytest.mark.parametrize(
    ("N", "beta", "seed"),  # noqa: N803
    [(1, 0.7, 0), (2, 1.3, 1), (3, 0.4, 2), (5, 1.0, 3), (8, 0.9, 4), (8, 2.5, 5)],
)
def test_enumeration_matches_naive_loop(N, beta, seed):  # noqa: N803
    H = random_hamiltonian(N, seed)
    got = enumerate_exact(H, beta)
    ref = naive_thermodynamics(H, beta)
    assert got.method == "enumeration" and got.N == N and got.beta == beta
    for key in ("log_z", "free_energy", "energy", "entropy", "magnetization_abs"):
        assert abs(getattr(got, key) - ref[key]) < TOL, key
    np.testing.assert_allclose(got.magnetizations, ref["magnetizations"], rtol=0, atol=TOL)


def test_enumeration_of_free_spins_in_fields():
    # Independent spins: log Z = sum_i log 2 cosh(beta h_i), <x_i> = tanh(beta h_i).
    fields = np.array([0.3, -1.2, 0.0, 2.0])
    got = enumerate_exact(from_couplings(np.zeros((4, 4)), fields), 0.8)
    assert got.log_z == pytest.approx(np.sum(np.log(2 * np.cosh(0.8 * fields))), abs=1e-13)
    np.testing.assert_allclose(got.magnetizations, np.tanh(0.8 * fields), atol=1e-14)


def test_chunked_equals_unchunked():
    H = random_hamiltonian(9, 6)
    whole = enumerate_exact(H, 1.1, chunk_size=2**9)
    for chunk_size in (1, 7, 64):
        part = enumerate_exact(H, 1.1, chunk_size=chunk_size)
        for key in ("log_z", "free_energy", "energy", "entropy", "magnetization_abs"):
            assert abs(getattr(part, key) - getattr(whole, key)) < 1e-12, (chunk_size, key)
        np.testing.assert_allclose(part.magnetizations, whole.magnetizations, atol=1e-12)


def test_enumeration_survives_huge_energies():
    # exp(-beta H) overflows float64 here; the streaming log-sum-exp must not.
    H = random_hamiltonian(6, 7)
    hot = enumerate_exact(H, 1.0)
    cold = enumerate_exact(from_couplings(1e3 * H.J, 1e3 * H.h), 1.0, chunk_size=5)
    assert math.isfinite(cold.log_z) and cold.log_z > 700
    assert math.isfinite(hot.log_z)
    assert cold.entropy == pytest.approx(0.0, abs=1e-12)


def test_exact_result_to_dict_is_json():
    result = enumerate_exact(random_hamiltonian(3, 8), 0.5)
    data = result.to_dict()
    assert list(data) == [
        "N",
        "beta",
        "method",
        "log_z",
        "free_energy",
        "energy",
        "entropy",
        "magnetization_abs",
        "magnetizations",
    ]
    assert json.loads(json.dumps(data)) == data
    assert result == ExactResult(**{**data, "magnetizations": np.array(data["magnetizations"])})
    assert not result.magnetizations.flags.writeable


def test_log_boltzmann_is_normalised():
    H = random_hamiltonian(7, 9)
    x = enumerate_configurations(7)
    log_p = log_boltzmann(H, 1.4, x)
    assert log_p.shape == (2**7,) and log_p.dtype == torch.float64
    assert float(torch.logsumexp(log_p, 0)) == pytest.approx(0.0, abs=1e-12)
    assert float(log_boltzmann(H, 1.4, x[5])) == pytest.approx(float(log_p[5]), abs=1e-14)


def test_log_boltzmann_of_large_curie_weiss_uses_formula():
    # N = 1000 is far beyond enumeration: log Z comes from the binomial formula.
    H = curie_weiss(1000, J=1.0, h=0.1)
    x = torch.ones(2, 1000, dtype=torch.float64)
    x[1, :400] = -1.0
    log_p = log_boltzmann(H, 0.5, x)
    log_z = curie_weiss_exact(1000, 0.5, 1.0, 0.1).log_z
    torch.testing.assert_close(log_p, -0.5 * H.energy(x) - log_z, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------------------
# Conditionals
# --------------------------------------------------------------------------------------


def test_exact_conditionals_match_naive_marginal_ratios():
    N, beta = 5, 0.9  # noqa: N806
    H = random_hamiltonian(N, 10)
    weights = {
        x: math.exp(-beta * naive_energy(H, x)) for x in itertools.product((1, -1), repeat=N)
    }
    prefixes = [p for i in range(N) for p in itertools.product((1, -1), repeat=i)]
    assert len(prefixes) == 2**N - 1
    expected = []
    for prefix in prefixes:
        i = len(prefix)
        plus = math.fsum(w for x, w in weights.items() if x[:i] == prefix and x[i] == 1)
        total = math.fsum(w for x, w in weights.items() if x[:i] == prefix)
        expected.append(plus / total)
    got = exact_conditionals(H, beta, [np.array(p, dtype=float) for p in prefixes])
    assert got.shape == (len(prefixes),) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    # Small chunks, tensors and a mixed order give the same numbers.
    shuffled = list(reversed(prefixes))
    small = exact_conditionals(H, beta, [torch.tensor(p) for p in shuffled], chunk_size=3)
    np.testing.assert_allclose(small.numpy(), expected[::-1], rtol=0, atol=1e-12)


def test_exact_conditionals_chain_rule_gives_boltzmann():
    # prod_i P(x_i | x_<i) = P(x) for every x (docs/physics.md section 2).
    H = random_hamiltonian(6, 11)
    beta = 1.2
    x_all = enumerate_configurations(6)
    prefixes = [row[:i] for row in x_all for i in range(6)]
    p_plus = exact_conditionals(H, beta, prefixes).reshape(2**6, 6)
    p_site = torch.where(x_all > 0, p_plus, 1.0 - p_plus)
    torch.testing.assert_close(
        p_site.log().sum(1), log_boltzmann(H, beta, x_all), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize(
    ("prefixes", "match"),
    [
        ([[1.0, 1.0, 1.0, 1.0]], r"prefix 0 must be 1-D with length 0\.\.3 \(N=4\)"),
        ([[1.0], [[1.0]]], r"prefix 1 must be 1-D"),
        ([[1.0, 0.0]], r"prefix 0 must contain only -1 and \+1, got \[1\.0, 0\.0\]"),
        ([["a"]], r"prefix 0 is not a numeric array"),
    ],
)
def test_exact_conditionals_errors(prefixes, match):
    with pytest.raises(ArnnGenError, match=match):
        exact_conditionals(random_hamiltonian(4, 12), 1.0, prefixes)


def test_exact_conditionals_empty_list():
    assert exact_conditionals(random_hamiltonian(3, 13), 1.0, []).shape == (0,)


# --------------------------------------------------------------------------------------
# Curie-Weiss: formula, finite N and the thermodynamic limit
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("N", range(1, 17))  # noqa: N803
def test_curie_weiss_formula_matches_enumeration(N):  # noqa: N803
    for beta, coupling, field_value in [(0.3, 1.0, 0.0), (1.0, 1.0, 0.2), (2.2, 1.0, -0.4)]:
        formula = curie_weiss_exact(N, beta, coupling, field_value)
        enumerated = enumerate_exact(curie_weiss(N, coupling, field_value), beta)
        assert formula.method == "curie-weiss formula"
        assert formula.log_z == pytest.approx(enumerated.log_z, rel=1e-13, abs=1e-12)
        for key in ("free_energy", "energy", "entropy", "magnetization_abs"):
            assert abs(getattr(formula, key) - getattr(enumerated, key)) < TOL, (beta, key)
        np.testing.assert_allclose(
            formula.magnetizations, enumerated.magnetizations, rtol=0, atol=TOL
        )


def test_exact_dispatch():
    cw = exact(curie_weiss(40, J=1.5, h=0.1), 0.8)  # beyond enumeration
    assert cw.method == "curie-weiss formula"
    assert cw.to_dict() == curie_weiss_exact(40, 0.8, 1.5, 0.1).to_dict()
    sk = sherrington_kirkpatrick(10, seed=2)
    assert exact(sk, 1.0).to_dict() == enumerate_exact(sk, 1.0).to_dict()


def test_curie_weiss_formula_at_a_million_spins():
    betas = [0.5, 0.9, 1.1, 1.5]
    results = [curie_weiss_exact(10**6, beta) for beta in betas]
    for result in results:
        assert all(
            math.isfinite(v)
            for v in (result.log_z, result.free_energy, result.energy, result.entropy)
        )
        assert 0.0 <= result.magnetization_abs <= 1.0
        assert 0.0 <= result.entropy <= math.log(2.0) + 1e-12
        assert abs(result.magnetizations[0]) < 1e-9  # h = 0: <x_i> = 0 by symmetry
    # f increases with beta (df/dT = -s <= 0); s decreases, |m| and -e increase.
    free_energies = [r.free_energy for r in results]
    assert free_energies == sorted(free_energies)
    assert [r.entropy for r in results] == sorted((r.entropy for r in results), reverse=True)
    assert [r.magnetization_abs for r in results] == sorted(r.magnetization_abs for r in results)
    # And it sits on the thermodynamic limit to O(1/N).
    for beta, result in zip(betas, results, strict=True):
        mean_field = curie_weiss_mean_field(beta)
        assert abs(result.free_energy - mean_field.free_energy) < 1e-5
        # |m| carries O(1/sqrt(N)) fluctuations: sqrt(2 / (pi N (1 - beta J))) when paramagnetic.
        assert abs(result.magnetization_abs - mean_field.magnetization) < 5e-3


@pytest.mark.parametrize("beta", [0.5, 0.8])
def test_paramagnetic_one_over_n_correction(beta):
    # For beta J < 1, h = 0: Z_N ~ 2^N exp(-beta J / 2) / sqrt(1 - beta J) (the Gaussian
    # integral over M / sqrt(N)), hence N (f_N - f_inf) -> (1/beta)(beta J/2 + log(1 - beta J)/2).
    coupling = 1.0
    limit = (beta * coupling / 2 + 0.5 * math.log(1 - beta * coupling)) / beta
    f_inf = curie_weiss_mean_field(beta, coupling).free_energy
    assert f_inf == pytest.approx(-math.log(2.0) / beta, abs=1e-15)
    errors = []
    for N in (10**3, 10**4, 10**5):  # noqa: N806
        f_n = curie_weiss_exact(N, beta, coupling).free_energy
        errors.append(abs(N * (f_n - f_inf) - limit))
    assert errors[-1] < 1e-4
    for coarse, fine in itertools.pairwise(errors):
        assert 9.0 < coarse / fine < 11.0  # the remaining error is O(1/N)


@pytest.mark.parametrize(("beta", "field_value"), [(1.5, 0.0), (2.0, 0.0), (1.0, 0.3)])
def test_finite_size_error_decays_like_one_over_n(beta, field_value):
    f_inf = curie_weiss_mean_field(beta, 1.0, field_value).free_energy
    errors = [
        abs(curie_weiss_exact(N, beta, 1.0, field_value).free_energy - f_inf)
        for N in (10**3, 10**4, 10**5)
    ]
    for coarse, fine in itertools.pairwise(errors):
        assert 9.0 < coarse / fine < 11.0


@pytest.mark.parametrize(
    ("beta", "coupling", "field_value"),
    [(0.5, 1.0, 0.0), (1.0, 1.0, 0.0), (1.01, 1.0, 0.0), (1.5, 1.0, 0.0), (4.0, 1.0, 0.0),
     (40.0, 1.0, 0.0), (1.5, 1.0, 0.05), (1.5, 1.0, -0.05), (3.0, 2.0, -0.3),
     (0.7, -1.0, 0.4), (2.0, 0.0, 0.3)],
)  # fmt: skip
def test_mean_field_magnetization(beta, coupling, field_value):
    m = solve_magnetization(beta, coupling, field_value)
    assert abs(m - math.tanh(beta * (coupling * m + field_value))) < 1e-14
    if field_value == 0.0:
        assert (m > 0.0) if beta * coupling > 1.0 else (m == 0.0)
    else:
        assert math.copysign(1.0, m) == math.copysign(1.0, field_value)
    result = curie_weiss_mean_field(beta, coupling, field_value)
    assert result.magnetization == m
    expected_f = (
        coupling * m**2 / 2 - math.log(2 * math.cosh(beta * (coupling * m + field_value))) / beta
    )
    assert result.free_energy == pytest.approx(expected_f, abs=1e-14)
    assert result.energy == pytest.approx(-coupling * m**2 / 2 - field_value * m, abs=1e-15)
    assert result.entropy == pytest.approx(beta * (result.energy - result.free_energy), abs=1e-14)
    # The entropy is the binary entropy of (1 + m) / 2 (docs/physics.md section 3).
    p = (1 + m) / 2
    binary = -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)
    assert result.entropy == pytest.approx(binary, abs=1e-9)


def test_mean_field_picks_global_minimum_against_field():
    # beta J = 3 with a small field: the metastable branch opposite to h must be rejected.
    beta, field_value = 3.0, -0.02
    m = solve_magnetization(beta, 1.0, field_value)
    grid = np.linspace(-1, 1, 200001)
    landau = grid**2 / 2 - np.log(2 * np.cosh(beta * (grid + field_value))) / beta
    assert m < 0 and abs(m - grid[np.argmin(landau)]) < 1e-4


# --------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------


def test_enumeration_refused_above_limit():
    H = random_hamiltonian(30, 14)
    message = (
        r"exact enumeration is limited to N <= 24 spins \(got N=30\); "
        r"the Curie-Weiss formula covers any N"
    )
    assert MAX_ENUMERATION_N == 24
    for call in (
        lambda: exact(H, 1.0),
        lambda: enumerate_exact(H, 1.0),
        lambda: exact_conditionals(H, 1.0, [[]]),
        lambda: log_boltzmann(H, 1.0, torch.ones(30)),
    ):
        with pytest.raises(ArnnGenError, match=message):
            call()


@pytest.mark.parametrize("beta", [0.0, -1.0, math.nan, math.inf, "hot", True])
def test_bad_beta_refused(beta):
    H = random_hamiltonian(3, 15)
    for call in (
        lambda: exact(H, beta),
        lambda: enumerate_exact(H, beta),
        lambda: exact_conditionals(H, beta, [[]]),
        lambda: log_boltzmann(H, beta, torch.ones(3)),
        lambda: curie_weiss_exact(5, beta),
        lambda: curie_weiss_mean_field(beta),
        lambda: solve_magnetization(beta),
    ):
        with pytest.raises(ArnnGenError, match=r"beta must be a finite number > 0, got"):
            call()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: curie_weiss_exact(0, 1.0), r"N must be an integer >= 1, got 0"),
        (lambda: curie_weiss_exact(5, 1.0, J=math.nan), r"coupling J must be a finite number"),
        (lambda: curie_weiss_exact(5, 1.0, h=math.inf), r"field h must be a finite number"),
        (
            lambda: enumerate_exact(curie_weiss(3), 1.0, chunk_size=0),
            r"chunk_size must be an integer >= 1",
        ),
        (lambda: exact("not a system", 1.0), r"expected a Hamiltonian, got str"),
    ],
)
def test_other_refusals(call, match):
    with pytest.raises(ArnnGenError, match=match):
        call()
