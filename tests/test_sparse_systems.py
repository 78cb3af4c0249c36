"""Tests of the sparse systems: SparseHamiltonian, the seeded generators, the coupling-file
readers and the site orders and frontiers (docs/physics.md sections 1 and 7).

References are computed independently: energies by explicit loops and by the dense
Hamiltonian, lattice bonds and frontiers by brute force from their definitions, the
generators' draws from the RNG calls their docstrings document."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import pickle
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

from arnn_gen import systems
from arnn_gen.checks import MAX_DENSE_N, MAX_SPINS
from arnn_gen.errors import ArnnGenError
from arnn_gen.systems import (
    SPARSE_KINDS,
    Frontier,
    SparseHamiltonian,
    curie_weiss,
    ea2d,
    ea3d,
    from_couplings,
    frontier,
    ising2d,
    lattices,
    load_sparse_npz,
    ordering,
    read_couplings,
    readers,
    rrg,
    sherrington_kirkpatrick,
    site_order,
)
from arnn_gen.systems import dense as dense_module
from arnn_gen.systems import sparse as sparse_module
from arnn_gen.systems.readers import detect_format
from arnn_gen.systems.sparse import MAX_EDGES


def random_graph(N: int, p: float, seed: int) -> SparseHamiltonian:  # noqa: N803
    """An Erdos-Renyi graph with Gaussian couplings and fields, built from explicit loops."""
    rng = np.random.default_rng(seed)
    pairs = [(i, j) for i in range(N) for j in range(i + 1, N) if rng.random() < p]
    edges = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return SparseHamiltonian(N, edges, rng.normal(size=len(pairs)), rng.normal(size=N))


def naive_energy(system: SparseHamiltonian, x: np.ndarray) -> float:
    """H(x) = -sum_edges J_ij x_i x_j - sum_i h_i x_i by explicit loops."""
    total = -sum(system.h[i] * x[i] for i in range(system.N))
    for (i, j), w in zip(system.edges.tolist(), system.weights.tolist(), strict=True):
        total -= w * x[i] * x[j]
    return total


def random_spins(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=shape)


def brute_square_bonds(L: int, W: int, periodic: bool) -> set[tuple[int, int]]:  # noqa: N803
    """Bonds of the L x W lattice from explicit loops over (row, column)."""
    bonds = set()
    for r in range(L):
        for c in range(W):
            for dr, dc in ((0, 1), (1, 0)):
                r2, c2 = r + dr, c + dc
                if periodic:
                    r2, c2 = r2 % L, c2 % W
                elif r2 >= L or c2 >= W:
                    continue
                a, b = r * W + c, r2 * W + c2
                bonds.add((min(a, b), max(a, b)))
    return bonds


def brute_cubic_bonds(L: int, periodic: bool) -> set[tuple[int, int]]:  # noqa: N803
    bonds = set()
    for z, y, x in itertools.product(range(L), repeat=3):
        for dz, dy, dx in ((0, 0, 1), (0, 1, 0), (1, 0, 0)):
            z2, y2, x2 = z + dz, y + dy, x + dx
            if periodic:
                z2, y2, x2 = z2 % L, y2 % L, x2 % L
            elif max(z2, y2, x2) >= L:
                continue
            a, b = (z * L + y) * L + x, (z2 * L + y2) * L + x2
            bonds.add((min(a, b), max(a, b)))
    return bonds


def brute_frontier(system: SparseHamiltonian, order: np.ndarray) -> list[list[int]]:
    """F_p = { l > p : some neighbour of l sits at a position < p }, straight from the
    definition (docs/physics.md section 7), with the dense couplings."""
    J = system.to_dense().J  # noqa: N806
    position = {int(site): p for p, site in enumerate(order)}
    N = system.N  # noqa: N806
    result = []
    for p in range(N):
        members = []
        for l in range(p + 1, N):
            site_l = int(order[l])
            if any(J[site_l, s] != 0.0 and position[s] < p for s in range(N)):
                members.append(l)
        result.append(members)
    return result


def as_lists(found: Frontier) -> list[list[int]]:
    return [found.at(p).tolist() for p in range(found.N)]


def relabel(system: SparseHamiltonian, permutation: np.ndarray) -> SparseHamiltonian:
    """The same graph with site s renamed permutation[s] (kind 'general')."""
    h = np.empty(system.N)
    h[permutation] = system.h
    return SparseHamiltonian(system.N, permutation[system.edges], system.weights, h)


# --------------------------------------------------------------------------------------
# SparseHamiltonian: validation and normalisation
# --------------------------------------------------------------------------------------

E01 = np.array([[0, 1]])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: SparseHamiltonian(2.5, E01, [1.0], np.zeros(2)), r"N must be an integer"),
        (lambda: SparseHamiltonian(0, E01, [1.0], np.zeros(0)), r"N must be an integer >= 1"),
        (
            lambda: SparseHamiltonian(MAX_SPINS + 1, E01, [1.0], np.zeros(1)),
            rf"N must be an integer <= {MAX_SPINS}",
        ),
        (lambda: SparseHamiltonian(2, [[0.0, 1.0]], [1.0], np.zeros(2)), r"integer array"),
        (lambda: SparseHamiltonian(2, [0, 1], [1.0], np.zeros(2)), r"shape \[E, 2\]"),
        (lambda: SparseHamiltonian(2, E01, [1.0, 2.0], np.zeros(2)), r"weights must have shape"),
        (lambda: SparseHamiltonian(2, E01, ["a"], np.zeros(2)), r"weights must be a real array"),
        (lambda: SparseHamiltonian(2, E01, [math.inf], np.zeros(2)), r"got weights\[0\] = inf"),
        (lambda: SparseHamiltonian(2, E01, [1.0], np.zeros(3)), r"h must have shape \(2,\)"),
        (lambda: SparseHamiltonian(2, E01, [1.0], [0.0, math.nan]), r"got h\[1\] = nan"),
        (
            lambda: SparseHamiltonian(2, [[0, 2]], [1.0], np.zeros(2)),
            r"edge 0 = \(0, 2\) has a spin index outside \[0, 2\)",
        ),
        (lambda: SparseHamiltonian(2, [[-1, 1]], [1.0], np.zeros(2)), r"outside \[0, 2\)"),
        (lambda: SparseHamiltonian(3, [[0, 1], [2, 2]], [1.0, 0.0], np.zeros(3)), r"self-loop"),
        (
            lambda: SparseHamiltonian(3, [[0, 2], [2, 0]], [1.0, 2.0], np.zeros(3)),
            r"pair \(0, 2\) is given twice with different couplings 1.0 and 2.0",
        ),
        (lambda: SparseHamiltonian(2, E01, [1.0], np.zeros(2), "square"), r"unknown system kind"),
        (
            lambda: SparseHamiltonian(2, E01, [1.0], np.zeros(2), provenance={"a": "b"}),
            r"int or a float",
        ),
        (
            lambda: SparseHamiltonian(4, E01, [1.0], np.zeros(4), "ea2d"),
            r"needs provenance keys \['L', 'W', 'periodic', 'pm1', 'h', 'seed'\]",
        ),
        (
            lambda: SparseHamiltonian(
                2, E01, [1.0], np.zeros(2), "sk", {"J": -1.0, "h": 0.0, "seed": 0}
            ),
            r"SK coupling scale J must be >= 0",
        ),
    ],
)
def test_validation_errors(call, match):
    with pytest.raises(ArnnGenError, match=match):
        call()


def lattice_provenance(**changes):
    base = {"L": 2, "W": 2, "periodic": 0, "pm1": 0, "h": 0.0, "seed": 0}
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (("ea2d", [[0, 1]], [1.0], lattice_provenance(L=3)), r"has N = 6 spins, got N = 4"),
        (("ea2d", [[0, 3]], [1.0], lattice_provenance()), r"edge \(0, 3\) is not a bond"),
        (("ea2d", [[0, 1]], [0.5], lattice_provenance(pm1=1)), r"J_ij = \+-1 only"),
        (("ea2d", [[0, 1]], [1.0], lattice_provenance(periodic=2)), r"periodic must be 0 or 1"),
        (("ea2d", [[0, 1]], [1.0], lattice_provenance(seed=1.0)), r"seed must be an integer"),
        (("ea2d", [[0, 1]], [1.0], lattice_provenance(h=0.5)), r"uniform fields h_i = h = 0.5"),
        (
            ("ising2d", [[0, 1]], [1.0], {"L": 2, "W": 2, "periodic": 0, "J": 1.0, "h": 0.0}),
            r"couples every bond of its lattice with J = 1.0",
        ),
        (
            ("rrg", [[0, 1], [0, 2]], [1.0, 1.0], {"degree": 1, "pm1": 0, "h": 0.0, "seed": 0}),
            r"at most 1 neighbours a site",
        ),
        (("cw", [[0, 1]], [1.0], {"J": 1.0, "h": 0.0}), r"J_ij = J/N = 0.25 for every pair"),
    ],
)
def test_provenance_must_agree_with_the_arrays(arguments, match):
    kind, edges, weights, provenance = arguments
    with pytest.raises(ArnnGenError, match=match):
        SparseHamiltonian(4, np.array(edges), weights, np.zeros(4), kind, provenance)


def test_normalisation():
    system = SparseHamiltonian(
        5,
        np.array([[3, 1], [0, 4], [1, 3], [2, 0], [4, 2]], dtype=np.int32),
        [0.5, -1.0, 0.5, 0.0, 2.0],
        [0.0, -0.0, 1.0, 0.0, 0.0],
    )
    assert system.edges.dtype == np.int64 and system.weights.dtype == np.float64
    assert system.edges.tolist() == [[0, 4], [1, 3], [2, 4]]  # i < j, sorted, merged, no zero
    assert system.weights.tolist() == [-1.0, 0.5, 2.0]
    assert system.E == 3 and system.N == 5
    assert np.signbit(system.h).sum() == 0  # -0.0 stored as +0.0
    for array in (system.edges, system.weights, system.h):
        assert not array.flags.writeable
    with pytest.raises(ValueError):
        system.weights[0] = 3.0
    assert SparseHamiltonian(3, [], [], np.zeros(3)).E == 0
    assert SparseHamiltonian(3, torch.tensor([[2, 1]]), torch.tensor([1.5]), np.ones(3)).E == 1
    assert system.couplings == (system.edges, system.weights) and system.fields is system.h


def test_neighbours_is_the_symmetric_csr_of_the_couplings():
    system = random_graph(12, 0.35, 3)
    indptr, indices, values = system.neighbours()
    J = system.to_dense().J  # noqa: N806
    for i in range(system.N):
        row = slice(indptr[i], indptr[i + 1])
        assert indices[row].tolist() == np.flatnonzero(J[i]).tolist()  # sorted by index
        assert values[row].tolist() == J[i, indices[row]].tolist()
    assert system.neighbours() is system.neighbours()  # cached
    assert not indices.flags.writeable
    assert system.max_degree == int((J != 0).sum(axis=1).max())
    assert SparseHamiltonian(2, [], [], np.zeros(2)).max_degree == 0


# --------------------------------------------------------------------------------------
# Energy and the dense form
# --------------------------------------------------------------------------------------


def test_energy_matches_loops_and_the_dense_energy():
    system = random_graph(14, 0.3, 1)
    x = random_spins((9, 14), 2)
    energies = system.energy(torch.tensor(x))
    assert energies.dtype == torch.float64 and energies.shape == (9,)
    expected = [naive_energy(system, row) for row in x]
    assert np.allclose(energies.numpy(), expected, rtol=1e-12, atol=1e-12)
    dense = system.to_dense().energy(torch.tensor(x))
    assert torch.allclose(energies, dense, rtol=1e-12, atol=1e-12)
    # float32 input is computed in float64; [N] input gives a 0-d energy; numpy is accepted.
    assert torch.equal(system.energy(torch.tensor(x, dtype=torch.float32)), energies)
    assert system.energy(torch.tensor(x[0])).shape == ()
    assert torch.equal(system.energy(x), energies)
    assert system.energy(torch.zeros(0, 14) + 1).shape == (0,)


def test_energy_in_chunks_equals_one_block(monkeypatch):
    system = ea2d(5, seed=4, h=0.3)
    x = torch.tensor(random_spins((11, 25), 5))
    whole = system.energy(x)
    monkeypatch.setattr(sparse_module, "_ENERGY_CHUNK", 2 * system.E)  # 2 rows a chunk
    fresh = ea2d(5, seed=4, h=0.3)
    assert torch.allclose(fresh.energy(x), whole, rtol=1e-13, atol=1e-13)


@pytest.mark.gpu
def test_energy_on_cuda_matches_cpu():
    system = ea2d(6, seed=0, h=0.1)
    x = torch.tensor(random_spins((5, 36), 0))
    energies = system.energy(x.to("cuda", torch.float32))
    assert energies.device.type == "cuda" and energies.dtype == torch.float64
    assert torch.allclose(energies.cpu(), system.energy(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.ones(3, 5), r"shape \[B, 4\] or \[4\], got \[3, 5\]"),
        (torch.zeros(2, 4), r"only -1 and \+1, found 0.0"),
        (torch.ones(2, 4, dtype=torch.complex64), r"must be real"),
    ],
)
def test_energy_rejects_bad_configurations(x, match):
    with pytest.raises(ArnnGenError, match=match):
        ising2d(2, boundary="open").energy(x)


def test_dense_round_trip_keeps_kind_and_provenance():
    for system in (ea2d(3, seed=2, disorder="pm1", h=0.5), rrg(8, seed=1), random_graph(9, 0.4, 0)):
        dense = system.to_dense()
        assert dense.kind == system.kind and dict(dense.provenance) == dict(system.provenance)
        assert SparseHamiltonian.from_dense(dense) == system
    for dense in (curie_weiss(6, 1.5, 0.2), sherrington_kirkpatrick(7, seed=3)):
        sparse = SparseHamiltonian.from_dense(dense)
        assert sparse.kind == dense.kind and sparse.E == np.count_nonzero(np.triu(dense.J, 1))
        assert sparse.to_dense() == dense
    assert SparseHamiltonian.from_dense(systems.CurieWeiss(5)).to_dense() == curie_weiss(5)
    general = from_couplings(np.array([[0.0, 2.0], [2.0, 0.0]]), [0.5, 0.0])
    assert SparseHamiltonian.from_dense(general).edges.tolist() == [[0, 1]]


def test_to_dense_refuses_before_allocating():
    system = rrg(100_000, seed=0)
    tracemalloc.start()
    try:
        with pytest.raises(ArnnGenError, match=r"N = 100000 spins are limited to N <= 16384"):
            system.to_dense()
        with pytest.raises(ArnnGenError, match=r"limited to N <= 10"):
            ea2d(4).to_dense(max_n=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20
    assert ea2d(4).to_dense(max_n=MAX_DENSE_N).N == 16


# --------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------


def test_signature_is_a_function_of_the_spec():
    a, b = ea2d(6, 5, seed=7), ea2d(6, 5, seed=7)
    assert a is not b and a == b and a.signature() == b.signature() and hash(a) == hash(b)
    assert len(a.signature()) == 64 and int(a.signature(), 16) >= 0
    others = [
        ea2d(6, 5, seed=8),
        ea2d(5, 6, seed=7),
        ea2d(6, 5, seed=7, h=0.1),
        ea2d(6, 5, seed=7, disorder="pm1"),
        SparseHamiltonian(a.N, a.edges, a.weights, a.h),  # kind "general"
        SparseHamiltonian(a.N, a.edges, a.weights, a.h, "general", {"seed": 7}),
        SparseHamiltonian(a.N, a.edges, a.weights, a.h, "general", {"seed": 7.0}),
    ]
    signatures = {system.signature() for system in others}
    assert len(signatures) == len(others) and a.signature() not in signatures
    assert all(system != a for system in others)
    # By design, the sparse and the dense spec of one system have different signatures.
    assert a.to_dense().signature() != a.signature()
    assert a != a.to_dense() and (a == 3) is False


def test_signature_canonical_form():
    system = SparseHamiltonian(3, [[2, 0]], [1.5], [0.0, 1.0, 0.0], "general", {"b": 1, "a": 2.0})
    digest = hashlib.sha256()
    key = (("a", "float", 2.0), ("b", "int", 1))
    digest.update(f"arnn-gen-sparse-hamiltonian-v1\0general\0{key!r}\0{3}\0{1}\0".encode())
    digest.update(np.array([[0, 2]], dtype="<i8").tobytes())
    digest.update(np.array([1.5], dtype="<f8").tobytes())
    digest.update(np.array([0.0, 1.0, 0.0], dtype="<f8").tobytes())
    assert system.signature() == digest.hexdigest()
    assert list(system.provenance) == ["a", "b"]
    with pytest.raises(TypeError):
        system.provenance["c"] = 1  # type: ignore[index]


def test_pickle_and_repr():
    system = ea3d(3, seed=1, h=0.25)
    again = pickle.loads(pickle.dumps(system))
    assert again == system and again.signature() == system.signature()
    assert repr(system) == (
        "SparseHamiltonian(kind='ea3d', N=27, E=81, L=3, h=0.25, periodic=1, pm1=0, seed=1)"
    )


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def test_npz_round_trip_and_deterministic_bytes(tmp_path):
    system = rrg(40, degree=4, seed=3, h=-0.5, disorder="pm1")
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    system.save(first)
    system.save(second)
    assert first.read_bytes() == second.read_bytes()
    loaded = load_sparse_npz(first)
    assert loaded == system and loaded.signature() == system.signature()
    with np.load(first, allow_pickle=False) as archive:
        assert archive.files == [
            "format", "N", "edges", "weights", "h", "kind", "provenance", "signature",
        ]  # fmt: skip
        assert str(archive["format"]) == "sparse" and int(archive["N"]) == 40
        assert json.loads(str(archive["provenance"])) == dict(system.provenance)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.npz", "b.npz"]  # no temporaries


def test_text_save_reads_back_as_general(tmp_path):
    system = ea2d(3, 4, seed=5, h=0.75, boundary="open")
    path = tmp_path / "system.txt"
    system.save(path)
    loaded = read_couplings(path)
    assert loaded.kind == "general" and loaded.edges.tolist() == system.edges.tolist()
    assert (
        loaded.weights.tolist() == system.weights.tolist()
        and loaded.h.tolist() == system.h.tolist()
    )
    assert dense_module.load(path) == from_couplings(system.to_dense().J, system.h)


def write_npz_members(path, members: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in members.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def test_load_sparse_npz_errors(tmp_path):
    good = {"N": np.array(3), "edges": np.array([[0, 1]]), "weights": np.array([1.0])}
    cases = [
        ({"N": np.array(3), "edges": np.array([[0, 1]])}, r"lacks arrays \['weights'\]"),
        ({**good, "N": np.array([3])}, r"N must be a 0-d array"),
        ({**good, "edges": np.array([0, 1])}, r"edges must have shape \[E, 2\]"),
        ({**good, "weights": np.array([1.0, 2.0])}, r"weights must have shape \(1,\)"),
        ({**good, "N": np.array(2.0)}, r"N must be an integer"),
        ({**good, "N": np.array(10**7)}, r"has N = 10000000 spins; expected 1 <= N <= 1000000"),
        ({**good, "h": np.zeros(4)}, r"h must have shape \(3,\)"),
        ({**good, "format": np.array("dense")}, r"has format 'dense'; expected 'sparse'"),
        ({**good, "provenance": np.array("{")}, r"provenance is not valid JSON"),
        ({**good, "kind": np.array(3)}, r"'kind' must be a 0-d string"),
        ({**good, "edges": np.array([[0, 5]])}, r"outside \[0, 3\)"),
        ({**good, "signature": np.array("0" * 64)}, r"is damaged"),
    ]
    for index, (members, match) in enumerate(cases):
        path = tmp_path / f"bad{index}.npz"
        write_npz_members(path, members)
        with pytest.raises(ArnnGenError, match=match):
            load_sparse_npz(path)
    path = tmp_path / "good.npz"
    write_npz_members(path, good)
    assert load_sparse_npz(path) == SparseHamiltonian(3, [[0, 1]], [1.0], np.zeros(3))
    with pytest.raises(ArnnGenError, match=r"has N = 3 spins; expected 1 <= N <= 2"):
        load_sparse_npz(path, max_n=2)
    with pytest.raises(ArnnGenError, match=r"does not exist"):
        load_sparse_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ArnnGenError, match=r"cannot read couplings file"):
        load_sparse_npz(tmp_path / "junk.npz")


def test_edge_count_is_checked_from_the_header(tmp_path):
    """A header that declares more than MAX_EDGES edges is refused before any data is read."""
    path = tmp_path / "huge.npz"
    header = {"descr": "<i8", "fortran_order": False, "shape": (MAX_EDGES + 1, 2)}
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("edges.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)  # no data follows
        for name, value in (("N", np.array(3)), ("weights", np.zeros(1))):
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, value)
    with pytest.raises(ArnnGenError, match=rf"has E = {MAX_EDGES + 1} edges; the limit is"):
        load_sparse_npz(path)


def test_save_errors(tmp_path):
    with pytest.raises(ArnnGenError, match=r"is not a directory"):
        ea2d(3).save(tmp_path / "missing" / "x.npz")


# --------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("L", "W"), [(3, 3), (4, 6), (5, 3), (1, 4), (2, 2), (1, 1)])
@pytest.mark.parametrize("periodic", [False, True])
def test_square_lattice_bonds(L, W, periodic):  # noqa: N803
    if periodic and min(L, W) < 3:
        with pytest.raises(ArnnGenError, match=r"a periodic lattice needs [LW] >= 3"):
            ea2d(L, W)
        return
    system = ea2d(L, W, boundary="periodic" if periodic else "open", seed=L * W)
    assert {tuple(edge) for edge in system.edges.tolist()} == brute_square_bonds(L, W, periodic)
    assert system.E == (2 * L * W if periodic else (L - 1) * W + L * (W - 1))
    assert system.N == L * W and np.all(system.h == 0.0)


@pytest.mark.parametrize(("L", "periodic"), [(2, False), (3, False), (3, True), (4, True)])
def test_cubic_lattice_bonds(L, periodic):  # noqa: N803
    system = ea3d(L, boundary="periodic" if periodic else "open", disorder="pm1", seed=2)
    assert {tuple(edge) for edge in system.edges.tolist()} == brute_cubic_bonds(L, periodic)
    assert system.E == (3 * L**3 if periodic else 3 * L * L * (L - 1))
    assert set(system.weights.tolist()) == {-1.0, 1.0}


def test_draws_follow_the_documented_order():
    """Couplings are one call of PCG64(seed), one per bond in sorted (i, j) order."""
    system = ea2d(4, 5, seed=11, h=0.2)
    bonds = sorted(brute_square_bonds(4, 5, True))
    assert system.edges.tolist() == [list(bond) for bond in bonds]
    expected = np.random.Generator(np.random.PCG64(11)).standard_normal(len(bonds))
    assert np.array_equal(system.weights, expected) and np.all(system.h == 0.2)
    signs = np.random.Generator(np.random.PCG64(3)).integers(0, 2, size=3 * 27)
    cube = ea3d(3, seed=3, disorder="pm1")
    assert np.array_equal(cube.weights, np.where(signs == 1, 1.0, -1.0))
    assert dict(system.provenance) == {
        "L": 4, "W": 5, "h": 0.2, "periodic": 1, "pm1": 0, "seed": 11,
    }  # fmt: skip


def test_rrg_follows_the_documented_pairing_model():
    N, degree, seed = 12, 3, 5  # noqa: N806
    rng = np.random.Generator(np.random.PCG64(seed))
    while True:  # the pairing model with restarts, as rrg's docstring states it
        points = rng.permutation(N * degree)
        pairs = [
            tuple(sorted((int(points[k]) // degree, int(points[k + 1]) // degree)))
            for k in range(0, N * degree, 2)
        ]
        if all(a != b for a, b in pairs) and len(set(pairs)) == len(pairs):
            break
    edges = sorted(pairs)
    weights = rng.standard_normal(len(edges))
    system = rrg(N, degree=degree, seed=seed)
    assert system.edges.tolist() == [list(edge) for edge in edges]
    assert np.array_equal(system.weights, weights)


@pytest.mark.parametrize(("N", "degree"), [(10, 3), (50, 4), (7, 2), (2, 1), (8, 4)])
def test_rrg_is_simple_and_regular(N, degree):  # noqa: N803
    system = rrg(N, degree=degree, seed=N, disorder="pm1")
    assert system.E == N * degree // 2
    assert np.all(system.degrees == degree)
    assert np.all(system.edges[:, 0] < system.edges[:, 1])
    assert len({tuple(edge) for edge in system.edges.tolist()}) == system.E
    assert rrg(N, degree=degree, seed=N, disorder="pm1") == system


def test_ising2d_and_generator_signatures():
    system = ising2d(4, 3, J=-0.5, h=0.1)
    assert np.all(system.weights == -0.5) and system.E == 24 and system.kind == "ising2d"
    assert ising2d(4, 3, J=0.0).E == 0
    assert ising2d(4, 3, J=-0.5, h=0.1).signature() == system.signature()
    assert ea2d(5, seed=1).signature() != ea2d(5, seed=2).signature()
    assert rrg(20, seed=1).signature() == rrg(20, seed=1).signature() != rrg(20, seed=2).signature()
    assert set(SPARSE_KINDS) <= set(systems.KINDS)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ea2d(0), r"the lattice length L must be an integer >= 1"),
        (lambda: ea2d(3, 2.5), r"the lattice width W must be an integer"),
        (lambda: ea2d(10**4), r"the 10000 x 10000 lattice has N = 100000000 spins"),
        (lambda: ea3d(101), r"the 101\^3 lattice has N = 1030301 spins"),
        (lambda: ising2d(3, 10**7), r"has N = 30000000 spins; the limit is N <= 1000000"),
        (lambda: ea2d(3, boundary="closed"), r"boundary must be one of \('open', 'periodic'\)"),
        (lambda: ea2d(3, disorder="binary"), r"disorder must be one of"),
        (lambda: ea2d(3, h=math.inf), r"the field h must be a finite number"),
        (lambda: ea2d(3, seed=-1), r"the seed must be an integer >= 0"),
        (lambda: ea2d(2), r"a periodic lattice needs L >= 3 .* got L=2"),
        (lambda: ea2d(4, 1), r"a periodic lattice needs W >= 3 .* got W=1"),
        (lambda: ea3d(2), r"a periodic lattice needs L >= 3"),
        (lambda: ising2d(3, J="x"), r"the coupling J must be a finite number"),
        (lambda: rrg(1), r"the number of spins N must be an integer >= 2"),
        (lambda: rrg(7, degree=3), r"needs N \* degree even, got N=7, degree=3"),
        (lambda: rrg(4, degree=4), r"the degree must be < N = 4, got degree=4"),
        (lambda: rrg(4, degree=0), r"the degree must be an integer >= 1"),
        (lambda: lattices.lattice_bonds("hexagonal", 3, periodic=False), r"geometry must be"),
    ],
)
def test_generator_errors(call, match):
    with pytest.raises(ArnnGenError, match=match):
        call()


def test_rrg_gives_up_after_a_bounded_number_of_pairings(monkeypatch):
    """A degree whose pairings almost never come out simple is refused before any attempt;
    an unlucky stream (seed 7, each attempt simple with probability about e^-2) gives up
    after the bounded number of attempts."""
    with pytest.raises(ArnnGenError, match=r"use degree <= 6"):
        rrg(100, degree=9, seed=0)
    monkeypatch.setattr(lattices, "_MAX_PAIRINGS", 8)
    with pytest.raises(ArnnGenError, match=r"no simple 3-regular graph on N = 10 sites in 8"):
        rrg(10, degree=3, seed=7)


def test_large_instances_build_quickly_without_quadratic_memory():
    tracemalloc.start()
    try:
        start = time.perf_counter()
        graph = rrg(100_000, degree=3, seed=1)
        lattice = ea2d(316, seed=1)
        elapsed = time.perf_counter() - start
        energies = lattice.energy(torch.ones(2, lattice.N))
        order = site_order(graph)  # compares the widths of natural and rcm in O(N + E)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert graph.E == 150_000 and lattice.N == 316 * 316 and lattice.E == 2 * lattice.N
    assert sorted(order.tolist()) == list(range(graph.N))
    assert torch.allclose(energies, -torch.tensor(lattice.weights.sum()).expand(2))
    assert elapsed < 20.0
    assert peak < 100 * 2**20  # N^2 float64 would be 80 GB, even N^2 bits 1.2 GB


# --------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_each_format(tmp_path):
    expected = SparseHamiltonian(4, [[0, 1], [1, 3]], [0.5, -2.0], [0.0, 0.25, 0.0, 0.0])
    edges = write(tmp_path, "a.txt", "# comment\nN 4\n0 1 0.5\n3 1 -2.0\nh 1 0.25\n1 0 0.5\n")
    sgb = write(tmp_path, "b.txt", "# instance\n# N = 4\n1 0.25\n0 1 0.5\n1 3 -2.0\n2 2 0\n")
    gset = write(tmp_path, "c.txt", "4 3\n1 2 -0.5\n2 4 2\n2 1 -0.5\n")
    for path, name in ((edges, "edges"), (sgb, "sgb")):
        assert read_couplings(path, name) == expected
        assert read_couplings(path) == expected and detect_format(path) == name
    expected_gset = SparseHamiltonian(4, [[0, 1], [1, 3]], [0.5, -2.0], np.zeros(4))
    assert read_couplings(gset, "gset") == expected_gset == read_couplings(gset)
    assert detect_format(gset) == "gset"
    # Dense and sparse .npz; the kind and provenance are the file's.
    dense_path, sparse_path = tmp_path / "d.npz", tmp_path / "s.npz"
    dense_module.save(sherrington_kirkpatrick(6, seed=2), dense_path)
    loaded = read_couplings(dense_path)
    assert loaded.kind == "sk" and loaded.to_dense() == sherrington_kirkpatrick(6, seed=2)
    system = ea2d(3, seed=4)
    system.save(sparse_path)
    assert read_couplings(sparse_path) == system == read_couplings(sparse_path, "npz")
    renamed = tmp_path / "s.bin"
    renamed.write_bytes(sparse_path.read_bytes())
    assert detect_format(renamed) == "npz" and read_couplings(renamed) == system


def test_auto_detection_rules(tmp_path):
    assert detect_format(write(tmp_path, "a", "0 1 1.0\n1 2 -1.0\n")) == "edges"
    assert detect_format(write(tmp_path, "b", "# instance\n0 1 1.0\n2 0.5\n")) == "sgb"
    # without the spin-glass format's header, an edge list (its two-field line an error)
    assert detect_format(write(tmp_path, "b2", "0 1 1.0\n2 0.5\n")) == "edges"
    assert detect_format(write(tmp_path, "c", "h 0 1.0\n")) == "edges"
    assert detect_format(write(tmp_path, "d", "5 0\n")) == "gset"
    assert detect_format(write(tmp_path, "e", "# instance\n0 0.5\n")) == "sgb"
    # Plain 'i j J' lists read the same as edges and as sgb.
    plain = write(tmp_path, "f", "0 3 1.5\n")
    assert read_couplings(plain, "edges") == read_couplings(plain, "sgb")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("3 2\n1 2 1.0\n", r"reads as a gset file declaring m = 2 edges but with 1 edge lines"),
        ("0 1 2 3\n", r"cannot tell the format of couplings file .*--format"),
        ("# only a comment\n\n", r"has no data lines"),
    ],
)
def test_auto_detection_errors(tmp_path, text, match):
    with pytest.raises(ArnnGenError, match=match):
        read_couplings(write(tmp_path, "x.txt", text))


@pytest.mark.parametrize(
    ("format", "text", "match"),
    [
        ("edges", "0 1 x\n", r"line 1: expected 'i j J_ij', 'h i value' or 'N n', got '0 1 x'"),
        ("edges", "0 1 1.0 2\n", r"line 1: expected 'i j J_ij'"),
        ("edges", "N 3\n\n0 3 1.0\n", r"line 3: spin index 3 is out of range for N=3 \(declared"),
        ("edges", "0 3 1.0\nN 3\n", r"line 1: spin index 3 is out of range for N=3"),
        ("edges", "1 1 0.5\n", r"line 1: self-coupling J_1,1 = 0.5 is not allowed"),
        (
            "edges",
            "0 1 1.0\n1 0 2.0\n",
            r"line 2: coupling J_0,1 = 2.0 conflicts with 1.0 on line 1",
        ),
        ("edges", "h 0 1.0\nh 0 2.0\n", r"line 2: field h_0 = 2.0 conflicts with 1.0 on line 1"),
        ("edges", "N 3\nN 4\n", r"line 2: N 4 conflicts with N 3 on line 1"),
        ("edges", "N 0\n", r"line 1: the number of spins must be >= 1, got 0"),
        ("edges", "N 2000000\n", r"line 1: N = 2000000 spins exceeds the limit N <= 1000000"),
        ("edges", "0 5000000 1.0\n", r"line 1: spin index 5000000 needs N > 5000000 spins"),
        ("edges", "-1 2 1.0\n", r"line 1: spin indices are 0-based and >= 0, got -1"),
        ("edges", "0 1 nan\n", r"line 1: values must be finite, got nan"),
        ("edges", "# nothing\n", r"defines no spins"),
        ("gset", "3\n", r"line 1: expected the gset header 'n m'"),
        ("gset", "", r"has no gset header 'n m'"),
        ("gset", "3 2\n1 2 1\n", r"declares m = 2 edges on line 1 but has 1"),
        ("gset", "3 1\n1 2 1\n2 3 1\n", r"line 3: more edges than the m = 1 declared on line 1"),
        ("gset", "3 1\n0 2 1\n", r"line 2: node 0 is out of range 1..3 \(gset nodes are 1-based\)"),
        ("gset", "3 1\n1 2 one\n", r"line 2: expected a gset edge 'i j w', got '1 2 one'"),
        ("gset", "3 1\n1 1 1\n", r"line 2: self-coupling J_0,0 = -1.0 is not allowed"),
        ("gset", "3 2\n1 2 1\n2 1 2\n", r"line 3: coupling J_0,1 = -2.0 conflicts with -1.0"),
        ("gset", "2000000 0\n", r"line 1: N = 2000000 spins exceeds the limit"),
        ("gset", "3 -1\n", r"the number of edges m must be in \[0, "),
        ("sgb", "# N = 3\n0 3 1.0\n", r"line 2: spin index 3 is out of range for N=3"),
        ("sgb", "0 1 1.0 5\n", r"line 1: expected 'i h_i' or 'i j J_ij', got '0 1 1.0 5'"),
        ("sgb", "0 x\n", r"line 1: expected 'i h_i' or 'i j J_ij'"),
        ("sgb", "2 2 1.0\n", r"self-coupling J_2,2 = 1.0 .*a field is written 'i h_i'"),
    ],
)
def test_reader_errors(tmp_path, format, text, match):  # noqa: A002
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(ArnnGenError, match=match) as caught:
        read_couplings(path, format)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_reader_argument_and_file_errors(tmp_path):
    good = write(tmp_path, "ok.txt", "0 1 1.0\n")
    with pytest.raises(ArnnGenError, match=r"the couplings format must be one of"):
        read_couplings(good, "csv")
    with pytest.raises(ArnnGenError, match=r"does not exist"):
        read_couplings(tmp_path / "missing.txt")
    with pytest.raises(ArnnGenError, match=r"is a directory"):
        read_couplings(tmp_path)
    with pytest.raises(ArnnGenError, match=r"spin index 1 needs N > 1 spins; the limit is N <= 1"):
        read_couplings(good, max_n=1)
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(ArnnGenError, match=r"cannot read couplings file"):
        read_couplings(tmp_path / "bad.txt", "edges")
    other = tmp_path / "other.npz"
    write_npz_members(other, {"x": np.zeros(2)})
    with pytest.raises(ArnnGenError, match=r"holds neither a sparse system .* nor a dense one"):
        read_couplings(other)
    dense_path = tmp_path / "dense.npz"
    dense_module.save(curie_weiss(30), dense_path)
    with pytest.raises(ArnnGenError, match=r"has N = 30 spins"):
        read_couplings(dense_path, max_n=20)


def test_reader_agrees_with_the_dense_loader(tmp_path):
    system = random_graph(15, 0.3, 8)
    path = tmp_path / "graph.txt"
    dense_module.save(system.to_dense(), path)
    assert read_couplings(path) == SparseHamiltonian.from_dense(dense_module.load(path))


def test_reader_builds_no_quadratic_array(tmp_path):
    graph = rrg(100_000, seed=2)
    path = tmp_path / "big.txt"
    graph.save(path)
    tracemalloc.start()
    try:
        loaded = read_couplings(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert loaded.edges.tolist() == graph.edges.tolist()
    assert np.array_equal(loaded.weights, graph.weights)
    assert peak < 150 * 2**20


# --------------------------------------------------------------------------------------
# Orders and frontiers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("L", "W"), [(2, 2), (3, 4), (4, 3), (5, 5), (1, 6)])
def test_open_lattice_frontier_has_width_w_minus_one(L, W):  # noqa: N803
    system = ising2d(L, W, boundary="open")
    order = site_order(system, "natural")
    found = frontier(system, order)
    brute = brute_frontier(system, order)
    assert as_lists(found) == brute
    # The definition counts the later sites only: a row-major open lattice gives W - 1.
    assert found.width == max(len(members) for members in brute) == (W - 1 if L > 1 else 0)


def test_periodic_lattice_frontier_is_about_twice_as_wide():
    system = ea2d(5, 6, seed=0)
    found = frontier(system)
    assert as_lists(found) == brute_frontier(system, np.arange(30))
    assert 6 < found.width <= 2 * 6


@pytest.mark.parametrize("seed", range(6))
def test_frontier_matches_the_definition_on_random_graphs(seed):
    rng = np.random.default_rng(seed)
    N = int(rng.integers(1, 12))  # noqa: N806
    system = random_graph(N, float(rng.uniform(0.0, 0.6)), seed)
    order = rng.permutation(N)
    found = frontier(system, order)
    assert as_lists(found) == brute_frontier(system, order)
    assert found.total == sum(map(len, as_lists(found))) == found.members.shape[0]
    assert found.width == int(found.sizes().max(initial=0))
    assert found.order.tolist() == order.tolist() and not found.members.flags.writeable


def test_frontier_fills_in_blocks(monkeypatch):
    system = ea2d(7, 6, seed=1)
    order = np.random.default_rng(0).permutation(system.N)
    whole = frontier(system, order)
    monkeypatch.setattr(ordering, "_FILL_BLOCK", 1)  # blocks of 2N members
    assert as_lists(frontier(system, order)) == as_lists(whole)


def test_rcm_reduces_the_width_of_a_shuffled_lattice():
    lattice = ea2d(12, boundary="open", seed=0)
    shuffled = relabel(lattice, np.random.default_rng(1).permutation(lattice.N))
    natural = frontier(shuffled, site_order(shuffled, "natural")).width
    bandwidth_reduced = frontier(shuffled, site_order(shuffled, "rcm")).width
    assert bandwidth_reduced <= 2 * 12 < natural
    assert site_order(shuffled).tolist() == site_order(shuffled, "rcm").tolist()  # auto
    assert sorted(site_order(shuffled, "rcm").tolist()) == list(range(lattice.N))


def test_auto_order():
    lattice = ea3d(3, seed=0)
    assert site_order(lattice).tolist() == list(range(27))
    chain = SparseHamiltonian(5, [[0, 1], [1, 2], [2, 3], [3, 4]], np.ones(4), np.zeros(5))
    assert site_order(chain).tolist() == list(range(5))  # natural wins the tie
    assert site_order(chain.to_dense(), "natural").tolist() == list(range(5))
    assert (
        frontier(chain.to_dense()).width == frontier(chain).width == 0
    )  # no later site couples before p


def test_order_and_frontier_errors(monkeypatch):
    system = ising2d(3)
    cases = [
        (lambda: site_order(system, "metis"), r"the site order must be one of"),
        (lambda: site_order("system"), r"expected a SparseHamiltonian or a Hamiltonian, got str"),
        (lambda: frontier(system, np.arange(8)), r"integer array of shape \(9,\)"),
        (lambda: frontier(system, np.arange(9.0)), r"got dtype float64"),
        (lambda: frontier(system, np.arange(1, 10)), r"must hold the sites 0..8"),
        (lambda: frontier(system, np.r_[0, 0, np.arange(2, 9)]), r"site 0 appears 2 times"),
    ]
    for call, match in cases:
        with pytest.raises(ArnnGenError, match=match):
            call()
    monkeypatch.setitem(sys.modules, "scipy.sparse.csgraph", None)
    with pytest.raises(ArnnGenError, match=r"the 'rcm' site order needs scipy"):
        site_order(rrg(10, seed=0), "rcm")
    assert site_order(rrg(10, seed=0)).tolist() == list(range(10))  # auto: natural
    assert site_order(system).tolist() == list(range(9))  # lattices need no scipy


def test_frontier_refuses_a_huge_total_before_allocating():
    graph = rrg(100_000, seed=3)
    tracemalloc.start()
    try:
        with pytest.raises(ArnnGenError, match=r"the frontiers of this order hold \d+ members"):
            frontier(graph)  # natural order of an expander: width ~ N, total ~ N^2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20


def test_frontier_invariants_are_checked():
    with pytest.raises(ArnnGenError, match=r"indptr must rise from 0"):
        Frontier(np.arange(2), np.array([0, 2, 1]), np.array([1]), 2, 1)
    with pytest.raises(ArnnGenError, match=r"width 1 and total 1 must be"):
        Frontier(np.arange(2), np.array([0, 2, 2]), np.array([1, 1]), 1, 1)
    found = Frontier(np.arange(3), [0, 1, 1, 1], [1], 1, 1)
    assert found.sizes().tolist() == [1, 0, 0] and found.N == 3


def test_readers_module_lists_its_formats():
    assert readers.FORMATS == ("auto", "npz", "edges", "gset", "sgb")


def test_a_text_file_is_sized_before_it_is_read(tmp_path, monkeypatch):
    from arnn_gen.systems import readers

    path = write(tmp_path, "big", "0 1 1.0\n1 2 1.0\n")
    monkeypatch.setattr(readers, "MAX_TEXT_BYTES", 8)
    with pytest.raises(ArnnGenError, match="has 16 bytes; a text file is limited to 8"):
        read_couplings(path)
