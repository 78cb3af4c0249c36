"""Frontier elimination (arnn_gen.exact.frontier, docs/physics.md section 7) and the route
chosen by arnn_gen.exact.exact, against enumeration, brute-force sums and transfer matrices
computed here."""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import (
    MAX_FRONTIER_WIDTH,
    FrontierTables,
    curie_weiss_exact,
    elimination_width,
    enumerate_exact,
    exact,
    exact_conditionals,
    frontier_conditionals,
    frontier_exact,
    frontier_log_prob,
    frontier_tables,
    kaufman_exact,
)
from arnn_gen.exact import frontier as frontier_module
from arnn_gen.systems import curie_weiss, from_couplings, sherrington_kirkpatrick

TOL = 1e-10


# --------------------------------------------------------------------------------------
# Systems built here
# --------------------------------------------------------------------------------------


def edge_system(N, edges, weights, h, **extra):  # noqa: N803
    """A duck-typed sparse system: N, h, edges [E, 2] (i < j), weights [E]."""
    edges = np.sort(np.asarray(edges, dtype=np.int64).reshape(-1, 2), axis=1)
    return SimpleNamespace(
        N=N, h=np.asarray(h, dtype=float), edges=edges, weights=np.asarray(weights, float), **extra
    )


def lattice_edges(L, W, periodic):  # noqa: N803
    """Row-major L x W square lattice (rows of W sites): right and lower neighbours."""
    index = np.arange(L * W).reshape(L, W)
    edges = []
    for r, c in itertools.product(range(L), range(W)):
        if c + 1 < W or periodic:
            edges.append((index[r, c], index[r, (c + 1) % W]))
        if r + 1 < L or periodic:
            edges.append((index[r, c], index[(r + 1) % L, c]))
    return np.array(edges)


def lattice(L, W, periodic, seed, field_scale=0.3):  # noqa: N803
    rng = np.random.default_rng(seed)
    edges = lattice_edges(L, W, periodic)
    return edge_system(
        L * W, edges, rng.normal(size=len(edges)), field_scale * rng.normal(size=L * W)
    )


def random_tree(N, seed):  # noqa: N803
    rng = np.random.default_rng(seed)
    edges = [(int(rng.integers(0, i)), i) for i in range(1, N)]
    return edge_system(N, edges, rng.normal(size=N - 1), 0.4 * rng.normal(size=N))


def random_graph(N, p, seed, field_scale=0.4):  # noqa: N803
    rng = np.random.default_rng(seed)
    edges = [(i, j) for i in range(N) for j in range(i + 1, N) if rng.random() < p]
    return edge_system(N, edges, rng.normal(size=len(edges)), field_scale * rng.normal(size=N))


def random_dense(N, seed):  # noqa: N803
    rng = np.random.default_rng(seed)
    a = np.triu(rng.normal(size=(N, N)), 1) / math.sqrt(N)
    return from_couplings(a + a.T, 0.3 * rng.normal(size=N))


def couplings_of(system):
    """Dense J [N, N] of any system built here."""
    if hasattr(system, "edges"):
        J = np.zeros((system.N, system.N))  # noqa: N806
        for (i, j), w in zip(system.edges, system.weights, strict=True):
            J[i, j] += w
            J[j, i] += w
        return J
    return np.array(system.J)


def dense_of(system):
    return from_couplings(couplings_of(system), np.array(system.h))


def permuted(system, order):
    """The dense system whose site p is site order[p] of ``system``."""
    J = couplings_of(system)  # noqa: N806
    return from_couplings(J[np.ix_(order, order)], np.array(system.h)[order])


def active_sizes_by_definition(system, order):
    """|S_k| = #{l >= k : J_{s,l} != 0 for some s < k}, positions along the order."""
    J = couplings_of(system)[np.ix_(order, order)]  # noqa: N806
    N = system.N  # noqa: N806
    return [
        sum(1 for l in range(k, N) if any(J[s, l] != 0 for s in range(k))) for k in range(N + 1)
    ]


def random_spins(B, N, seed):  # noqa: N803
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.choice([-1.0, 1.0], size=(B, N)), dtype=torch.float64)


FAMILIES = {
    "dense": lambda: random_dense(9, 1),
    "open 3x4": lambda: lattice(3, 4, False, 2),
    "periodic 3x4": lambda: lattice(3, 4, True, 3),
    "tree": lambda: random_tree(12, 4),
    "sparse": lambda: random_graph(11, 0.3, 5),
    "no couplings": lambda: edge_system(5, np.zeros((0, 2)), [], [0.3, -0.2, 0.0, 1.0, 0.5]),
    "one spin": lambda: edge_system(1, np.zeros((0, 2)), [], [0.7]),
    "two components": lambda: edge_system(
        6, [(0, 2), (2, 4), (1, 3), (3, 5)], [1, -1, 0.5, 2], [0.1] * 6
    ),
}  # fmt: skip


def assert_matches(result, reference, tol=TOL):
    assert result.N == reference.N
    assert result.log_z == pytest.approx(reference.log_z, abs=tol * max(1.0, abs(reference.log_z)))
    for key in ("free_energy", "energy", "entropy"):
        assert getattr(result, key) == pytest.approx(getattr(reference, key), abs=tol), key
    np.testing.assert_allclose(result.magnetizations, reference.magnetizations, atol=tol)


# --------------------------------------------------------------------------------------
# Width
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_width_is_the_largest_active_set(name):
    system = FAMILIES[name]()
    rng = np.random.default_rng(7)
    for order in (np.arange(system.N), rng.permutation(system.N), rng.permutation(system.N)):
        assert elimination_width(system, order) == max(active_sizes_by_definition(system, order))


def test_width_of_known_orders():
    for L, W in ((2, 3), (5, 4), (4, 7)):  # noqa: N806
        assert elimination_width(lattice(L, W, False, 0)) == W  # row-major, rows of W
        periodic = lattice(L + 1, W, True, 0) if L + 1 >= 3 and W >= 3 else None
        if periodic is not None:
            assert W < elimination_width(periodic) <= 2 * W
    chain = edge_system(30, [(i, i + 1) for i in range(29)], np.ones(29), np.zeros(30))
    assert elimination_width(chain) == 1
    star = edge_system(8, [(0, i) for i in range(1, 8)], np.ones(7), np.zeros(8))
    assert elimination_width(star) == 7  # centre first: every leaf waits
    assert elimination_width(star, np.arange(8)[::-1].copy()) == 1  # centre last
    assert elimination_width(random_dense(10, 0)) == 9


# --------------------------------------------------------------------------------------
# Thermodynamics
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("beta", [0.3, 1.0, 2.5])
def test_frontier_exact_matches_enumeration(name, beta):
    system = FAMILIES[name]()
    reference = enumerate_exact(dense_of(system), beta)
    rng = np.random.default_rng(11)
    for order in (None, rng.permutation(system.N)):
        result = frontier_exact(system, beta, order)
        assert result.method == "frontier elimination"
        assert_matches(result, reference)
        assert result.magnetization_abs == pytest.approx(reference.magnetization_abs, abs=TOL)


def test_dense_and_sparse_inputs_agree():
    system = random_graph(10, 0.4, 8)
    sparse, dense = frontier_exact(system, 0.8), frontier_exact(dense_of(system), 0.8)
    assert_matches(sparse, dense, tol=1e-13)
    torch_system = edge_system(10, torch.as_tensor(system.edges), system.weights, system.h)
    assert frontier_exact(torch_system, 0.8) == sparse


@pytest.mark.parametrize("budget_tables", [1, 2, 3, 5])
def test_checkpointed_forward_sweep_is_exact(monkeypatch, budget_tables):
    """Tables recomputed from bisection checkpoints give the same averages."""
    system = lattice(3, 5, False, 12)
    reference = enumerate_exact(dense_of(system), 0.9)
    table_bytes = 8 * 2 ** (elimination_width(system) + 1)
    monkeypatch.setattr(frontier_module, "_TABLE_BUDGET_BYTES", budget_tables * table_bytes)
    result = frontier_exact(system, 0.9, np.random.default_rng(0).permutation(15))
    assert_matches(result, reference)


def transfer_matrix_log_z(couplings, fields, beta):
    """log Z of the open chain x_0 - x_1 - ... by 2x2 transfer matrices, rescaled each step."""
    spins = np.array([-1.0, 1.0])
    vector = np.exp(beta * fields[0] * spins)
    log_scale = 0.0
    for J, h in zip(couplings, fields[1:], strict=True):  # noqa: N806
        matrix = np.exp(beta * J * np.outer(spins, spins) + beta * h * spins[None, :])
        vector = vector @ matrix
        top = vector.max()
        vector, log_scale = vector / top, log_scale + math.log(top)
    return log_scale + math.log(vector.sum())


@pytest.mark.parametrize("beta", [0.5, 3.0, 40.0])
def test_long_chain_against_transfer_matrices(beta):
    rng = np.random.default_rng(21)
    N = 500  # noqa: N806
    couplings, fields = rng.normal(size=N - 1), 0.5 * rng.normal(size=N)
    chain = edge_system(N, [(i, i + 1) for i in range(N - 1)], couplings, fields)
    result = frontier_exact(chain, beta)
    assert result.log_z == pytest.approx(transfer_matrix_log_z(couplings, fields, beta), rel=1e-12)
    # <H> = -d log Z / d beta, by a central difference of the transfer-matrix log Z.
    step = 1e-5 * beta
    derivative = (
        transfer_matrix_log_z(couplings, fields, beta + step)
        - transfer_matrix_log_z(couplings, fields, beta - step)
    ) / (2 * step)
    assert result.energy == pytest.approx(-derivative / N, rel=1e-7, abs=1e-8)
    assert 0.0 <= result.magnetization_abs <= 1.0


def test_magnetization_abs_is_optional(monkeypatch):
    system = lattice(3, 3, True, 13)
    reference = enumerate_exact(dense_of(system), 0.7)
    computed = frontier_exact(system, 0.7)
    assert computed.magnetization_abs == pytest.approx(reference.magnetization_abs, abs=TOL)
    skipped = frontier_exact(system, 0.7, with_magnetization_abs=False)
    assert skipped.magnetization_abs is None
    assert json.loads(json.dumps(skipped.to_dict()))["magnetization_abs"] is None
    assert skipped.log_z == computed.log_z
    monkeypatch.setattr(frontier_module, "MAX_MAGNETIZATION_WORK", 10)
    assert frontier_exact(system, 0.7).magnetization_abs is None
    with pytest.raises(
        ArnnGenError,
        match=r"<\|M\|> by frontier elimination needs count tables of .* the limit is 10$",
    ):
        frontier_exact(system, 0.7, with_magnetization_abs=True)


# --------------------------------------------------------------------------------------
# log P and the conditionals
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dense", "periodic 3x4", "tree", "sparse"])
def test_log_prob_is_minus_beta_h_minus_log_z(name):
    system = FAMILIES[name]()
    dense = dense_of(system)
    x = random_spins(20, system.N, 3)
    expected = -1.3 * dense.energy(x) - enumerate_exact(dense, 1.3).log_z
    order = np.random.default_rng(1).permutation(system.N)
    torch.testing.assert_close(frontier_log_prob(system, 1.3, x), expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(
        frontier_log_prob(system, 1.3, x, order), expected, atol=1e-10, rtol=0
    )
    one = frontier_log_prob(system, 1.3, x[0].numpy())
    assert one.shape == () and float(one) == pytest.approx(float(expected[0]), abs=1e-10)


@pytest.mark.parametrize("name", ["dense", "open 3x4", "periodic 3x4", "tree", "sparse"])
@pytest.mark.parametrize("beta", [0.4, 1.7])
def test_conditionals_match_enumeration_in_natural_order(name, beta):
    system = FAMILIES[name]()
    dense = dense_of(system)
    x = random_spins(6, system.N, 4)
    result = frontier_conditionals(system, beta, x)
    assert result.shape == (6, system.N)
    for b in range(6):
        expected = exact_conditionals(dense, beta, [x[b, :p] for p in range(system.N)])
        torch.testing.assert_close(result[b], expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(frontier_conditionals(system, beta, x[2]), result[2])


@pytest.mark.parametrize("name", ["dense", "periodic 3x4", "sparse"])
def test_conditionals_along_a_permuted_order(name):
    system = FAMILIES[name]()
    order = np.random.default_rng(5).permutation(system.N)
    relabelled = permuted(system, order)
    x = random_spins(5, system.N, 6)
    result = frontier_conditionals(system, 1.1, x, order)
    for b in range(5):
        along = x[b, torch.as_tensor(order)]
        expected = exact_conditionals(relabelled, 1.1, [along[:p] for p in range(system.N)])
        torch.testing.assert_close(result[b], expected, atol=1e-12, rtol=0)
    same = frontier_conditionals(relabelled, 1.1, x[:, torch.as_tensor(order)])
    torch.testing.assert_close(result, same, atol=1e-12, rtol=0)


def test_log_conditionals_sum_to_log_prob():
    system = lattice(4, 4, True, 9)
    order = np.random.default_rng(2).permutation(16)
    x = random_spins(30, 16, 7)
    p_plus = frontier_conditionals(system, 0.8, x, order)  # [B, N] by position
    along = x[:, torch.as_tensor(order)]
    log_p = torch.where(along > 0, p_plus, 1.0 - p_plus).log().sum(dim=1)
    torch.testing.assert_close(log_p, frontier_log_prob(system, 0.8, x, order), atol=1e-10, rtol=0)


# --------------------------------------------------------------------------------------
# The tables of the exact sparse network
# --------------------------------------------------------------------------------------


def brute_force_tables(system, beta, order):
    """F_i and b^{+-}_{i,c} straight from their definition (docs/physics.md section 7)."""
    J = couplings_of(system)[np.ix_(order, order)]  # noqa: N806
    h = np.array(system.h)[order]
    N = system.N  # noqa: N806
    frontiers, biases = [], []
    for i in range(N):
        frontier = [l for l in range(i + 1, N) if any(J[s, l] != 0 for s in range(i))]
        later = list(range(i + 1, N))
        sums = {sign: np.zeros(2 ** len(frontier)) for sign in (1, -1)}
        for values in itertools.product((-1.0, 1.0), repeat=len(later)):
            x = dict(zip(later, values, strict=True))
            t = sum(2**m for m, l in enumerate(frontier) if x[l] > 0)
            inner = sum(h[l] * x[l] for l in later if l not in frontier)
            inner += sum(J[l, m] * x[l] * x[m] for l, m in itertools.combinations(later, 2))
            coupling = sum(J[i, l] * x[l] for l in later)
            for sign in (1, -1):
                sums[sign][t] += math.exp(beta * (inner + sign * coupling))
        frontiers.append(frontier)
        biases.append(np.log(np.stack([sums[1], sums[-1]])))
    return frontiers, biases


@pytest.mark.parametrize(
    "name", ["dense", "open 3x4", "periodic 3x4", "tree", "sparse", "two components"]
)
def test_tables_match_brute_force(name):
    system = FAMILIES[name]()
    for order in (np.arange(system.N), np.random.default_rng(3).permutation(system.N)):
        tables = frontier_tables(system, 0.9, order)
        frontiers, biases = brute_force_tables(system, 0.9, order)
        assert tables.N == system.N and tables.beta == 0.9
        np.testing.assert_array_equal(tables.order, order)
        for i in range(system.N):
            assert tables.frontier(i).tolist() == frontiers[i]
            np.testing.assert_allclose(tables.biases(i), biases[i], atol=1e-11, rtol=1e-12)
        assert tables.width == max(len(f) for f in frontiers)
        assert elimination_width(system, order) in (tables.width, tables.width + 1)
        assert tables.log_z == pytest.approx(
            enumerate_exact(dense_of(system), 0.9).log_z, abs=1e-11
        )


def conditionals_from_tables(tables, system, beta, x):
    """P(x_i = +1 | x_<i) from the tables by the formula of section 7, with plain loops."""
    J = couplings_of(system)[np.ix_(tables.order, tables.order)]  # noqa: N806
    h = np.array(system.h)[tables.order]
    y = np.asarray(x)[tables.order]
    result = []
    for i in range(tables.N):
        phi = h + J[:i].T @ y[:i]  # phi_{i,l} = h_l + sum_{s<i} J_sl y_s
        frontier = tables.frontier(i)
        log_rho = []
        for row in (0, 1):
            terms = [
                tables.biases(i)[row, t]
                + beta * sum((1 if t >> m & 1 else -1) * phi[l] for m, l in enumerate(frontier))
                for t in range(2 ** len(frontier))
            ]
            log_rho.append(np.logaddexp.reduce(terms))
        result.append(1.0 / (1.0 + math.exp(-(2 * beta * phi[i] + log_rho[0] - log_rho[1]))))
    return np.array(result)


@pytest.mark.parametrize("name", ["dense", "periodic 3x4", "tree", "sparse"])
def test_conditionals_built_from_the_tables(name):
    system = FAMILIES[name]()
    order = np.random.default_rng(8).permutation(system.N)
    tables = frontier_tables(system, 1.2, order)
    relabelled = permuted(system, order)
    x = random_spins(4, system.N, 9)
    for b in range(4):
        along = x[b, torch.as_tensor(order)]
        expected = exact_conditionals(relabelled, 1.2, [along[:p] for p in range(system.N)])
        got = conditionals_from_tables(tables, system, 1.2, x[b].numpy())
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-12)


def test_tables_layout_and_validation():
    system = lattice(3, 4, False, 1)
    tables = frontier_tables(system, 0.5)
    sizes = np.diff(tables.indptr)
    np.testing.assert_array_equal(np.diff(tables.offsets), 2**sizes)
    assert tables.bias.shape == (2, tables.offsets[-1])
    for name in ("order", "indptr", "members", "offsets", "bias"):
        assert not getattr(tables, name).flags.writeable
    with pytest.raises(ArnnGenError, match="inconsistent frontier tables"):
        FrontierTables(
            N=tables.N, beta=0.5, order=tables.order, indptr=tables.indptr,
            members=tables.members, offsets=tables.offsets, bias=tables.bias[:, :-1],
            width=tables.width, log_z=tables.log_z,
        )  # fmt: skip


# --------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------


def test_width_above_the_bound_is_refused_before_allocating():
    system = random_dense(26, 0)  # width 25
    assert elimination_width(system) == 25 > MAX_FRONTIER_WIDTH
    message = r"frontier elimination along this order has width 25 .* limit is width <= 24"
    x = torch.ones(26)
    for call in (
        lambda: frontier_exact(system, 1.0),
        lambda: frontier_log_prob(system, 1.0, x),
        lambda: frontier_conditionals(system, 1.0, x),
        lambda: frontier_tables(system, 1.0),
    ):
        with pytest.raises(ArnnGenError, match=message):
            call()


def test_table_entries_above_the_bound_are_refused(monkeypatch):
    monkeypatch.setattr(frontier_module, "MAX_FRONTIER_TABLE_ENTRIES", 16)
    with pytest.raises(ArnnGenError, match=r"sum_i 2\^\|F_i\| = \d+ .* the limit is 16"):
        frontier_tables(lattice(3, 4, False, 0), 1.0)


@pytest.mark.parametrize(
    ("system", "match"),
    [
        ("not a system", r"needs a system with N, h and either edges and weights or J, got str"),
        (edge_system(3, [(0, 1), (1, 0)], [1, 2], [0, 0, 0]),
         r"edge \(0, 1\) appears more than once"),
        (SimpleNamespace(N=3, h=np.zeros(3), edges=np.array([[1, 1]]), weights=np.ones(1)),
         r"edges must join two different spins, got \(1, 1\)"),
        (edge_system(3, [(0, 3)], [1], [0, 0, 0]), r"edges must index spins 0..2"),
        (edge_system(3, [(0, 1)], [1, 2], [0, 0, 0]), r"weights must have shape \(1,\)"),
        (edge_system(3, [(0, 1)], [math.nan], [0, 0, 0]), r"the edge weights must be finite"),
        (edge_system(3, [(0, 1)], [1], [0, 0]), r"the fields h must have shape \(3,\)"),
        (SimpleNamespace(N=2, h=np.zeros(2), edges=np.array([[0.0, 1.0]]), weights=np.ones(1)),
         r"edges must be an integer array of shape \[E, 2\]"),
    ],
)  # fmt: skip
def test_bad_systems_are_refused(system, match):
    with pytest.raises(ArnnGenError, match=match):
        frontier_exact(system, 1.0)


@pytest.mark.parametrize(
    ("order", "match"),
    [
        ([0, 1, 1], r"order must be a permutation of 0..2: site 2 is missing"),
        ([0, 1], r"permutation of 0..2 \(N=3 integers\), got dtype int64 and shape \(2,\)"),
        ([0.0, 1.0, 2.0], r"got dtype float64"),
        ([0, 1, 5], r"site 2 is missing"),
    ],
)  # fmt: skip
def test_bad_orders_are_refused(order, match):
    system = random_tree(3, 0)
    with pytest.raises(ArnnGenError, match=match):
        elimination_width(system, np.array(order))


def test_bad_inputs_are_refused():
    system = random_tree(4, 0)
    with pytest.raises(ArnnGenError, match=r"beta must be a finite number > 0, got -1.0"):
        frontier_exact(system, -1.0)
    with pytest.raises(ArnnGenError, match=r"must have shape \[B, 4\] or \[4\], got \[2, 3\]"):
        frontier_log_prob(system, 1.0, torch.ones(2, 3))
    with pytest.raises(ArnnGenError, match=r"must contain only -1 and \+1"):
        frontier_conditionals(system, 1.0, torch.zeros(2, 4))


# --------------------------------------------------------------------------------------
# The route chosen by exact()
# --------------------------------------------------------------------------------------


def test_exact_keeps_enumeration_and_the_curie_weiss_formula():
    sk = sherrington_kirkpatrick(10, seed=3)
    assert exact(sk, 1.0).to_dict() == enumerate_exact(sk, 1.0).to_dict()
    assert exact(curie_weiss(40, 1.2, 0.1), 0.8) == curie_weiss_exact(40, 0.8, 1.2, 0.1)


def test_exact_uses_frontier_elimination_for_sparse_systems():
    system = lattice(3, 4, True, 14)
    result = exact(system, 0.6)
    assert result.method == "frontier elimination"
    assert_matches(result, enumerate_exact(dense_of(system), 0.6))


def test_exact_uses_frontier_elimination_for_large_dense_chains():
    rng = np.random.default_rng(15)
    N = 40  # noqa: N806
    couplings, fields = rng.normal(size=N - 1), 0.3 * rng.normal(size=N)
    J = np.diag(couplings, 1)  # noqa: N806
    result = exact(from_couplings(J + J.T, fields), 0.9)
    assert result.method == "frontier elimination"
    assert result.log_z == pytest.approx(transfer_matrix_log_z(couplings, fields, 0.9), rel=1e-12)


def test_exact_finds_a_narrow_order_for_a_relabelled_chain():
    pytest.importorskip("scipy")  # reverse Cuthill-McKee
    rng = np.random.default_rng(16)
    N = 300  # noqa: N806
    labels = rng.permutation(N)  # site labels[k] is the k-th site along the chain
    couplings, fields = rng.normal(size=N - 1), 0.3 * rng.normal(size=N)
    edges = np.stack([labels[:-1], labels[1:]], axis=1)
    h = np.empty(N)
    h[labels] = fields
    system = edge_system(N, edges, couplings, h)
    assert elimination_width(system) > MAX_FRONTIER_WIDTH
    result = exact(system, 0.7)
    assert result.method == "frontier elimination"
    assert result.log_z == pytest.approx(transfer_matrix_log_z(couplings, fields, 0.7), rel=1e-12)


def torus_system(L, W, J=1.0, **provenance):  # noqa: N803
    edges = lattice_edges(L, W, True)
    return edge_system(
        L * W, edges, np.full(len(edges), J), np.zeros(L * W), kind="ising2d",
        provenance={"L": L, "W": W, "J": J, "h": 0.0, "periodic": 1, **provenance},
    )  # fmt: skip


def test_exact_uses_kaufman_for_wide_ising_tori():
    system = torus_system(26, 26, 0.8)
    assert elimination_width(system) > MAX_FRONTIER_WIDTH
    result = exact(system, 0.5)
    assert result.method == "kaufman" and result.magnetization_abs is None
    assert result == kaufman_exact(26, 26, 0.5, 0.8)
    small = torus_system(4, 5)
    assert exact(small, 0.5).method == "frontier elimination"


def test_exact_refusals():
    message = (
        r"exact enumeration is limited to N <= 24 spins \(got N=30\); the Curie-Weiss formula "
        r"covers any N, frontier elimination any N of elimination width <= 24 "
        r"\(this system's best order has width \d+\)$"
    )
    with pytest.raises(ArnnGenError, match=message):
        exact(random_dense(30, 1), 1.0)
    # More than 24 N couplings: wider than 24 along every order, refused without ordering.
    with pytest.raises(ArnnGenError, match=r"\(1770 couplings > 24 N: wider along every order\)$"):
        exact(sherrington_kirkpatrick(60, seed=0), 1.0)
    without = torus_system(26, 26)
    without.provenance = {"L": 26, "W": 26}
    with pytest.raises(ArnnGenError, match=r"Kaufman's formula needs an ising2d torus"):
        exact(without, 1.0)
    with_field = torus_system(26, 26)
    with_field.h = np.full(26 * 26, 0.1)
    with pytest.raises(ArnnGenError, match=r"Kaufman's formula needs an ising2d torus"):
        exact(with_field, 1.0)
    with pytest.raises(ArnnGenError, match=r"expected a Hamiltonian, got str"):
        exact("not a system", 1.0)
