"""Frontier elimination: exact references for sparse couplings at any N (docs/physics.md section 7).

Everything is computed along a site order: position p holds site ``order[p]`` (default: the
identity), and the sites are relabelled by their positions 0..N-1. With that labelling the
*active set* of the cut before position k and the *frontier* of site k are

    S_k = { l >= k : J_{s,l} != 0 for some s < k },      F_k = S_k \\ {k},

the later spins coupled to earlier ones. The **elimination width** is w = max_k |S_k|; the
frontier width of the sparse exact network, max_k |F_k|, is w or w - 1.

One backward elimination sums the spins out from the last position to the first, holding one
table over the active configurations (log weights, float64 torch):

    T_k(x_{S_k}) = log sum_{x_l : l >= k, l not in S_k}
                   exp( beta sum_{k <= l < l'} J_ll' x_l x_l'
                        + beta sum_{l >= k, l not in S_k} h_l x_l ),

T_N = 0 and T_0 = log Z. The step from T_{k+1} to T_k passes through the biases of the sparse
exact network: with D_k = S_{k+1} \\ F_k (the later neighbours of k that no earlier spin reaches),

    b^{+-}_k(x_{F_k}) = log sum_{x_{D_k}} exp( T_{k+1} + beta sum_{l in D_k} h_l x_l
                                               +- beta sum_{l > k} J_kl x_l ),

and T_k = b_k with x_k kept (when k is in S_k) or logaddexp(b^+ + beta h_k, b^- - beta h_k).
These b are the b^{+-}_{i,c} of section 7 (the fields of the frontier spins stay in
phi_{i,l}), so :func:`frontier_tables` gets all of them from this one sweep, and
:func:`frontier_conditionals` the exact P(x_k = +1 | x_<k) of any samples.

A forward sweep gives the averages: P_k(x_{S_k}) = log sum_{x_<k} exp(-beta H_<k) (the part of
H among the earlier spins and their couplings to S_k) and, exactly,

    log P(x_k, x_{S_{k+1}}) = P_k + beta x_k (h_k + sum_{l > k} J_kl x_l)
                              + T_{k+1} + beta sum_{l in S_{k+1}} h_l x_l - log Z,

whence <x_k> and <x_k sum_{l > k} J_kl x_l>, i.e. the magnetisations and <H>. The tables T_{k+1}
it needs are kept when they fit in a memory budget and recomputed from checkpoints otherwise
(recursive bisection of the positions: O(log N) extra tables, O(N log N) extra steps at worst).

Cost: O(N 2^w) time, tables of at most 2^(w+1) float64 numbers; widths above
:data:`MAX_FRONTIER_WIDTH` are refused (the width is computed in O(E log E + N), before
anything exponential is allocated). The distribution of M = sum_i x_i, needed for <|M|>,
adds a count axis to the backward tables (the number of -1 among the spins summed out):
sum_k 2^(|S_{k+1}|+1) (N - k - |S_{k+1}|) <= N^2 2^(w+1) table entries, computed when that is
at most :data:`MAX_MAGNETIZATION_WORK` (else ``magnetization_abs`` is None, see
:class:`~arnn_gen.exact.ExactResult`).

Systems are duck-typed: any object with ``N``, ``h`` (``[N]``) and either ``edges`` (int
``[E, 2]``) with ``weights`` (``[E]``), or dense couplings ``J`` (``[N, N]``, e.g.
:class:`~arnn_gen.systems.Hamiltonian`, whose nonzero upper triangle is taken). A zero
coupling is no edge.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from arnn_gen.checks import check_beta
from arnn_gen.errors import ArnnGenError
from arnn_gen.exact.enumeration import ExactResult

__all__ = [
    "MAX_FRONTIER_WIDTH",
    "MAX_MAGNETIZATION_WORK",
    "MAX_FRONTIER_TABLE_ENTRIES",
    "FrontierTables",
    "elimination_width",
    "frontier_exact",
    "frontier_log_z",
    "frontier_log_prob",
    "frontier_conditionals",
    "frontier_tables",
]

MAX_FRONTIER_WIDTH = 24
"""Largest elimination width w accepted: tables of 2^(w+1) float64 numbers (256 MiB)."""

MAX_MAGNETIZATION_WORK = 2**27
"""<|M|> is computed by frontier elimination when its count tables hold at most this many
entries in all, sum_k 2^(|S_{k+1}|+1) (N - k - |S_{k+1}|) <= N^2 2^(w+1) (1 GiB of float64)."""

MAX_FRONTIER_TABLE_ENTRIES = 2**26
"""Largest sum_i 2^|F_i| :func:`frontier_tables` will hold (two rows: 1 GiB of float64)."""

# Memory for the tables T_{k+1} kept between the backward and the forward sweep of
# frontier_exact; beyond it they are recomputed from checkpoints (see _forward_sweep).
_TABLE_BUDGET_BYTES = 2**30
# At most this many tables are kept at once (each tensor has a fixed overhead).
_MAX_KEPT_TABLES = 4096
# Samples x frontier configurations evaluated at once by frontier_conditionals.
_CONDITIONAL_CHUNK = 2**22

_DTYPE = torch.float64
# Index 0 of every spin axis is x = -1, index 1 is x = +1.
_SPIN = torch.tensor([-1.0, 1.0], dtype=_DTYPE)


# --------------------------------------------------------------------------------------
# The system along the order
# --------------------------------------------------------------------------------------


def _graph_of(system: Any) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(N, edges [E, 2] int64 with i < j, weights [E] float64 nonzero, h [N] float64)."""
    if (
        not hasattr(system, "N")
        or not hasattr(system, "h")
        or not (hasattr(system, "edges") or hasattr(system, "J"))
    ):
        raise ArnnGenError(
            "frontier elimination needs a system with N, h and either edges and weights or J, "
            f"got {type(system).__name__}"
        )
    n_spins = int(system.N)
    if n_spins < 1:
        raise ArnnGenError(f"the number of spins N must be >= 1, got N={n_spins}")
    fields = _float_array("the fields h", system.h)
    if fields.shape != (n_spins,):
        raise ArnnGenError(f"the fields h must have shape ({n_spins},), got {fields.shape}")
    if hasattr(system, "edges"):
        edges = _as_numpy(system.edges)
        if edges.size == 0:
            edges = np.zeros((0, 2), dtype=np.int64)
        if edges.dtype.kind not in "iu" or edges.ndim != 2 or edges.shape[1] != 2:
            raise ArnnGenError(
                f"edges must be an integer array of shape [E, 2], got dtype {edges.dtype} "
                f"and shape {edges.shape}"
            )
        edges = edges.astype(np.int64)
        weights = _float_array("the edge weights", getattr(system, "weights", None))
        if weights.shape != (edges.shape[0],):
            raise ArnnGenError(
                f"weights must have shape ({edges.shape[0]},) to match edges, got {weights.shape}"
            )
        if edges.size and (edges.min() < 0 or edges.max() >= n_spins):
            raise ArnnGenError(f"edges must index spins 0..{n_spins - 1}")
        if np.any(edges[:, 0] == edges[:, 1]):
            i = int(edges[np.flatnonzero(edges[:, 0] == edges[:, 1])[0], 0])
            raise ArnnGenError(f"edges must join two different spins, got ({i}, {i})")
        edges = np.sort(edges, axis=1)
        keys = edges[:, 0] * n_spins + edges[:, 1]
        unique, counts = np.unique(keys, return_counts=True)
        if np.any(counts > 1):
            key = int(unique[np.argmax(counts > 1)])
            raise ArnnGenError(f"edge ({key // n_spins}, {key % n_spins}) appears more than once")
    else:
        couplings = _float_array("the couplings J", system.J)
        if couplings.shape != (n_spins, n_spins):
            raise ArnnGenError(
                f"the couplings J must have shape ({n_spins}, {n_spins}), got {couplings.shape}"
            )
        # Row by row: no temporary of size N^2 besides J itself.
        later = [np.flatnonzero(couplings[i, i + 1 :]) + i + 1 for i in range(n_spins)]
        rows = np.repeat(np.arange(n_spins), [len(cols) for cols in later])
        cols = np.concatenate(later).astype(np.int64)
        edges = np.stack([rows, cols], axis=1).astype(np.int64)
        weights = couplings[rows, cols]
    keep = weights != 0.0
    return n_spins, edges[keep], weights[keep], fields


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _float_array(name: str, value: Any) -> np.ndarray:
    try:
        array = _as_numpy(value)
    except (TypeError, ValueError) as err:
        raise ArnnGenError(f"{name} must be a real array: {err}") from None
    if array.dtype.kind not in "biuf":
        raise ArnnGenError(f"{name} must be a real array, got dtype {array.dtype}")
    array = np.array(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ArnnGenError(f"{name} must be finite")
    return array


def _check_order(order: Any, n_spins: int) -> np.ndarray:
    """The order as an int64 permutation of 0..N-1 (identity for None)."""
    if order is None:
        return np.arange(n_spins, dtype=np.int64)
    array = _as_numpy(order)
    if array.dtype.kind not in "iu" or array.shape != (n_spins,):
        raise ArnnGenError(
            f"order must be a permutation of 0..{n_spins - 1} (N={n_spins} integers), "
            f"got dtype {array.dtype} and shape {array.shape}"
        )
    array = array.astype(np.int64)
    seen = np.zeros(n_spins, dtype=bool)
    inside = (array >= 0) & (array < n_spins)
    seen[array[inside]] = True
    if not inside.all() or not seen.all():
        missing = int(np.flatnonzero(~seen)[0])
        raise ArnnGenError(
            f"order must be a permutation of 0..{n_spins - 1}: site {missing} is missing"
        )
    return array


@dataclass(frozen=True)
class _Structure:
    """The couplings relabelled by position, and the sizes of the active sets (O(E + N))."""

    N: int
    order: np.ndarray  # [N] position -> site
    h: np.ndarray  # [N] fields by position
    edges: np.ndarray  # [E, 2] positions, i < j, sorted by (i, j)
    weights: np.ndarray  # [E]
    later_ptr: np.ndarray  # [N + 1] CSR of the later neighbours: edges[later_ptr[k]:...]
    first: np.ndarray  # [N] earliest neighbour of each position (itself if none is earlier)
    active_sizes: np.ndarray  # [N + 1] |S_k|
    width: int  # max_k |S_k|

    @property
    def magnetization_work(self) -> float:
        """Entries of the count tables of <|M|>: sum_k 2^(|S_{k+1}|+1) (N - k - |S_{k+1}|)."""
        after = self.active_sizes[1:].astype(np.float64)  # [N] |S_{k+1}|
        return float(np.sum(2.0 ** (after + 1) * (self.N - np.arange(self.N) - after)))

    @property
    def frontier_sizes(self) -> np.ndarray:
        """[N] |F_k| = |S_k| - [k in S_k]."""
        positions = np.arange(self.N)
        return self.active_sizes[:-1] - (self.first < positions)


def _structure(system: Any, order: Any) -> _Structure:
    return _structure_of_graph(_graph_of(system), order)


def _structure_of_graph(
    graph: tuple[int, np.ndarray, np.ndarray, np.ndarray], order: Any
) -> _Structure:
    n_spins, edges, weights, fields = graph
    order = _check_order(order, n_spins)
    position = np.empty(n_spins, dtype=np.int64)
    position[order] = np.arange(n_spins)
    moved = position[edges]  # [E, 2]
    lo, hi = moved.min(axis=1), moved.max(axis=1)
    by_pair = np.lexsort((hi, lo))
    lo, hi, weights = lo[by_pair], hi[by_pair], weights[by_pair]
    later_ptr = np.searchsorted(lo, np.arange(n_spins + 1))
    first = np.arange(n_spins)
    np.minimum.at(first, hi, lo)
    # l is in S_k for first[l] < k <= l: +1 at first[l] + 1, -1 at l + 1.
    late = np.flatnonzero(first < np.arange(n_spins))
    steps = np.zeros(n_spins + 2, dtype=np.int64)
    np.add.at(steps, first[late] + 1, 1)
    np.add.at(steps, late + 1, -1)
    active_sizes = np.cumsum(steps)[: n_spins + 1]
    return _Structure(
        N=n_spins,
        order=order,
        h=fields[order],
        edges=np.stack([lo, hi], axis=1),
        weights=weights,
        later_ptr=later_ptr,
        first=first,
        active_sizes=active_sizes,
        width=int(active_sizes.max()),
    )


def _check_width(structure: _Structure) -> None:
    if structure.width > MAX_FRONTIER_WIDTH:
        raise ArnnGenError(
            f"frontier elimination along this order has width {structure.width} "
            f"(2^{structure.width} active configurations); the limit is width <= "
            f"{MAX_FRONTIER_WIDTH}: choose an order of smaller width"
        )


def elimination_width(system: Any, order: Any = None) -> int:
    """The elimination width w = max_k |S_k| of ``system`` along ``order``, in O(E log E + N).

    S_k is the set of spins at positions >= k coupled to a spin at a position < k; the
    elimination holds tables over 2^w (2^(w+1) in one step) active configurations. The width
    is returned whatever its size; the eliminating functions refuse w > MAX_FRONTIER_WIDTH.
    Reversing the order exchanges "later spins coupled to earlier ones" for "earlier spins
    coupled to later ones", which may differ (a star has width N - 1 with its centre first
    and 1 with its centre last); a row-major open L x W lattice has width W.
    """
    return _structure(system, order).width


# --------------------------------------------------------------------------------------
# One elimination step
# --------------------------------------------------------------------------------------


class _Step(NamedTuple):
    """The cut after position k: the axes of T_{k+1} are S_{k+1} in descending position."""

    k: int
    after: np.ndarray  # S_{k+1}, descending positions (the axes of T_{k+1})
    in_frontier: tuple[bool, ...]  # per axis of T_{k+1}: whether the spin is in F_k
    frontier: np.ndarray  # F_k, ascending positions
    joined_axes: tuple[int, ...]  # axes of D_k = S_{k+1} \ F_k
    neighbour_axes: tuple[int, ...]  # axes of the later neighbours of k
    couplings: tuple[float, ...]  # J_kl of those neighbours
    active: bool  # k in S_k: T_k keeps x_k as its last axis


def _axis_sum(n_axes: int, axes: tuple[int, ...], coefficients: Any) -> torch.Tensor:
    """sum_a coefficient_a y_{axes_a}, broadcastable to ``[2] * n_axes`` (1 on unused axes)."""
    total = torch.zeros([1] * n_axes, dtype=_DTYPE)
    for axis, coefficient in zip(axes, coefficients, strict=True):
        shape = [1] * n_axes
        shape[axis] = 2
        total = total + (float(coefficient) * _SPIN).reshape(shape)
    return total


def _sum_counting(table: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum out spin axis ``dim``, the last axis counting the spins -1 summed so far."""
    plus = F.pad(table.select(dim, 1), (0, 1), value=-math.inf)
    minus = F.pad(table.select(dim, 0), (1, 0), value=-math.inf)
    return torch.logaddexp(plus, minus)


class _Elimination:
    """The elimination of one system along one order at one beta (docs/physics.md section 7)."""

    def __init__(self, structure: _Structure, beta: float) -> None:
        _check_width(structure)
        self.structure = structure
        self.beta = beta
        n_spins = structure.N
        first = structure.first
        positions = np.arange(n_spins)
        late = np.flatnonzero(first < positions)
        # D_k: the spins whose earliest neighbour is k, grouped by k (ascending).
        by_first = late[np.argsort(first[late], kind="stable")]
        self._joined = by_first
        self._joined_ptr = np.searchsorted(first[by_first], np.arange(n_spins + 1))
        # F_k: l with first[l] < k < l, i.e. k in [first[l] + 1, l - 1]; sum_k |F_k| <= N w.
        counts = positions[late] - first[late] - 1
        starts = np.repeat(first[late] + 1, counts)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        owners = starts + offsets
        members = np.repeat(late, counts)
        ordered = np.lexsort((members, owners))
        self.frontier_members = members[ordered]
        self.frontier_ptr = np.searchsorted(owners[ordered], np.arange(n_spins + 1))

    def step(self, k: int) -> _Step:
        s = self.structure
        frontier = self.frontier_members[self.frontier_ptr[k] : self.frontier_ptr[k + 1]]
        joined = self._joined[self._joined_ptr[k] : self._joined_ptr[k + 1]]
        after = np.sort(np.concatenate([frontier, joined]))[::-1]
        axis_of = {int(l): a for a, l in enumerate(after)}
        frontier_set = set(frontier.tolist())
        lo, hi = s.later_ptr[k], s.later_ptr[k + 1]
        return _Step(
            k=k,
            after=after,
            in_frontier=tuple(int(l) in frontier_set for l in after),
            frontier=frontier,
            joined_axes=tuple(axis_of[int(l)] for l in joined),
            neighbour_axes=tuple(axis_of[int(l)] for l in s.edges[lo:hi, 1]),
            couplings=tuple(s.weights[lo:hi].tolist()),
            active=bool(s.first[k] < k),
        )

    def _local(self, step: _Step) -> torch.Tensor:
        """beta (x_k sum_{l>k} J_kl y_l + sum_{l in D_k} h_l y_l), ``[2, ...]`` broadcastable."""
        n_axes = len(step.after)
        coupling = _axis_sum(n_axes, step.neighbour_axes, step.couplings)
        joined_fields = self.structure.h[step.after[list(step.joined_axes)]]
        fields = _axis_sum(n_axes, step.joined_axes, joined_fields)
        spin = _SPIN.reshape([2] + [1] * n_axes)
        return self.beta * (spin * coupling.unsqueeze(0) + fields.unsqueeze(0))

    def biases(self, step: _Step, table: torch.Tensor) -> torch.Tensor:
        """b^{+-}_k from T_{k+1}: ``[2, *F_k]`` (axis 0: x_k; F_k in descending position)."""
        weights = table.unsqueeze(0) + self._local(step)  # [2, *S_{k+1}]
        # Pairwise logaddexp, last axis first so that the other axis numbers stay valid
        # (one fused pass each; torch.logsumexp over a dim takes several times longer).
        for axis in sorted(step.joined_axes, reverse=True):
            weights = torch.logaddexp(weights.select(1 + axis, 0), weights.select(1 + axis, 1))
        return weights

    def table(self, step: _Step, biases: torch.Tensor) -> torch.Tensor:
        """T_k from b_k: ``[*F_k, 2]`` if k is in S_k, else ``[*F_k]``."""
        if step.active:
            # A copy: a permuted view would make every later broadcast over T strided.
            return biases.movedim(0, -1).contiguous()
        field = self.beta * float(self.structure.h[step.k])
        return torch.logaddexp(biases[1] + field, biases[0] - field)

    def backward(self, k: int, table: torch.Tensor) -> torch.Tensor:
        """T_k from T_{k+1}."""
        step = self.step(k)
        return self.table(step, self.biases(step, table))

    def log_z(self) -> float:
        table = torch.zeros((), dtype=_DTYPE)
        for k in range(self.structure.N - 1, -1, -1):
            table = self.backward(k, table)
        return float(table)

    # -- averages ------------------------------------------------------------------------

    def averages(self) -> tuple[float, float, np.ndarray]:
        """(log Z, <H>, <x_k> by position [N]) by the backward and forward sweeps.

        The forward tables carry the fields of their own spins: P'_k = P_k + beta h.x_{S_k}.
        """
        n_spins = self.structure.N
        fields = self.structure.h
        magnetizations = np.zeros(n_spins)  # [N]
        pair_energy = np.zeros(n_spins)  # [N], <x_k sum_{l>k} J_kl x_l>

        def visit(k: int, past: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
            step = self.step(k)
            n_axes = len(step.after)
            if step.active:
                past = past.movedim(-1, 0)  # [2, *F_k], beta h_k x_k included
                field = 0.0
            else:
                past = past.unsqueeze(0)  # [1, *F_k]
                field = float(fields[k])
            past = past.reshape([past.shape[0]] + [2 if f else 1 for f in step.in_frontier])
            coupling = _axis_sum(n_axes, step.neighbour_axes, step.couplings)
            joined = _axis_sum(n_axes, step.joined_axes, fields[step.after[list(step.joined_axes)]])
            spin = _SPIN.reshape([2] + [1] * n_axes)
            local = self.beta * (spin * (field + coupling).unsqueeze(0) + joined.unsqueeze(0))
            joint = past + local  # [2, *S_{k+1}], P'_k + beta x_k (h_k + g) + beta h_D.y_D
            following = torch.logaddexp(joint[0], joint[1])  # P'_{k+1}
            p = joint.add_(table)  # [2, *S_{k+1}], log P(x_k, x_S) + log Z
            p = p.sub_(p.max()).exp_()
            difference = p[1] - p[0]  # [*S_{k+1}], unnormalised P(+1, x_S) - P(-1, x_S)
            norm = float(p.sum())
            magnetizations[k] = float(difference.sum()) / norm
            others = [a for a in range(n_axes) if a not in step.neighbour_axes]
            if others:
                difference = difference.sum(dim=others, keepdim=True)
            pair_energy[k] = float((difference * coupling).sum()) / norm
            return following

        log_z = _forward_sweep(self, visit)
        energy = -float(np.sum(pair_energy) + np.dot(fields, magnetizations))
        return log_z, energy, magnetizations

    def magnetization_abs(self) -> float:
        """<|M|> / N from the backward sweep with a count of the spins -1 summed out."""
        n_spins = self.structure.N
        table = torch.zeros(1, dtype=_DTYPE)  # [count]
        for k in range(n_spins - 1, -1, -1):
            step = self.step(k)
            weights = table.unsqueeze(0) + self._local(step).unsqueeze(-1)  # [2, *S, count]
            for axis in sorted(step.joined_axes, reverse=True):
                weights = _sum_counting(weights, 1 + axis)
            if step.active:
                table = weights.movedim(0, -2)
            else:
                field = self.beta * float(self.structure.h[k])
                spin = _SPIN.reshape([2] + [1] * (weights.ndim - 1))
                table = _sum_counting(weights + field * spin, 0)
        down = torch.arange(n_spins + 1, dtype=_DTYPE)  # [N + 1]
        p = torch.softmax(table, dim=0)
        return float((p * (n_spins - 2.0 * down).abs()).sum()) / n_spins


def _forward_sweep(
    elimination: _Elimination,
    visit: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor],
) -> float:
    """Call ``visit(k, P_k, T_{k+1})`` for k = 0..N-1 in order (it returns P_{k+1}); log Z.

    The tables T_{k+1} come from backward steps. Runs of at most ``leaf`` positions keep all
    their tables (as many as fit in _TABLE_BUDGET_BYTES); longer runs are bisected: T_mid is
    computed from T_b, the first half is visited, T_mid is dropped and the second half is
    visited from T_b again. Each level of bisection costs one extra backward pass.
    """
    structure = elimination.structure
    table_bytes = 8 * 2 ** (structure.width + 1)  # a kept table, with room for one step
    leaf = max(2, min(_MAX_KEPT_TABLES, _TABLE_BUDGET_BYTES // table_bytes))
    log_z = math.nan

    def run(a: int, b: int, table_b: torch.Tensor, past_a: torch.Tensor) -> torch.Tensor:
        nonlocal log_z
        if b - a <= leaf:
            tables = [table_b]  # tables[j] = T_{b - j}
            for k in range(b - 1, a, -1):
                tables.append(elimination.backward(k, tables[-1]))
            if a == 0:
                log_z = float(elimination.backward(0, tables[-1]))
            past = past_a
            for k in range(a, b):
                past = visit(k, past, tables[b - k - 1])
                tables[b - k - 1] = None  # type: ignore[call-overload]
            return past
        middle = (a + b) // 2
        table = table_b
        for k in range(b - 1, middle - 1, -1):
            table = elimination.backward(k, table)
        past = run(a, middle, table, past_a)
        del table
        return run(middle, b, table_b, past)

    zero = torch.zeros((), dtype=_DTYPE)
    run(0, structure.N, zero, zero)
    return log_z


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def frontier_log_z(system: Any, beta: float, order: Any = None) -> float:
    """log Z by frontier elimination along ``order`` (the backward sweep alone, O(N 2^w)):
    what a training run needs at every beta, without the forward sweep of
    :func:`frontier_exact`."""
    structure = _structure(system, order)
    return _Elimination(structure, check_beta(beta)).log_z()


def frontier_exact(
    system: Any,
    beta: float,
    order: Any = None,
    *,
    with_magnetization_abs: bool | None = None,
) -> ExactResult:
    """Exact thermodynamics by frontier elimination along ``order`` (cost O(N 2^w)).

    log Z comes from the backward sweep, <H> and <x_i> from the joint marginals of the
    forward sweep (module docstring), all in float64 log-sum-exp tables.

    Args:
        system: N, h and edges + weights or J (module docstring).
        beta: inverse temperature > 0.
        order: permutation of the sites (position p holds site order[p]); identity if None.
        with_magnetization_abs: True computes <|sum_i x_i|>/N (refused when its count tables
            would exceed MAX_MAGNETIZATION_WORK entries), False skips it, None computes it
            when affordable. Skipped, ``magnetization_abs`` is None.

    Returns:
        :class:`ExactResult` with ``method="frontier elimination"``; magnetizations by site.
    """
    structure = _structure(system, order)
    beta = check_beta(beta)
    elimination = _Elimination(structure, beta)
    n_spins = structure.N
    work = structure.magnetization_work
    if with_magnetization_abs is None:
        with_magnetization_abs = work <= MAX_MAGNETIZATION_WORK
    elif with_magnetization_abs and work > MAX_MAGNETIZATION_WORK:
        raise ArnnGenError(
            f"<|M|> by frontier elimination needs count tables of {work:.3g} entries "
            f"(N = {n_spins}, width {structure.width}); the limit is {MAX_MAGNETIZATION_WORK:.3g}"
        )
    log_z, mean_energy, by_position = elimination.averages()
    magnetizations = np.empty(n_spins)
    magnetizations[structure.order] = by_position
    magnetization_abs = elimination.magnetization_abs() if with_magnetization_abs else None
    return ExactResult(
        N=n_spins,
        beta=beta,
        log_z=log_z,
        free_energy=-log_z / (beta * n_spins),
        energy=mean_energy / n_spins,
        entropy=(beta * mean_energy + log_z) / n_spins,
        magnetization_abs=magnetization_abs,
        magnetizations=magnetizations,
        method="frontier elimination",
    )


def _configurations(x: Any, n_spins: int) -> tuple[torch.Tensor, bool]:
    """x as a float64 CPU ``[B, N]`` tensor of +-1, and whether it was one ``[N]`` row."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ArnnGenError(f"spin configurations must be a tensor: {err}") from None
    if x.is_complex() or x.dtype == torch.bool:
        raise ArnnGenError(f"spin configurations must be real numbers, got dtype {x.dtype}")
    if x.ndim not in (1, 2) or x.shape[-1] != n_spins:
        raise ArnnGenError(
            f"spin configurations must have shape [B, {n_spins}] or [{n_spins}], "
            f"got {list(x.shape)}"
        )
    x = x.detach().to(device="cpu", dtype=_DTYPE)
    if not bool(torch.all((x == 1.0) | (x == -1.0))):
        raise ArnnGenError("spin configurations must contain only -1 and +1")
    return x.reshape(-1, n_spins), x.ndim == 1


def frontier_log_prob(system: Any, beta: float, x: Any, order: Any = None) -> torch.Tensor:
    """Exact log P(x) = -beta H(x) - log Z, log Z by frontier elimination along ``order``.

    Args:
        x: ``[B, N]`` (or ``[N]``) configurations of +-1 in the system's site labels.

    Returns:
        ``[B]`` (or 0-d) float64 on x's device.
    """
    structure = _structure(system, order)
    beta = check_beta(beta)
    device = x.device if isinstance(x, torch.Tensor) else None
    spins, single = _configurations(x, structure.N)
    log_z = _Elimination(structure, beta).log_z()
    by_position = spins[:, torch.as_tensor(structure.order)]  # [B, N]
    i, j = (torch.as_tensor(structure.edges[:, c]) for c in (0, 1))
    weights = torch.as_tensor(structure.weights)
    fields = torch.as_tensor(structure.h)
    energy = -(by_position[:, i] * by_position[:, j]) @ weights - by_position @ fields  # [B]
    result = -beta * energy - log_z  # [B]
    result = result[0] if single else result
    return result if device is None else result.to(device)


@functools.lru_cache(maxsize=32)
def _frontier_configurations(size: int) -> torch.Tensor:
    """``[2^size, size]``: row t has c_m = +1 if bit m of t is set, else -1."""
    index = torch.arange(2**size, dtype=torch.int64)[:, None]
    bits = (index >> torch.arange(size, dtype=torch.int64)[None, :]) & 1
    return (2 * bits - 1).to(_DTYPE)


def _log_rho(biases: torch.Tensor, frontier_phi: torch.Tensor, beta: float) -> torch.Tensor:
    """log rho^{-+} = logsumexp_c(b^{-+}_c + beta sum_m c_m phi_m) for a batch: ``[2, B]``.

    Args:
        biases: ``[2, *F]`` (row 0: x_k = -1; F in descending position, so that the flat
            index t of a configuration has c_m = +1 iff bit m of t is set).
        frontier_phi: ``[B, f]``, phi of F in ascending position.
    """
    n_samples, size = frontier_phi.shape
    # beta c.phi = (high bits) + (low bits): two small products instead of a [2^f, f] matrix.
    low = size // 2
    phi = beta * frontier_phi
    high_part = phi[:, low:] @ _frontier_configurations(size - low).T  # [B, 2^(f - low)]
    low_part = phi[:, :low] @ _frontier_configurations(low).T  # [B, 2^low]
    energies = (high_part[:, :, None] + low_part[:, None, :]).reshape(n_samples, -1)
    rows = []
    for row in (0, 1):
        terms = energies + biases[row].reshape(-1)  # [B, 2^f]
        top = terms.max(dim=1, keepdim=True).values
        rows.append(terms.sub_(top).exp_().sum(dim=1).log_() + top[:, 0])
    return torch.stack(rows)  # [2, B]


def frontier_conditionals(system: Any, beta: float, x: Any, order: Any = None) -> torch.Tensor:
    """Exact P(x_{order[p]} = +1 | the spins at positions < p) for samples x.

    docs/physics.md sections 2 and 7: with phi_{p,l} = h_l + sum_{s<p} J_sl x_s (positions),
    P = sigmoid(2 beta phi_{p,p} + log rho^+_p - log rho^-_p),
    log rho^{+-}_p = logsumexp_c(b^{+-}_{p,c} + beta sum_{l in F_p} c_l phi_{p,l}), the
    biases b coming from the backward sweep as they are produced (none is kept).

    Args:
        x: ``[B, N]`` (or ``[N]``) configurations of +-1 in the system's site labels.

    Returns:
        ``[B, N]`` (or ``[N]``) float64 CPU tensor; column p is the conditional of position p.
    """
    structure = _structure(system, order)
    beta = check_beta(beta)
    spins, single = _configurations(x, structure.N)
    elimination = _Elimination(structure, beta)
    n_spins = structure.N
    by_position = spins[:, torch.as_tensor(structure.order)]  # [B, N]
    n_samples = by_position.shape[0]
    i, j = (torch.as_tensor(structure.edges[:, c]) for c in (0, 1))
    weights = torch.as_tensor(structure.weights)
    # phi[:, l] = h_l + sum_{s<l} J_sl x_s; the backward sweep removes s >= k as it goes.
    phi = torch.as_tensor(structure.h).repeat(n_samples, 1)  # [B, N]
    phi.index_add_(1, j, by_position[:, i] * weights)
    result = torch.empty(n_samples, n_spins, dtype=_DTYPE)  # [B, N]
    table = torch.zeros((), dtype=_DTYPE)
    for k in range(n_spins - 1, -1, -1):
        step = elimination.step(k)
        biases = elimination.biases(step, table)  # [2, *F_k]
        lo, hi = structure.later_ptr[k], structure.later_ptr[k + 1]
        neighbours = j[lo:hi]
        phi[:, neighbours] -= by_position[:, k : k + 1] * weights[lo:hi]
        frontier_phi = phi[:, torch.as_tensor(step.frontier, dtype=torch.int64)]  # [B, f]
        chunk = max(1, _CONDITIONAL_CHUNK // 2 ** len(step.frontier))
        for start in range(0, n_samples, chunk):
            rows = slice(start, start + chunk)
            log_rho = _log_rho(biases, frontier_phi[rows], beta)  # [2, b]
            logits = 2.0 * beta * phi[rows, k] + log_rho[1] - log_rho[0]
            result[rows, k] = torch.sigmoid(logits)
        table = elimination.table(step, biases)
    return result[0] if single else result


@dataclass(frozen=True, eq=False)
class FrontierTables:
    """The exact sparse network's tables (docs/physics.md section 7), in positions.

    Sites are relabelled by their position in ``order`` (position p holds site order[p]).
    For position i, F_i = ``members[indptr[i]:indptr[i + 1]]`` (ascending), and the biases
    b^{+-}_{i,c} over the 2^|F_i| configurations c of the frontier are
    ``bias[0 (+) or 1 (-), offsets[i] + t]``, where configuration t has c_m = +1 if bit m of
    t is set and -1 otherwise (m indexing the ascending F_i). Then, exactly,

        log rho^{+-}_i = logsumexp_c(b^{+-}_{i,c} + beta sum_{l in F_i} c_l phi_{i,l}),
        P(x_i = +1 | x_<i) = sigmoid(2 beta phi_{i,i} + log rho^+_i - log rho^-_i).

    Attributes:
        N, beta: the system size and inverse temperature of the biases.
        order: ``[N]`` int64, the permutation.
        indptr: ``[N + 1]`` int64; members: ``[sum_i |F_i|]`` int64 positions.
        offsets: ``[N + 1]`` int64, offsets[i + 1] - offsets[i] = 2^|F_i|.
        bias: ``[2, offsets[N]]`` float64 (row 0: b^+, row 1: b^-).
        width: max_i |F_i| (the elimination width is this or one more).
        log_z: log Z, from the same sweep.
    All arrays are read-only.
    """

    N: int
    beta: float
    order: np.ndarray
    indptr: np.ndarray
    members: np.ndarray
    offsets: np.ndarray
    bias: np.ndarray
    width: int
    log_z: float

    def __post_init__(self) -> None:
        arrays = {
            name: np.array(getattr(self, name), dtype=dtype)
            for name, dtype in (
                ("order", np.int64),
                ("indptr", np.int64),
                ("members", np.int64),
                ("offsets", np.int64),
                ("bias", np.float64),
            )
        }
        n_spins = self.N
        sizes = np.diff(arrays["indptr"]) if arrays["indptr"].shape == (n_spins + 1,) else None
        if (
            arrays["order"].shape != (n_spins,)
            or sizes is None
            or arrays["indptr"][0] != 0
            or np.any(sizes < 0)
            or arrays["members"].shape != (int(arrays["indptr"][-1]),)
            or arrays["offsets"].shape != (n_spins + 1,)
            or arrays["offsets"][0] != 0
            or np.any(np.diff(arrays["offsets"]) != 2**sizes)
            or arrays["bias"].shape != (2, int(arrays["offsets"][-1]))
            or self.width != int(sizes.max(initial=0))
        ):
            raise ArnnGenError("inconsistent frontier tables: shapes do not match indptr")
        for name, array in arrays.items():
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    def frontier(self, i: int) -> np.ndarray:
        """F_i, ascending positions."""
        return self.members[self.indptr[i] : self.indptr[i + 1]]

    def biases(self, i: int) -> np.ndarray:
        """``[2, 2^|F_i|]``: b^+ and b^- of position i."""
        return self.bias[:, self.offsets[i] : self.offsets[i + 1]]


def frontier_tables(system: Any, beta: float, order: Any = None) -> FrontierTables:
    """The frontiers F_i and biases b^{+-}_{i,c} of every site, by one backward sweep.

    Cost O(N 2^w); the tables hold 2 sum_i 2^|F_i| float64 numbers, refused when
    sum_i 2^|F_i| > MAX_FRONTIER_TABLE_ENTRIES, before anything is allocated.

    Returns:
        :class:`FrontierTables` (positions along ``order``; identity if None).
    """
    structure = _structure(system, order)
    beta = check_beta(beta)
    _check_width(structure)
    sizes = structure.frontier_sizes  # [N]
    entries = int(np.sum(2**sizes))
    if entries > MAX_FRONTIER_TABLE_ENTRIES:
        raise ArnnGenError(
            f"the frontier tables hold sum_i 2^|F_i| = {entries} configurations per sign "
            f"(width {int(sizes.max())}); the limit is {MAX_FRONTIER_TABLE_ENTRIES}"
        )
    elimination = _Elimination(structure, beta)
    offsets = np.zeros(structure.N + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(2**sizes)
    bias = np.empty((2, entries))
    table = torch.zeros((), dtype=_DTYPE)
    for k in range(structure.N - 1, -1, -1):
        step = elimination.step(k)
        biases = elimination.biases(step, table)  # [2, *F_k], F_k descending
        # C order over descending axes: the last axis (smallest position, m = 0) is bit 0.
        bias[0, offsets[k] : offsets[k + 1]] = biases[1].reshape(-1).numpy()
        bias[1, offsets[k] : offsets[k + 1]] = biases[0].reshape(-1).numpy()
        table = elimination.table(step, biases)
    return FrontierTables(
        N=structure.N,
        beta=beta,
        order=structure.order,
        indptr=elimination.frontier_ptr,
        members=elimination.frontier_members,
        offsets=offsets,
        bias=bias,
        width=int(sizes.max(initial=0)),
        log_z=float(table),
    )
