"""The choice of exact route for a system: :func:`exact`.

Routes, first that applies:

1. kind ``"cw"``: the binomial formula (:func:`~arnn_gen.exact.curie_weiss_exact`, any N);
2. a dense system with N <= MAX_ENUMERATION_N: enumeration
   (:func:`~arnn_gen.exact.enumerate_exact`);
3. a sparse system (one with ``edges``) or a dense one with N > MAX_ENUMERATION_N, whose
   elimination width is at most MAX_FRONTIER_WIDTH along the best of a few orders:
   frontier elimination (:func:`~arnn_gen.exact.frontier_exact`);
4. kind ``"ising2d"`` with a provenance naming a periodic L x W torus with coupling J and
   h = 0, whose couplings are those of that torus: Kaufman's formula
   (:func:`~arnn_gen.exact.kaufman_exact`);

otherwise the system is refused with one line saying why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arnn_gen.checks import check_beta
from arnn_gen.errors import ArnnGenError
from arnn_gen.exact.enumeration import (
    MAX_ENUMERATION_N,
    ExactResult,
    curie_weiss_exact,
    enumerate_exact,
)
from arnn_gen.exact.frontier import (
    MAX_FRONTIER_WIDTH,
    _graph_of,
    _structure_of_graph,
    frontier_exact,
    frontier_log_z,
)
from arnn_gen.exact.ising2d import kaufman_exact, kaufman_log_z
from arnn_gen.systems import CurieWeiss, as_hamiltonian

__all__ = ["exact", "reference_log_z"]


def _candidate_orders(n_spins: int, edges: np.ndarray) -> list[np.ndarray]:
    """The identity, reverse Cuthill-McKee when scipy is importable, and their reverses."""
    identity = np.arange(n_spins, dtype=np.int64)
    orders = [identity]
    try:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import reverse_cuthill_mckee
    except ImportError:  # scipy is optional: the identity and its reverse only
        pass
    else:
        ones = np.ones(2 * len(edges), dtype=np.int8)
        rows = np.concatenate([edges[:, 0], edges[:, 1]])
        cols = np.concatenate([edges[:, 1], edges[:, 0]])
        graph = coo_matrix((ones, (rows, cols)), shape=(n_spins, n_spins)).tocsr()
        orders.append(reverse_cuthill_mckee(graph, symmetric_mode=True).astype(np.int64))
    return orders + [order[::-1].copy() for order in orders]


def _best_order(system: Any) -> tuple[np.ndarray, int]:
    """The candidate order of smallest elimination width (the first among equals), its width."""
    graph = _graph_of(system)
    n_spins, edges, _, _ = graph
    best: tuple[np.ndarray, int] | None = None
    for order in _candidate_orders(n_spins, edges):
        width = _structure_of_graph(graph, order).width
        if best is None or width < best[1]:
            best = (order, width)
    assert best is not None
    return best


def _torus(system: Any) -> tuple[int, int, float] | None:
    """(L, W, J) of an ``"ising2d"`` periodic torus with h = 0 whose couplings match, or None."""
    if getattr(system, "kind", None) != "ising2d":
        return None
    provenance = getattr(system, "provenance", None) or {}
    side_l, side_w, coupling = (provenance.get(key) for key in ("L", "W", "J"))
    if side_l is None or side_w is None or coupling is None or not provenance.get("periodic"):
        return None
    if provenance.get("h", 0.0) != 0.0:
        return None
    side_l, side_w, coupling = int(side_l), int(side_w), float(coupling)
    n_spins, edges, weights, fields = _graph_of(system)
    # L, W >= 3: every bond once (smaller tori double their bonds, and fit the other routes).
    if (
        min(side_l, side_w) < 3
        or n_spins != side_l * side_w
        or np.any(fields != 0.0)
        or len(edges) != 2 * n_spins
        or np.any(weights != coupling)
    ):
        return None
    return side_l, side_w, coupling


def exact(system: Any, beta: float) -> ExactResult:
    """Exact thermodynamics of ``system`` at ``beta``, by the best available route.

    See the module docstring for the routes. Frontier elimination runs along the order of
    smallest elimination width among the identity, reverse Cuthill-McKee (when scipy is
    importable) and their reverses; its ``magnetization_abs`` is None beyond
    MAX_MAGNETIZATION_WORK, and Kaufman's is always None.
    """
    sparse = hasattr(system, "edges")
    if not sparse and not isinstance(system, CurieWeiss):
        system = as_hamiltonian(system)
    beta = check_beta(beta)
    kind = getattr(system, "kind", "general")
    n_spins = int(system.N)
    if kind == "cw":
        provenance = system.provenance
        return curie_weiss_exact(n_spins, beta, provenance["J"], provenance["h"])
    if not sparse and n_spins <= MAX_ENUMERATION_N:
        return enumerate_exact(system, beta)
    # Every spin has at most w later neighbours (they are all active after it), so a
    # system with more than w N couplings has width > w along every order.
    n_couplings = int(
        np.count_nonzero(np.asarray(system.weights)) if sparse else np.count_nonzero(system.J) // 2
    )
    if n_couplings > MAX_FRONTIER_WIDTH * n_spins:
        order, width = None, None
    else:
        order, width = _best_order(system)
    if width is not None and width <= MAX_FRONTIER_WIDTH:
        return frontier_exact(system, beta, order)
    torus = _torus(system)
    if torus is not None:
        side_l, side_w, coupling = torus
        return kaufman_exact(side_l, side_w, beta, coupling)
    why = "" if kind != "ising2d" else (
        "; Kaufman's formula needs an ising2d torus (periodic, h = 0) with L, W, J in its "
        "provenance"
    )  # fmt: skip
    found = (
        f"this system's best order has width {width}"
        if width is not None
        else f"{n_couplings} couplings > {MAX_FRONTIER_WIDTH} N: wider along every order"
    )
    raise ArnnGenError(
        f"exact enumeration is limited to N <= {MAX_ENUMERATION_N} spins (got N={n_spins}); "
        f"the Curie-Weiss formula covers any N, frontier elimination any N of elimination "
        f"width <= {MAX_FRONTIER_WIDTH} ({found}){why}"
    )


def reference_log_z(
    system: Any, beta: float, *, max_width: int = MAX_FRONTIER_WIDTH
) -> float | None:
    """log Z of ``system`` at ``beta`` by the routes of :func:`exact` that give it cheaply,
    or None: the Curie-Weiss formula, enumeration (dense, N <= MAX_ENUMERATION_N), frontier
    elimination of width <= ``max_width`` (the backward sweep alone) and Kaufman's formula.
    What a training run compares with at every beta."""
    sparse = hasattr(system, "edges")
    if not sparse and not isinstance(system, CurieWeiss):
        system = as_hamiltonian(system)
    beta = check_beta(beta)
    if getattr(system, "kind", "general") == "cw" or (not sparse and system.N <= MAX_ENUMERATION_N):
        return exact(system, beta).log_z
    torus = _torus(system)
    if torus is not None:
        return kaufman_log_z(*torus[:2], beta, torus[2])
    n_couplings = int(
        np.count_nonzero(np.asarray(system.weights)) if sparse else np.count_nonzero(system.J) // 2
    )
    if n_couplings > max_width * system.N:
        return None
    order, width = _best_order(system)
    return frontier_log_z(system, beta, order) if width <= max_width else None
