"""Seeded generators of the sparse systems: Edwards-Anderson spin glasses in 2-D and 3-D, the
2-D Ising ferromagnet and spin glasses on random regular graphs (docs/physics.md sections 1, 7).

Each instance is a pure function of its arguments, the same on every machine: the random
numbers come from ``numpy.random.Generator(numpy.random.PCG64(seed))`` in the order each
docstring states, and the couplings are drawn in one call, one per edge, in the stored order
of the edges (pairs (i, j) with i < j, sorted lexicographically: the order of
:attr:`SparseHamiltonian.edges <arnn_gen.systems.sparse.SparseHamiltonian.edges>`). NumPy keeps
these streams fixed across versions except to fix bugs (NEP 19); the signature of an instance
(:meth:`~arnn_gen.systems.sparse.SparseHamiltonian.signature`) detects any change.

Disorder: ``"gaussian"`` draws ``J_ij = rng.standard_normal(E)``, i.e. J ~ Normal(0, 1);
``"pm1"`` draws ``b = rng.integers(0, 2, size=E)`` (int64) and sets J_ij = +1 where b = 1,
-1 where b = 0. A Gaussian draw of exactly 0.0 (probability 0) would make no edge.

Every argument is validated with a one-line :class:`~arnn_gen.errors.ArnnGenError`, and the
number of spins is checked against :data:`~arnn_gen.checks.MAX_SPINS` before anything of that
size is allocated.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from arnn_gen.checks import MAX_SPINS, check_int, check_real
from arnn_gen.errors import ArnnGenError
from arnn_gen.systems.sparse import MAX_EDGES, SparseHamiltonian

__all__ = ["BOUNDARIES", "DISORDERS", "ea2d", "ea3d", "ising2d", "rrg", "lattice_bonds"]

BOUNDARIES: tuple[str, ...] = ("open", "periodic")
"""Boundary conditions of the lattices."""

DISORDERS: tuple[str, ...] = ("gaussian", "pm1")
"""Coupling distributions of the spin glasses: Normal(0, 1), or +-1 with probability 1/2."""

# Pairings tried by rrg() before it gives up (its docstring).
_MAX_PAIRINGS = 10_000


# --------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ArnnGenError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_size(shape: str, size: int) -> None:
    """Refuse a lattice of more than MAX_SPINS sites before anything is allocated."""
    if size > MAX_SPINS:
        raise ArnnGenError(
            f"the {shape} lattice has N = {size} spins; the limit is N <= {MAX_SPINS}"
        )


def _check_wraps(boundary: str, extents: dict[str, int]) -> None:
    """A periodic direction needs at least 3 sites: with 2 the wrap doubles a bond, with 1 it
    makes a self-loop."""
    if boundary != "periodic":
        return
    for name, extent in extents.items():
        if extent < 3:
            raise ArnnGenError(
                f"a periodic lattice needs {name} >= 3 (the wrap would double a bond or couple "
                f"a site to itself), got {name}={extent}; use boundary='open'"
            )


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def _draw_couplings(rng: np.random.Generator, disorder: str, count: int) -> np.ndarray:
    """``count`` couplings in one call (module docstring): [E] float64."""
    if disorder == "gaussian":
        return rng.standard_normal(count)
    return np.where(rng.integers(0, 2, size=count) == 1, 1.0, -1.0)


# --------------------------------------------------------------------------------------
# Lattice bonds
# --------------------------------------------------------------------------------------


def lattice_bonds(geometry: str, L: int, W: int | None = None, *, periodic: bool) -> np.ndarray:  # noqa: N803
    """The nearest-neighbour bonds of a lattice, normalised: ``[E, 2]`` int64, i < j, sorted.

    ``"square"``: L rows of W sites, site r * W + c (row-major); each site bonds to its right
    (r, c + 1) and lower (r + 1, c) neighbours, wrapping when ``periodic``.
    ``"cubic"``: L^3 sites, site (z * L + y) * L + x; bonds along +x, +y and +z.
    A periodic direction must have at least 3 sites. Open: (L - 1) W + L (W - 1) square
    bonds, 3 L^2 (L - 1) cubic; periodic: 2 L W and 3 L^3.
    """
    _check_choice("the lattice geometry", geometry, ("square", "cubic"))
    length = check_int("the lattice length L", L, 1)
    if geometry == "cubic":
        _check_size(f"{length}^3", length**3)
        _check_wraps("periodic" if periodic else "open", {"L": length})
        site = np.arange(length**3, dtype=np.int64).reshape(length, length, length)  # [z, y, x]
        steps = [np.roll(site, -1, axis=axis) for axis in (2, 1, 0)]  # +x, +y, +z neighbours
        pairs = []
        for axis, neighbour in zip((2, 1, 0), steps, strict=True):
            first, second = site, neighbour
            if not periodic:  # drop the bonds that wrap around
                cut = [slice(None)] * 3
                cut[axis] = slice(0, length - 1)
                first, second = site[tuple(cut)], neighbour[tuple(cut)]
            pairs.append(np.stack([first.ravel(), second.ravel()], axis=1))
    else:
        width = length if W is None else check_int("the lattice width W", W, 1)
        _check_size(f"{length} x {width}", length * width)
        _check_wraps("periodic" if periodic else "open", {"L": length, "W": width})
        site = np.arange(length * width, dtype=np.int64).reshape(length, width)  # [r, c]
        right, down = np.roll(site, -1, axis=1), np.roll(site, -1, axis=0)
        if periodic:
            pairs = [
                np.stack([site.ravel(), right.ravel()], 1),
                np.stack([site.ravel(), down.ravel()], 1),
            ]
        else:
            pairs = [
                np.stack([site[:, :-1].ravel(), right[:, :-1].ravel()], axis=1),
                np.stack([site[:-1, :].ravel(), down[:-1, :].ravel()], axis=1),
            ]
    bonds = np.concatenate(pairs)  # [E, 2]
    bonds = np.stack([bonds.min(axis=1), bonds.max(axis=1)], axis=1)
    order = np.lexsort((bonds[:, 1], bonds[:, 0]))
    return np.ascontiguousarray(bonds[order])


# --------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------


def ea2d(
    L: int,  # noqa: N803
    W: int | None = None,  # noqa: N803
    *,
    boundary: str = "periodic",
    disorder: str = "gaussian",
    h: float = 0.0,
    seed: int = 0,
) -> SparseHamiltonian:
    """An Edwards-Anderson spin glass on an L x W square lattice (W defaults to L).

    Sites r * W + c (L rows of W sites, row-major); bonds to the right and lower neighbours,
    wrapping for ``boundary="periodic"`` (which needs L >= 3 and W >= 3). The couplings are
    drawn with ``rng = numpy.random.Generator(numpy.random.PCG64(seed))`` in one call, one per
    bond in sorted (i, j) order (:func:`lattice_bonds`): ``rng.standard_normal(E)`` for
    ``disorder="gaussian"``, ``rng.integers(0, 2, size=E)`` mapped 1 -> +1, 0 -> -1 for
    ``"pm1"``. Uniform field h_i = h.

    Provenance: ``{"L", "W", "periodic" (0/1), "pm1" (0/1), "h", "seed"}``.

    >>> system = ea2d(4, boundary="open", seed=1)
    >>> system.N, system.E, dict(system.provenance)["W"]
    (16, 24, 4)
    """
    length = check_int("the lattice length L", L, 1)
    width = length if W is None else check_int("the lattice width W", W, 1)
    _check_size(f"{length} x {width}", length * width)
    boundary = _check_choice("boundary", boundary, BOUNDARIES)
    disorder = _check_choice("disorder", disorder, DISORDERS)
    field = check_real("the field h", h)
    seed = check_int("the seed", seed, 0)
    _check_wraps(boundary, {"L": length, "W": width})
    bonds = lattice_bonds("square", length, width, periodic=boundary == "periodic")
    couplings = _draw_couplings(_rng(seed), disorder, bonds.shape[0])  # [E]
    provenance = {
        "L": length, "W": width, "periodic": int(boundary == "periodic"),
        "pm1": int(disorder == "pm1"), "h": field, "seed": seed,
    }  # fmt: skip
    n_spins = length * width
    return SparseHamiltonian(n_spins, bonds, couplings, np.full(n_spins, field), "ea2d", provenance)


def ea3d(
    L: int,  # noqa: N803
    *,
    boundary: str = "periodic",
    disorder: str = "gaussian",
    h: float = 0.0,
    seed: int = 0,
) -> SparseHamiltonian:
    """An Edwards-Anderson spin glass on an L x L x L cubic lattice.

    Sites (z * L + y) * L + x; bonds along +x, +y and +z, wrapping for
    ``boundary="periodic"`` (which needs L >= 3). Couplings drawn as in :func:`ea2d`: one call
    with ``numpy.random.Generator(numpy.random.PCG64(seed))``, one per bond in sorted (i, j)
    order. Uniform field h_i = h.

    Provenance: ``{"L", "periodic" (0/1), "pm1" (0/1), "h", "seed"}``.
    """
    length = check_int("the lattice length L", L, 1)
    _check_size(f"{length}^3", length**3)
    boundary = _check_choice("boundary", boundary, BOUNDARIES)
    disorder = _check_choice("disorder", disorder, DISORDERS)
    field = check_real("the field h", h)
    seed = check_int("the seed", seed, 0)
    _check_wraps(boundary, {"L": length})
    bonds = lattice_bonds("cubic", length, periodic=boundary == "periodic")
    couplings = _draw_couplings(_rng(seed), disorder, bonds.shape[0])  # [E]
    provenance = {
        "L": length, "periodic": int(boundary == "periodic"), "pm1": int(disorder == "pm1"),
        "h": field, "seed": seed,
    }  # fmt: skip
    n_spins = length**3
    return SparseHamiltonian(n_spins, bonds, couplings, np.full(n_spins, field), "ea3d", provenance)


def ising2d(
    L: int,  # noqa: N803
    W: int | None = None,  # noqa: N803
    *,
    boundary: str = "periodic",
    J: float = 1.0,  # noqa: N803
    h: float = 0.0,
) -> SparseHamiltonian:
    """The Ising model on an L x W square lattice: J_ij = J on every bond, h_i = h.

    Sites and bonds as in :func:`ea2d` (row-major, right and lower neighbours, periodic needs
    L >= 3 and W >= 3); no random numbers. J = 0 gives a system without edges.

    Provenance: ``{"L", "W", "periodic" (0/1), "J", "h"}``.
    """
    length = check_int("the lattice length L", L, 1)
    width = length if W is None else check_int("the lattice width W", W, 1)
    _check_size(f"{length} x {width}", length * width)
    boundary = _check_choice("boundary", boundary, BOUNDARIES)
    coupling = check_real("the coupling J", J)
    field = check_real("the field h", h)
    _check_wraps(boundary, {"L": length, "W": width})
    bonds = lattice_bonds("square", length, width, periodic=boundary == "periodic")
    provenance = {
        "L": length, "W": width, "periodic": int(boundary == "periodic"), "J": coupling,
        "h": field,
    }  # fmt: skip
    n_spins = length * width
    return SparseHamiltonian(
        n_spins, bonds, np.full(bonds.shape[0], coupling), np.full(n_spins, field), "ising2d",
        provenance,
    )  # fmt: skip


def rrg(
    N: int,  # noqa: N803
    *,
    degree: int = 3,
    disorder: str = "gaussian",
    h: float = 0.0,
    seed: int = 0,
) -> SparseHamiltonian:
    """A spin glass on a random ``degree``-regular graph of N sites (uniform over the simple
    graphs), drawn by the pairing (configuration) model with restarts.

    With ``rng = numpy.random.Generator(numpy.random.PCG64(seed))``, each attempt draws
    ``p = rng.permutation(N * degree)`` and pairs the points (p[0], p[1]), (p[2], p[3]), ...;
    point q belongs to site q // degree. An attempt with a self-loop or a repeated pair is
    discarded and the next attempt continues the same stream; a simple pairing is uniform over
    the simple regular graphs. The expected number of attempts is about
    exp((degree^2 - 1) / 4) (7.4 for degree 3, 420 for degree 5); after 10000 the call fails.
    The couplings are then drawn from the same stream, in one call, one per edge in sorted
    (i, j) order, as in :func:`ea2d`. Uniform field h_i = h.

    Needs 1 <= degree < N and N * degree even. Provenance: ``{"degree", "pm1" (0/1), "h",
    "seed"}``.

    >>> system = rrg(10, degree=3, seed=2)
    >>> system.E, set(system.degrees.tolist())
    (15, {3})
    """
    n_spins = check_int("the number of spins N", N, 2, MAX_SPINS)
    degree = check_int("the degree", degree, 1)
    if degree >= n_spins:
        raise ArnnGenError(f"the degree must be < N = {n_spins}, got degree={degree}")
    if (n_spins * degree) % 2:
        raise ArnnGenError(
            f"a {degree}-regular graph needs N * degree even, got N={n_spins}, degree={degree}"
        )
    if n_spins * degree // 2 > MAX_EDGES:
        raise ArnnGenError(
            f"a {degree}-regular graph of N = {n_spins} sites has {n_spins * degree // 2} "
            f"edges; the limit is {MAX_EDGES}"
        )
    if (degree**2 - 1) / 4 > math.log(_MAX_PAIRINGS):
        raise ArnnGenError(
            f"the pairing model accepts a simple {degree}-regular graph once in about "
            f"exp((degree^2 - 1) / 4) attempts, more than the {_MAX_PAIRINGS} it makes: "
            "use degree <= 6"
        )
    disorder = _check_choice("disorder", disorder, DISORDERS)
    field = check_real("the field h", h)
    seed = check_int("the seed", seed, 0)
    rng = _rng(seed)
    keys = None
    for _ in range(_MAX_PAIRINGS):
        points = rng.permutation(n_spins * degree)  # [N degree]
        first, second = points[0::2] // degree, points[1::2] // degree  # [E] sites
        if np.any(first == second):
            continue
        keys = np.sort(np.minimum(first, second) * n_spins + np.maximum(first, second))
        if not np.any(keys[1:] == keys[:-1]):
            break
        keys = None
    if keys is None:
        raise ArnnGenError(
            f"no simple {degree}-regular graph on N = {n_spins} sites in {_MAX_PAIRINGS} "
            f"pairings (each succeeds with probability about exp(-(degree^2 - 1) / 4)); "
            f"use a smaller degree"
        )
    edges = np.stack([keys // n_spins, keys % n_spins], axis=1)  # [E, 2], sorted
    couplings = _draw_couplings(rng, disorder, edges.shape[0])  # [E]
    provenance = {"degree": degree, "pm1": int(disorder == "pm1"), "h": field, "seed": seed}
    return SparseHamiltonian(n_spins, edges, couplings, np.full(n_spins, field), "rrg", provenance)
