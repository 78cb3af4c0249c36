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
