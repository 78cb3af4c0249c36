"""Stage 2: the SymPy derivation against brute-force marginals (docs/physics.md section 2)."""

from __future__ import annotations

import io
import itertools

import matplotlib
import numpy as np
import pytest
import sympy as sp

from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import (
    GROUPS,
    SYMBOLS,
    build_hamiltonian,
    conditional_function,
    derive_conditional,
    expand_sums,
    split_by_site,
)

matplotlib.use("Agg")
from matplotlib.mathtext import math_to_image  # noqa: E402

S = SYMBOLS


def random_system(N: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    J = np.triu(rng.normal(size=(N, N)), 1)
    return J + J.T, rng.normal(size=N)


def brute_force_conditional(J, h, beta, prefix) -> float:
    """P(x_i = +1 | x_<i = prefix) by summing exp(-beta H) over all completions."""
    N, i = len(h), len(prefix)
    weights = {+1: 0.0, -1: 0.0}
    for rest in itertools.product((1, -1), repeat=N - i):
        x = np.array(tuple(prefix) + rest, dtype=float)
        energy = -0.5 * x @ J @ x - h @ x
        weights[rest[0]] += np.exp(-beta * energy)
    return weights[1] / (weights[1] + weights[-1])


@pytest.fixture(scope="module")
def generic():
    return derive_conditional()


@pytest.mark.parametrize("N", [4, 5, 6])
def test_conditional_equals_brute_force_marginals(generic, N):
    J, h = random_system(N, seed=N)
    for site in range(N):
        concrete = generic.at(N, site)
        for beta in (0.3, 1.0, 2.5):
            conditional = conditional_function(concrete, J, h, beta)
            for prefix in itertools.product((1, -1), repeat=site):
                expected = brute_force_conditional(J, h, beta, prefix)
                assert abs(conditional(prefix) - expected) < 1e-12


def test_groups_add_up_to_the_hamiltonian():
    N, site = 6, 2
    hamiltonian = build_hamiltonian(N)
    groups = split_by_site(hamiltonian, site, N)
    assert tuple(groups) == GROUPS
    total = sp.Add(*(piece.expr() for pieces in groups.values() for piece in pieces))
    assert sp.expand(expand_sums(total) - expand_sums(hamiltonian)) == 0


def test_each_group_holds_the_right_spins():
    N, site = 6, 2
    groups = split_by_site(build_hamiltonian(N), site, N)

    def spins(pieces):
        found = set()
        for piece in pieces:
            for node in sp.preorder_traversal(expand_sums(piece.expr())):
                if isinstance(node, sp.Indexed) and node.base == S.x:
                    found.add(int(node.indices[0]))
        return found

    assert spins(groups["earlier-earlier"]) == {0, 1}
    assert spins(groups["earlier-site"]) == {0, 1, 2}
    assert spins(groups["site-later"]) == {2, 3, 4, 5}
    assert spins(groups["earlier-later"]) == {0, 1, 3, 4, 5}
    assert spins(groups["later-later"]) == {3, 4, 5}


def test_earlier_earlier_terms_cancel(generic):
    """The conditional holds no coupling or field of the earlier spins among themselves."""
    N, site = 6, 3
    expr = generic.at(N, site).sympy()
    for a, b in itertools.combinations(range(site), 2):
        assert not expr.has(S.J[a, b])
    for a in range(site):
        assert not expr.has(S.h[a])
    # ... and it does hold every coupling that involves a later or the current spin
    assert expr.has(S.J[0, 5]) and expr.has(S.J[4, 5]) and expr.has(S.h[5])


def test_generic_structure(generic):
    i, l = S.i, S.l
    assert generic.shift == S.J[i, l]
    assert generic.cavity_field == S.h[l] + sp.Sum(S.J[S.s, l] * S.x[S.s], (S.s, 0, i - 1))
    # the residual field is the cavity field at l = i: the recurrence of section 2
    assert generic.phi_site == generic.cavity_field.subs(l, i)
    assert generic.later_later == sp.Sum(
        S.J[l, S.lp] * S.x[l] * S.x[S.lp], (S.lp, l + 1, S.N - 1), (l, i + 1, S.N - 1)
    )


def test_concrete_sizes_have_no_sum_left(generic):
    concrete = generic.at(4, 1)
    assert not concrete.sympy().has(sp.Sum)
    # site N-1 has no later spins: rho^+ = rho^- = 1
    last = generic.at(4, 3)
    assert last.rho_plus == 1 and last.rho_minus == 1


def test_concrete_derivation_directly(generic):
    direct = derive_conditional(N=5, site=2)
    assert sp.simplify(direct.sympy() - generic.at(5, 2).sympy()) == 0


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_size_is_refused(generic, bad):
    with pytest.raises(ArnnGenError, match="N must be a positive integer"):
        generic.at(bad, 0)


def test_bad_site_is_refused(generic):
    with pytest.raises(ArnnGenError, match=r"site must be an integer in \[0, 3\]"):
        generic.at(4, 4)
    with pytest.raises(ArnnGenError, match="give both N and site"):
        derive_conditional(N=4)


def test_latex_renders_with_mathtext(generic):
    lines = generic.latex_lines()
    assert lines[0].startswith(r"P(x_{i} = +1 \mid x_{<i}) = \sigma")
    assert r"\rho^{\pm}_{i}" in lines[2]
    for line in lines:
        math_to_image(f"${line}$", io.BytesIO(), format="png")
    assert generic.latex() == r" \\ ".join(lines)


# -- the first layer: H(x) by sites and the cavity fields' update ---------------------------


def test_energy_is_the_sum_over_sites_of_minus_x_phi():
    """H(x) = sum_i -x_i phi_{i,i}, checked against the Hamiltonian by SymPy and here on
    every configuration of a random N = 5 system."""
    from arnn_gen.symbolic.derive import site_energy

    S = SYMBOLS
    energy = site_energy()
    assert energy == -S.x[S.i] * S.phi[S.i, S.i]
    rng = np.random.default_rng(3)
    N = 5
    J = np.triu(rng.normal(size=(N, N)), 1)
    h = rng.normal(size=N)
    for x in itertools.product((-1, 1), repeat=N):
        phi = [h[i] + sum(J[s, i] * x[s] for s in range(i)) for i in range(N)]
        by_sites = sum(
            float(energy.subs({S.x[S.i]: x[i], S.phi[S.i, S.i]: phi[i]})) for i in range(N)
        )
        direct = -sum(J[s, l] * x[s] * x[l] for s in range(N) for l in range(s + 1, N)) - h @ x
        assert by_sites == pytest.approx(direct, abs=1e-12)


def test_cavity_increment_is_the_coupling_times_the_spin():
    from arnn_gen.symbolic.derive import cavity_increment

    S = SYMBOLS
    assert cavity_increment() == S.J[S.i, S.l] * S.x[S.i]


def test_the_first_layer_checks_can_fail():
    """A derivation whose site field lost h_i, or whose shift is doubled, is refused."""
    import dataclasses

    from arnn_gen.symbolic.derive import cavity_increment, site_energy

    S = SYMBOLS
    d = derive_conditional()
    no_field = dataclasses.replace(d, phi_site=d.phi_site - S.h[S.i])
    with pytest.raises(ArnnGenError, match="earlier-site group"):
        site_energy(no_field)
    doubled = dataclasses.replace(d, shift=2 * d.shift)
    with pytest.raises(ArnnGenError, match="is not J_il x_i"):
        cavity_increment(doubled)
