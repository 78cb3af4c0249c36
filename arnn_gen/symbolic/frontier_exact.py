"""The exact network of a sparse system (sparse H2ARNN, docs/physics.md sections 2 and 7):
H2ARNN's sum over the configurations of the later spins kept over the frontier only, the
other later spins summed into the biases by one backward frontier elimination.

For a site order 0..N-1 and F_i = { l > i : J_{s,l} != 0 for some s < i }, the cavity field
of a later site outside F_i is the constant h_l (:mod:`~arnn_gen.symbolic.frontier`), so that
the sum over the later spins of rho^{+-}_i splits into the 2^|F_i| configurations c of the
frontier and a sum, free of x_<i, over the rest:

    log rho^{+-}_i = logsumexp_c ( b^{+-}_{i,c} + sum_{l in F_i} w_{c,l} phi_{i,l} ),
    w_{c,l}        = beta c_l,
    b^{+-}_{i,c}   = log sum_{x_>i : x_{F_i} = c} exp( beta sum_{l>i, l not in F_i} h_l x_l
                        +- beta sum_{l>i} J_{i,l} x_l + beta sum_{i<l<l'} J_{l,l'} x_l x_l' ).

The logit is H2ARNN's, 2 beta phi_{i,i} + log rho^+_i - log rho^-_i: the network is exact.

Note [Backward elimination]
    The biases of every site come from one sweep from the last position to the first
    (docs/physics.md section 7). With S_{i+1} = { l > i : J_{s,l} != 0 for some s <= i } =
    F_i U D_i, D_i the later neighbours of i that no earlier spin reaches, the table

        T_{i+1}(y) = log sum over the spins > i outside S_{i+1} of
                     exp( beta sum_{i<l<l'} J_{l,l'} x_l x_l'
                          + beta sum_{l>i, l not in S_{i+1}} h_l x_l )

    over the configurations y of S_{i+1} gives

        b^{eta}_{i}(c) = logsumexp_{y_{D_i}} ( T_{i+1}(c, y_{D_i}) + joined + eta to_site ),
        joined = sum_{l in D_i} w_{y,l} h_l,   to_site = sum_{l>i} w_{y,l} J_{i,l},
        w_{y,l} = beta y_l,

    and T_i = b_i with x_i kept as eta (i in S_i: it has an earlier neighbour) or, for a site
    without earlier neighbours (phi_{i,i} = h_i), T_i = log sum_{x_i} exp(b^{x_i}_i + beta x_i
    phi_{i,i}). T_N = 0 and T_0 = log Z. Both steps add the pieces of one spin's Boltzmann
    factor, beta x_i (h_i + sum_{l>i} J_{i,l} x_l) (:func:`boltzmann_factor`): its couplings to
    the later spins when the spin is summed, its field when it leaves the frontier.
    :func:`frontier_elimination` builds the two steps from that factor and checks, on small
    graphs, that they give the exponent of b^{+-}_i read off the derivation at every site and
    -beta H at the end.
"""

from __future__ import annotations

import itertools

import sympy as sp

from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import (
    SYMBOLS,
    Derivation,
    build_hamiltonian,
    derive_conditional,
    expand_sums,
)
from arnn_gen.symbolic.nn_functions import Equation, LogSumExp, logaddexp, to_elementary
from arnn_gen.symbolic.reduction import _LOG_RHO, RSYM, Parameter, Reduction

__all__ = [
    "FRONTIER_SIZE",
    "FRONTIER_INDICATOR",
    "LATER_SPINS",
    "CHECK_GRAPHS",
    "OverFrontier",
    "frontier_exact_form",
    "boltzmann_factor",
    "frontier_elimination",
]

#: f_i = |F_i|: the biases of site i run over 2^{f_i} frontier configurations.
FRONTIER_SIZE = sp.Symbol("f_i", integer=True, nonnegative=True)
#: chi_{i,l}: 1 when l is in F_i, else 0 (the bias keeps the fields outside F_i only).
FRONTIER_INDICATOR = sp.IndexedBase("chi")
#: y^{c,d}_l: the later spins with x_{F_i} = c and the others in configuration d.
LATER_SPINS = sp.IndexedBase("y")

#: Small graphs, as (N, pairs of positions), on which frontier_elimination checks the
#: elimination against the derivation: a path, a cycle, a 2 x 3 grid, a star whose centre
#: comes third, a graph with an isolated spin and a complete graph.
CHECK_GRAPHS: tuple[tuple[int, tuple[tuple[int, int], ...]], ...] = (
    (4, ((0, 1), (1, 2), (2, 3))),
    (4, ((0, 1), (1, 2), (2, 3), (0, 3))),
    (6, ((0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5))),
    (5, ((0, 2), (1, 2), (2, 3), (2, 4))),
    (4, ((0, 2), (2, 3))),
    (4, ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))),
)


class OverFrontier(sp.Sum):
    r"""A sum over l > i that runs over the frontier F_i only (the other terms sit in the
    biases). Displayed as ``\sum_{l \in F_{i}}``; as a SymPy Sum it keeps the dense limits
    (l, i + 1, N - 1), so that H2ARNN's form and this one share their structure."""

    def _latex(self, printer, exp=None):
        ((variable, _, _),) = self.limits
        text = r"\sum_{%s \in F_{i}} %s" % (
            printer._print(variable),
            printer.parenthesize(self.function, 1000),
        )
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)

    def _sympystr(self, printer):
        ((variable, _, _),) = self.limits
        return "Sum(%s, (%s in F_i))" % (printer._print(self.function), printer._print(variable))


def frontier_exact_form(derivation: Derivation | None = None, *, system: str) -> Reduction:
    """The sparse H2ARNN (module docstring): log rho^{+-} as a logsumexp over the 2^{f_i}
    configurations c of the frontier F_i, with w_{c,l} = beta xi^c_l and the biases
    b^{+-}_{i,c}, the log partition function of the later spins given x_i = +-1 and
    x_{F_i} = c (its fields outside F_i only: chi_{i,l} marks F_i, and y^{c,d} is a later
    configuration agreeing with c on F_i). Every parameter is fixed, analytic in beta and the
    couplings; the module computes the biases by the elimination of
    :func:`frontier_elimination`."""
    S, R = SYMBOLS, RSYM
    d = derivation or derive_conditional()
    i, l, lp, c, xi = S.i, S.l, S.lp, R.c, R.spin_table
    configuration = sp.Symbol("d", integer=True, nonnegative=True)
    y = LATER_SPINS
    on_later = {S.x[l]: y[c, configuration, l], S.x[lp]: y[c, configuration, lp]}
    later_later = d.later_later.xreplace(on_later)
    # the fields of the later spins outside F_i (phi_{i,l} = h_l there), the shift +-J_{i,l}
    outside = (1 - FRONTIER_INDICATOR[i, l]) * d.cavity_field.xreplace({S.x[S.s]: 0}).doit()
    exponent = (
        S.beta * sp.Sum((outside + R.sign * d.shift) * y[c, configuration, l], (l, i + 1, S.N - 1))
        + S.beta * later_later
    )
    rest = 2 ** (S.N - 1 - i - FRONTIER_SIZE) - 1
    bias = LogSumExp(exponent, (configuration, 0, rest))
    weight = S.beta * xi[c, l]
    w = sp.IndexedBase("w")
    b = sp.IndexedBase("b")
    configurations = 2**FRONTIER_SIZE - 1
    log_rho = LogSumExp(
        bias_symbol(b) + OverFrontier(weight * S.phi[i, l], (l, i + 1, S.N - 1)),
        (c, 0, configurations),
    )
    logit = 2 * S.beta * S.phi[i, i] + log_rho.subs(R.sign, 1) - log_rho.subs(R.sign, -1)
    parameters = (
        Parameter("bias", b, ("sign", "i", "c"), "fixed", bias, "b^{+-}_{i,c}"),
        Parameter("weight", w, ("i", "c", "l"), "fixed", weight, "w_{c,l}"),
    )
    compact = LogSumExp(
        bias_symbol(b) + OverFrontier(w[c, l] * S.phi[i, l], (l, i + 1, S.N - 1)),
        (c, 0, configurations),
    )
    definitions = (
        (sp.Symbol(r"\log \rho^{\eta}_{i}"), compact),
        (b[R.sign, i, c], bias),
        (w[c, l], weight),
        (S.phi[i, l], d.cavity_field),
    )
    display = 2 * S.beta * S.phi[i, i] + _LOG_RHO
    return Reduction(
        system=system,
        variant="exact",
        k=None,
        derivation=d,
        log_rho=log_rho,
        logit=logit,
        parameters=parameters,
        definitions=definitions,
        display_logit=display,
        layout="frontier",
        extra_equations=_displayed_elimination(),
    )


def bias_symbol(b: sp.IndexedBase) -> sp.Expr:
    """b^{eta}_{i,c} as the IndexedBase element the logsumexp holds."""
    return b[RSYM.sign, SYMBOLS.i, RSYM.c]


def _displayed_elimination() -> tuple[Equation, ...]:
    """F_i, chi, y and the elimination of Note [Backward elimination], as displayed."""
    return (
        Equation(
            r"F_{i}",
            r"\{\, l > i : J_{s l} \neq 0 \text{ for some } s < i \,\},\quad f_{i} = |F_{i}|",
            "F_i",
            "{ l > i : J_sl != 0 for some s < i }, f_i = |F_i|",
        ),
        Equation(
            r"\chi_{i,l}",
            r"1 \text{ if } l \in F_{i} \text{, else } 0;\quad y^{c,d}_{l} = c_{l} \text{ on } "
            r"F_{i} \text{, configuration } d \text{ of the other later spins elsewhere}",
            "chi[i, l]",
            "1 if l in F_i, else 0; y[c, d, l] = c_l on F_i, configuration d elsewhere",
        ),
        Equation(
            r"b^{\eta}_{i}(c)",
            r"\operatorname{logsumexp}_{y_{D_{i}}}\left(T_{i+1}(c, y_{D_{i}})"
            r" + \sum_{l \in D_{i}} \beta y_{l} h_{l}"
            r" + \eta \sum_{l > i} \beta y_{l} J_{i l}\right)",
            "b^eta_i(c)",
            "logsumexp over y_D of T_{i+1}(c, y_D) + sum_{l in D_i} beta y_l h_l "
            "+ eta sum_{l>i} beta y_l J_il",
        ),
        Equation(
            r"T_{i}",
            r"b^{x_{i}}_{i} \ (i \in S_{i}),\quad \log \sum_{x_{i}} e^{b^{x_{i}}_{i}"
            r" + \beta x_{i} \phi_{i,i}} \ \text{otherwise};\quad T_{N} = 0,\ T_{0} = \log Z",
            "T_i",
            "b^{x_i}_i if i in S_i, else log sum_{x_i} exp(b^{x_i}_i + beta x_i phi_ii); "
            "T_N = 0, T_0 = log Z",
        ),
    )


def boltzmann_factor(derivation: Derivation | None = None, *, check_up_to: int = 5) -> sp.Expr:
    """beta x_i (h_i + sum_{l>i} J_{i,l} x_l): the log of the Boltzmann factor that spin i
    brings when the spins are summed from the last to the first, its field and its couplings
    to the later spins (the site-later group of the split). Each pair and each field belongs
    to one site, so the factors add up to -beta H(x). Checked by expansion for
    N = 1..check_up_to: the coupling part against -beta times the site-later group of the
    derivation, and the sum over the sites against -beta H (:class:`ArnnGenError` if either
    differs)."""
    S = SYMBOLS
    d = derivation or derive_conditional()
    i, l = d.site, S.l
    factor = S.beta * S.x[i] * (S.h[i] + sp.Sum(d.shift * S.x[l], (l, i + 1, S.N - 1)))
    couplings = factor.xreplace({S.h[i]: 0})
    for N in range(1, check_up_to + 1):
        total = sp.Integer(0)
        for site in range(N):
            values = {S.N: N, i: site}
            group = expand_sums(d.groups["site-later"].subs(values))
            if sp.expand(expand_sums(couplings.subs(values)) + S.beta * group) != 0:
                raise ArnnGenError(f"the couplings of site {site} are not its site-later group")
            total += expand_sums(factor.subs(values))
        if sp.expand(total + S.beta * expand_sums(build_hamiltonian(N))) != 0:
            raise ArnnGenError(f"the Boltzmann factors do not add up to -beta H at N = {N}")
    return factor


def frontier_elimination(
    reduction: Reduction,
    *,
    table: sp.Symbol,
    joined: sp.Symbol,
    to_site: sp.Symbol,
    bias_plus: sp.Symbol,
    bias_minus: sp.Symbol,
    phi_site: sp.Symbol,
    graphs=CHECK_GRAPHS,
) -> tuple[sp.Expr, sp.Expr]:
    """The two steps of Note [Backward elimination], from the spins' Boltzmann factor
    (:func:`boltzmann_factor`), in the stand-ins given:

    ``step`` = table + joined + eta to_site, the exponent of b^{eta}_i(c) before the sum over
    y_{D_i}: T_{i+1}, the fields of the spins D_i that leave the frontier
    (joined = sum_{l in D_i} w_{y,l} h_l) and the couplings of x_i = eta to the later spins
    (to_site = sum_{l>i} w_{y,l} J_{i,l}), with w_{y,l} = beta y_l the network's weight;

    ``close`` = log sum_{x_i = +-1} exp(b^{x_i}_i + beta x_i phi_{i,i}) (logaddexp of
    bias_plus and bias_minus), T_i of a site without earlier neighbours, whose field
    phi_{i,i} is h_i.

    Checked on ``graphs`` ((N, pairs of positions)) by expansion: at every site the step,
    with T_{i+1} the exponent the elimination has built so far, equals the exponent of b^{+-}_i
    read off the derivation (its fields outside F_i, the shift, the later-later group, all
    free of x_<i), and after the first site the exponent is -beta H (:class:`ArnnGenError`
    otherwise)."""
    S, R = SYMBOLS, RSYM
    d = reduction.derivation
    i, l = S.i, S.l
    factor = boltzmann_factor(d)
    weight = next(p.initial for p in reduction.parameters if p.name == "weight")
    at = {S.x[l]: R.spin_table[R.c, l]}
    couplings = factor.xreplace({S.h[i]: 0})  # beta x_i sum_{l>i} J_{i,l} x_l
    field = sp.expand(factor - couplings)  # beta x_i h_i
    # eta to_site: x_i = eta, the later spins as the configuration y, beta y_l = w_{y,l}
    contracted = couplings.xreplace({S.x[i]: R.sign}).xreplace(at)
    to_site_form = sp.Sum(weight * S.J[i, l], (l, i + 1, S.N - 1))
    # joined: the field of each spin l of D_i, at y_l
    joined_form = field.xreplace({S.x[i]: R.spin_table[R.c, i]})
    for N in range(1, 6):
        for site in range(N):
            values = {S.N: N, i: site}
            expected = expand_sums(contracted.subs(values))
            if sp.expand(expected - R.sign * expand_sums(to_site_form.subs(values))) != 0:
                raise ArnnGenError(f"the couplings of site {site} are not eta to_site (N = {N})")
            if sp.expand(joined_form.subs(values) - weight.subs({l: i}).subs(values) * S.h[site]):
                raise ArnnGenError(f"the field of site {site} is not w h")
    step = table + joined + R.sign * to_site
    terms = {
        value: bias + field.xreplace({S.x[i]: value, S.h[i]: phi_site})
        for value, bias in ((1, bias_plus), (-1, bias_minus))
    }
    close = logaddexp(terms[1], terms[-1])
    summed = sp.log(sum(sp.exp(term) for term in terms.values()))
    if sp.simplify(sp.exp(to_elementary(close)) - sp.exp(summed)) != 0:
        raise ArnnGenError(f"{close} is not the sum over x_i of the site's factor")
    for N, pairs in graphs:
        _check_on_graph(d, N, pairs, weight, step, close,
                        (table, joined, to_site, bias_plus, bias_minus, phi_site))  # fmt: skip
    return step, close


def _check_on_graph(d, N, pairs, weight, step, close, stand_ins) -> None:  # noqa: N803
    """Note [Backward elimination] on one graph of N spins (pairs of positions), by expansion
    with symbolic couplings on its edges and zero elsewhere."""
    S, R = SYMBOLS, RSYM
    table, joined, to_site, bias_plus, bias_minus, phi_site = stand_ins
    edges = {(min(a, b), max(a, b)) for a, b in pairs}
    absent = {S.J[a, b]: 0 for a, b in itertools.combinations(range(N), 2) if (a, b) not in edges}
    neighbours = {s: {b if a == s else a for a, b in edges if s in (a, b)} for s in range(N)}
    first = {s: min(neighbours[s] | {s}) for s in range(N)}
    x = S.x

    def concrete(expr, site, later=None):
        values = {S.N: N, S.i: site} | ({} if later is None else {S.l: later})
        return sp.expand(expand_sums(sp.sympify(expr).subs(values)).xreplace(absent))

    built = sp.Integer(0)  # the exponent of T_{k+1}, as the elimination built it
    for k in range(N - 1, -1, -1):
        frontier = {q for q in range(k + 1, N) if first[q] < k}
        joining = {q for q in neighbours[k] if q > k and first[q] == k}  # D_k
        later = range(k + 1, N)
        fields = {q: concrete(d.cavity_field, k, q) for q in later}
        outside = [q for q in later if q not in frontier]
        if any(fields[q] != S.h[q] for q in outside):
            raise ArnnGenError(f"phi_{{{k},l}} outside F_{k} is not h_l on {sorted(edges)}")
        shift = {q: concrete(d.shift, k, q) for q in later}
        later_later = concrete(d.later_later, k)
        weights = {q: weight.subs({R.c: 0, SYMBOLS.l: q}).xreplace({R.spin_table[0, q]: x[q]})
                   for q in later}  # fmt: skip
        exponents = {}
        for eta in (1, -1):
            definition = S.beta * sum(
                (fields[q] * x[q] for q in outside), sp.Integer(0)
            ) + eta * S.beta * sum((shift[q] * x[q] for q in later), sp.Integer(0))
            definition = sp.expand(definition + S.beta * later_later)
            if any(definition.has(x[s]) for s in range(k)):
                raise ArnnGenError(f"b_{k} depends on the earlier spins on {sorted(edges)}")
            values = {
                table: built,
                joined: sum((weights[q] * S.h[q] for q in joining), sp.Integer(0)),
                to_site: sum((weights[q] * S.J[k, q] for q in later), sp.Integer(0)),
                R.sign: eta,
            }
            exponents[eta] = sp.expand(step.xreplace(values).xreplace(absent))
            if sp.expand(exponents[eta] - definition) != 0:
                raise ArnnGenError(
                    f"the elimination step of site {k} is not b_{k} on {sorted(edges)}"
                )
        if first[k] < k:  # x_k stays in T_k as eta
            built = (1 + x[k]) / 2 * exponents[1] + (1 - x[k]) / 2 * exponents[-1]
        else:  # summed with its field phi_{k,k} = h_k
            field = concrete(d.phi_site, k)
            if field != S.h[k]:
                raise ArnnGenError(f"phi_{{{k},{k}}} is not h_{k} on {sorted(edges)}")
            plus, minus = close.args
            if not plus.has(bias_plus):
                plus, minus = minus, plus
            terms = [term.xreplace({bias_plus: exponents[1], bias_minus: exponents[-1],
                                    phi_site: field}) for term in (plus, minus)]  # fmt: skip
            built = (1 + x[k]) / 2 * terms[0] + (1 - x[k]) / 2 * terms[1]
        built = sp.expand(built)
    hamiltonian = sp.expand(expand_sums(build_hamiltonian(N)).xreplace(absent))
    if sp.expand(built + S.beta * hamiltonian) != 0:
        raise ArnnGenError(f"the elimination does not give -beta H on {sorted(edges)}")
