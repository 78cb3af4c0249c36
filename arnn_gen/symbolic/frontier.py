"""Sparse couplings: the frontier of a site and the replica forms restricted to it
(docs/physics.md section 7).

For a site order 0..N-1 the cavity field of a later site l > i is

    phi_{i,l} = h_l + sum_{s<i} J_{s,l} x_s,

so it depends on the earlier spins only when some J_{s,l}, s < i, is nonzero: only for l in
the frontier F_i = { l > i : J_{s,l} != 0 for some s < i }. Every other later field is the
constant h_l, and P(x_i | x_<i) depends on x_<i only through phi_{i,i} and phi_{i,l}, l in F_i.
:func:`frontier_from_derivation` reads F_i, and the later neighbours of i (the sites whose
shift +-J_{i,l} enters rho^{+-}), off the generic derivation for a concrete sparse graph:
the split terms of H with the absent couplings set to zero, not a rule assumed here.

The replica forms (section 4) take one term per later site l. Their terms for l outside

    F^+_i = F_i  U  { l > i : J_{i,l} != 0 } = { l > i : J_{s,l} != 0 for some s <= i },

the later fields that x_{<=i} reaches, see a constant field h_l and no shift, so the same
function of h_l in log rho^+ and log rho^-: at the paramagnetic start they cancel exactly in
the logit, and in training they would add one constant per site, which the residual bias
already is. :func:`frontier_replica_form` keeps the layers over F^+_i only: parameters
O(sum_i |F^+_i|) instead of O(N^2), and the dense form whose parameters vanish outside F^+_i
is the same network (tests/test_emit_frontier.py checks both).
"""

from __future__ import annotations

import sympy as sp

from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import SYMBOLS, Derivation, derive_conditional
from arnn_gen.symbolic.nn_functions import Equation
from arnn_gen.symbolic.reduction import RSYM, Reduction
from arnn_gen.symbolic.replica import replica_form

__all__ = ["FrontierSum", "frontier_from_derivation", "frontier_replica_form", "FRONTIER"]

#: The layer set F^+_i of the frontier forms, as displayed.
FRONTIER = sp.Symbol("F^{+}_{i}")


class FrontierSum(sp.Sum):
    r"""A sum over l > i that runs over the frontier F^+_i only: the terms of every other l
    vanish (their output weight is zero). Displayed as ``\sum_{l \in F^{+}_{i}}``; as a
    SymPy Sum it keeps the dense limits (l, i + 1, N - 1), so that the dense and frontier
    forms share their structure term by term."""

    def _latex(self, printer, exp=None):
        ((variable, _, _),) = self.limits
        text = r"\sum_{%s \in %s} %s" % (
            printer._print(variable),
            printer._print(FRONTIER),
            printer.parenthesize(self.function, 1000),
        )
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)

    def _sympystr(self, printer):
        ((variable, _, _),) = self.limits
        return "Sum(%s, (%s in F+_i))" % (printer._print(self.function), printer._print(variable))


def frontier_from_derivation(
    derivation: Derivation,
    pairs,
    N: int,
    site: int,  # noqa: N803
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(F_i, later neighbours of i) of ``site`` for a concrete graph of N spins whose nonzero
    couplings are the pairs (s, l) in ``pairs`` (s != l, any orientation), read off the
    derivation: the cavity field phi_{i,l} minus h_l (the earlier-later group) is nonzero
    exactly for l in F_i, and the shift J_{i,l} (the site-later group) for the later
    neighbours. SymPy expands both for every l > i with the absent couplings set to zero."""
    S = SYMBOLS
    edges = {(min(a, b), max(a, b)) for a, b in pairs}
    if any(a == b or not (0 <= a < N and 0 <= b < N) for a, b in edges):
        raise ArnnGenError(f"pairs must join two different sites in [0, {N})")
    concrete = derivation.at(N, site)
    absent = {S.J[a, b]: 0 for a in range(N) for b in range(a + 1, N) if (a, b) not in edges}
    frontier, neighbours = [], []
    for later in range(site + 1, N):
        field = sp.expand(concrete.cavity_field.subs(S.l, later).xreplace(absent))
        if field - S.h[later] != 0:
            frontier.append(later)
        shift = sp.expand(concrete.shift.subs(S.l, later).xreplace(absent))
        if shift != 0:
            neighbours.append(later)
    return tuple(frontier), tuple(neighbours)


def frontier_replica_form(
    k: int, derivation: Derivation | None = None, *, system: str
) -> Reduction:
    """The replica form of depth k (RS for k = 0) over the frontier F^+_i: the dense form of
    :func:`~arnn_gen.symbolic.replica.replica_form` with its sum over l > i running over
    F^+_i (:class:`FrontierSum`), the same parameters and paramagnetic start, and the
    frontier's definitions for display."""
    d = derivation or derive_conditional()
    dense = replica_form(k, d, system=system)
    S = SYMBOLS
    if not isinstance(dense.log_rho, sp.Sum):
        raise ArnnGenError(f"unexpected dense replica form: {dense.log_rho}")
    log_rho = FrontierSum(dense.log_rho.function, *dense.log_rho.limits)
    logit = dense.logit.xreplace(
        {dense.log_rho.subs(RSYM.sign, value): log_rho.subs(RSYM.sign, value) for value in (1, -1)}
    )
    definitions = tuple(
        (lhs, log_rho if rhs == dense.log_rho else rhs) for lhs, rhs in dense.definitions
    )
    i, s, l = S.i, S.s, S.l  # noqa: E741
    i, s, l = sp.latex(S.i), sp.latex(S.s), sp.latex(S.l)  # noqa: E741
    extra = (
        Equation(
            r"F_{%s}" % i,
            r"\{\, %s > %s : J_{%s %s} \neq 0 \text{ for some } %s < %s \,\}" % (l, i, s, l, s, i),
            "F_i",
            "{ l > i : J_sl != 0 for some s < i }",
        ),
        Equation(
            r"\phi_{%s,%s}" % (i, l),
            r"h_{%s} \quad (%s > %s,\ %s \notin F_{%s})" % (l, l, i, l, i),
            "phi[i, l]",
            "h[l] for l > i outside F_i",
        ),
        Equation(
            r"F^{+}_{%s}" % i,
            r"F_{%s} \cup \{\, %s > %s : J_{%s %s} \neq 0 \,\}" % (i, l, i, i, l),
            "F+_i",
            "F_i | { l > i : J_il != 0 }",
        ),
    )
    return Reduction(
        system=dense.system,
        variant=dense.variant,
        k=dense.k,
        derivation=d,
        log_rho=log_rho,
        logit=logit,
        parameters=dense.parameters,
        definitions=definitions,
        display_logit=dense.display_logit,
        constants=dense.constants,
        layout="frontier",
        extra_equations=extra,
    )
