"""Site orders and frontiers of sparse coupling graphs (docs/physics.md section 7).

An order is a permutation ``order`` of the sites: position p holds site ``order[p]``; the
autoregressive network generates the spins in that order. For an order, the frontier of
position p is

    F_p = { l > p : some neighbour of l sits at a position < p }      (positions),

the later spins whose cavity field depends on the spins before p. Its width max_p |F_p| sets
the cost of the exact sparse network (2^|F_p| configurations a site) and the size of the
sparse replica forms (sum_p |F_p| parameters).

With e_l the smallest position of a neighbour of l, l is in F_p exactly when e_l < p < l: every
position l belongs to the frontiers of one interval of p. :func:`frontier` builds them in
O(N + E + sum_p |F_p|) time and memory, never O(N^2), and refuses (before allocating) a total
above :data:`MAX_FRONTIER_TOTAL`.

Orders (:func:`site_order`): ``"natural"`` (the identity: row-major on the lattices),
``"rcm"`` (reverse Cuthill-McKee, :func:`scipy.sparse.csgraph.reverse_cuthill_mckee`; scipy is
an optional dependency, imported only here; without it ``"rcm"`` is an error) and
``"auto"``: natural for the lattice kinds, otherwise whichever of natural and rcm has the
smaller width (natural on a tie, and natural when scipy is not installed).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from arnn_gen.checks import DENSE_BUDGET_BYTES
from arnn_gen.errors import ArnnGenError
from arnn_gen.systems.dense import CurieWeiss, Hamiltonian, _readonly
from arnn_gen.systems.sparse import SparseHamiltonian

__all__ = [
    "ORDER_METHODS",
    "MAX_FRONTIER_TOTAL",
    "Frontier",
    "site_order",
    "frontier",
    "order_signature",
    "frontier_plus_sizes",
]

ORDER_METHODS: tuple[str, ...] = ("auto", "natural", "rcm")
"""The ``method`` values of :func:`site_order`."""

MAX_FRONTIER_TOTAL = DENSE_BUDGET_BYTES // 8
"""The most frontier members (sum_p |F_p|, int64) :func:`frontier` builds: 2^28, 2 GiB."""

# Kinds whose natural (row-major) order is already the narrow one (docs/physics.md section 7).
_LATTICE_KINDS = ("ea2d", "ea3d", "ising2d")
# Frontier members generated at once while filling (the bound is raised to 2N, so that the
# number of blocks times the O(N) scan of each stays O(N + total)).
_FILL_BLOCK = 2**22


def _as_sparse(system: Any) -> SparseHamiltonian:
    if isinstance(system, SparseHamiltonian):
        return system
    if isinstance(system, Hamiltonian | CurieWeiss):
        return SparseHamiltonian.from_dense(system)
    raise ArnnGenError(
        f"expected a SparseHamiltonian or a Hamiltonian, got {type(system).__name__}"
    )


# --------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------


def site_order(system: SparseHamiltonian | Hamiltonian, method: str = "auto") -> np.ndarray:
    """A site order of ``system``: ``[N]`` int64, position p holds site ``order[p]``.

    Args:
        system: a :class:`~arnn_gen.systems.sparse.SparseHamiltonian` (or a dense system).
        method: ``"natural"`` (identity), ``"rcm"`` (reverse Cuthill-McKee; needs scipy) or
            ``"auto"`` (natural for ``ea2d``, ``ea3d`` and ``ising2d``; otherwise natural or
            rcm, whichever has the smaller frontier width, natural on a tie or without
            scipy). The widths are compared in O(N + E), without building the frontiers.

    >>> from arnn_gen.systems.lattices import ising2d
    >>> site_order(ising2d(3, 4, boundary="open")).tolist()[:5]
    [0, 1, 2, 3, 4]
    """
    if not isinstance(method, str) or method not in ORDER_METHODS:
        raise ArnnGenError(f"the site order must be one of {ORDER_METHODS}, got {method!r}")
    sparse = _as_sparse(system)
    natural = np.arange(sparse.N, dtype=np.int64)
    if method == "natural" or (method == "auto" and sparse.kind in _LATTICE_KINDS):
        return natural
    if method == "rcm":
        return _reverse_cuthill_mckee(sparse)
    try:
        bandwidth_reduced = _reverse_cuthill_mckee(sparse)
    except ArnnGenError:  # scipy is not installed: the natural order
        return natural
    widths = [
        _frontier_sizes(sparse, order).max(initial=0) for order in (natural, bandwidth_reduced)
    ]
    return bandwidth_reduced if widths[1] < widths[0] else natural


def _reverse_cuthill_mckee(system: SparseHamiltonian) -> np.ndarray:
    """scipy's reverse Cuthill-McKee order of the coupling graph, ``[N]`` int64."""
    try:
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import reverse_cuthill_mckee
    except ImportError:
        raise ArnnGenError(
            "the 'rcm' site order needs scipy, which is not installed (pip install scipy)"
        ) from None
    indptr, indices, _ = system.neighbours()
    pattern = csr_matrix(
        (np.ones(indices.shape[0]), indices.astype(np.int32), indptr.astype(np.int32)),
        shape=(system.N, system.N),
    )
    return np.asarray(reverse_cuthill_mckee(pattern, symmetric_mode=True), dtype=np.int64)


def _check_order(order: Any, n_spins: int) -> np.ndarray:
    """``order`` as an int64 permutation of range(N), or a one-line error."""
    raw = np.asarray(order)
    if raw.dtype.kind not in "iu" or raw.shape != (n_spins,):
        raise ArnnGenError(
            f"a site order must be an integer array of shape ({n_spins},), "
            f"got dtype {raw.dtype} and shape {raw.shape}"
        )
    result = raw.astype(np.int64)
    if result.min() < 0 or result.max() >= n_spins:
        raise ArnnGenError(f"a site order must hold the sites 0..{n_spins - 1}")
    counts = np.bincount(result, minlength=n_spins)
    if np.any(counts != 1):
        site = int(np.flatnonzero(counts != 1)[0])
        raise ArnnGenError(
            f"a site order must hold every site once, site {site} appears {int(counts[site])} times"
        )
    return result


# --------------------------------------------------------------------------------------
# Frontiers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Frontier:
    """The frontiers of a site order (docs/physics.md section 7), in positions of the order.

    Attributes:
        order: ``[N]`` int64, position p holds site ``order[p]``.
        indptr: ``[N + 1]`` int64: F_p is ``members[indptr[p]:indptr[p + 1]]``.
        members: ``[total]`` int64, the positions l > p in F_p, increasing within each p.
        width: max_p |F_p| (0 for a graph without edges).
        total: sum_p |F_p|.

    All arrays are read-only.
    """

    order: np.ndarray  # [N]
    indptr: np.ndarray  # [N + 1]
    members: np.ndarray  # [total]
    width: int
    total: int

    def __post_init__(self) -> None:
        order, indptr, members = (
            _private_int64(self.order),
            _private_int64(self.indptr),
            _private_int64(self.members),
        )
        n_spins = order.shape[0]
        if order.ndim != 1 or indptr.shape != (n_spins + 1,) or members.ndim != 1:
            raise ArnnGenError(
                f"a Frontier needs order [N], indptr [N + 1] and members [total], got shapes "
                f"{order.shape}, {indptr.shape} and {members.shape}"
            )
        sizes = np.diff(indptr)
        if indptr[0] != 0 or np.any(sizes < 0) or indptr[-1] != members.shape[0]:
            raise ArnnGenError("a Frontier's indptr must rise from 0 to the number of members")
        if self.total != members.shape[0] or self.width != int(sizes.max(initial=0)):
            raise ArnnGenError(
                f"a Frontier's width {self.width} and total {self.total} must be max |F_p| "
                f"= {int(sizes.max(initial=0))} and sum |F_p| = {members.shape[0]}"
            )
        object.__setattr__(self, "order", _readonly(order))
        object.__setattr__(self, "indptr", _readonly(indptr))
        object.__setattr__(self, "members", _readonly(members))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "total", int(self.total))

    @property
    def N(self) -> int:  # noqa: N802 (physics name)
        """Number of spins."""
        return self.order.shape[0]

    def sizes(self) -> np.ndarray:
        """``[N]`` int64: |F_p| for each position p."""
        return np.diff(self.indptr)

    def at(self, p: int) -> np.ndarray:
        """F_p: ``[|F_p|]`` int64 positions, increasing."""
        return self.members[self.indptr[p] : self.indptr[p + 1]]


def _private_int64(value: Any) -> np.ndarray:
    """``value`` as an int64 array the Frontier may freeze: a read-only int64 array as is
    (no copy of a large member list), anything else copied."""
    if isinstance(value, np.ndarray) and value.dtype == np.int64 and not value.flags.writeable:
        return value
    return np.array(value, dtype=np.int64)


def _smallest_neighbour_positions(system: SparseHamiltonian, order: np.ndarray) -> np.ndarray:
    """``[N]`` int64: for each position q, e_q = the smallest position of a neighbour of the
    site at q; N for a site without neighbours."""
    n_spins = system.N
    position = np.empty(n_spins, dtype=np.int64)
    position[order] = np.arange(n_spins, dtype=np.int64)  # site -> position
    indptr, indices, _ = system.neighbours()
    degree = np.diff(indptr)
    smallest = np.full(n_spins, n_spins, dtype=np.int64)  # by site
    has = degree > 0
    if indices.size:
        smallest[has] = np.minimum.reduceat(position[indices], indptr[:-1][has])
    return smallest[order]  # by position


def _frontier_intervals(
    system: SparseHamiltonian, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The positions q that join some frontier, their p-intervals [low, high) (q is in F_p
    exactly for low <= p < high, with low = e_q + 1 and high = q), and |F_p| ``[N]``; all in
    O(N + E)."""
    n_spins = system.N
    low = _smallest_neighbour_positions(system, order) + 1
    high = np.arange(n_spins, dtype=np.int64)
    alive = low < high
    positions, low, high = high[alive], low[alive], high[alive]
    change = np.bincount(low, minlength=n_spins + 1) - np.bincount(high, minlength=n_spins + 1)
    return positions, low, high, np.cumsum(change[:n_spins])


def _frontier_sizes(system: SparseHamiltonian, order: np.ndarray) -> np.ndarray:
    """``[N]`` int64 |F_p|, in O(N + E)."""
    return _frontier_intervals(system, order)[3]


def frontier(system: SparseHamiltonian | Hamiltonian, order: Any = None) -> Frontier:
    """The frontiers F_p of ``system`` in the site order ``order`` (default natural).

    F_p = { l > p : some neighbour of l sits at a position < p }, in positions of the order
    (docs/physics.md section 7). Built in O(N + E + total) time and memory; a total above
    :data:`MAX_FRONTIER_TOTAL` is refused before the members are allocated.

    >>> from arnn_gen.systems.lattices import ising2d
    >>> found = frontier(ising2d(3, 4, boundary="open"))
    >>> found.width, found.at(5).tolist()
    (3, [6, 7, 8])
    """
    sparse = _as_sparse(system)
    n_spins = sparse.N
    order = np.arange(n_spins, dtype=np.int64) if order is None else _check_order(order, n_spins)
    positions, low, high, sizes = _frontier_intervals(sparse, order)  # q, its p-interval
    indptr = np.zeros(n_spins + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    total = int(indptr[-1])
    if total > MAX_FRONTIER_TOTAL:
        raise ArnnGenError(
            f"the frontiers of this order hold {total} members (width "
            f"{int(sizes.max())}); the limit is {MAX_FRONTIER_TOTAL}: use a narrower order"
        )
    members = np.empty(total, dtype=np.int64)
    budget = max(_FILL_BLOCK, 2 * n_spins)
    start = 0
    while start < n_spins:
        # The block [start, stop) holds at most `budget` members (a single p at least).
        stop = int(np.searchsorted(indptr, indptr[start] + budget, side="right")) - 1
        stop = min(max(stop, start + 1), n_spins)
        inside = (low < stop) & (high > start)
        first = np.maximum(low[inside], start)  # [k] first p of each q in the block
        count = np.minimum(high[inside], stop) - first  # [k]
        ends = np.cumsum(count)
        p_of = np.repeat(first - (ends - count), count) + np.arange(ends[-1] if ends.size else 0)
        q_of = np.repeat(positions[inside], count)  # q increasing: the stable sort keeps it
        members[indptr[start] : indptr[stop]] = q_of[np.argsort(p_of, kind="stable")]
        start = stop
    width = int(sizes.max(initial=0))
    return Frontier(_readonly(order), _readonly(indptr), _readonly(members), width, total)


def order_signature(order: Any) -> str:
    """sha256 of a site order written as its decimal indices joined by commas: what an
    emitted frontier module checks its sidecar's order against (with hashlib and str only,
    so that the module needs no numpy)."""
    text = ",".join(str(int(site)) for site in np.asarray(order).tolist())
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def frontier_plus_sizes(system: SparseHamiltonian, order: Any) -> np.ndarray:
    """|F^+_p| for every position p of ``order`` (docs/physics.md section 7): l is in F^+_p
    for first_l <= p < l, first_l the earliest neighbour of l. O(N + E)."""
    N = system.N  # noqa: N806
    position = np.empty(N, dtype=np.int64)
    position[np.asarray(order)] = np.arange(N)
    a, b = position[system.edges[:, 0]], position[system.edges[:, 1]]
    early, late = np.minimum(a, b), np.maximum(a, b)
    first = np.arange(N)
    np.minimum.at(first, late, early)
    steps = np.zeros(N + 1, dtype=np.int64)
    np.add.at(steps, first, 1)
    np.add.at(steps, np.arange(N), -1)
    return np.cumsum(steps)[:N]
