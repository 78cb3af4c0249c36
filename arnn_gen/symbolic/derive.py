"""Stage 2: the exact autoregressive conditional P(x_i = +1 | x_<i), derived with SymPy.

Input: a system size (a SymPy symbol ``N`` for the generic derivation, or an integer).
Output: a :class:`Derivation` holding every intermediate of docs/physics.md section 2.

How it works (Note [site split]): the Hamiltonian is built as a SymPy expression with
``IndexedBase`` couplings ``J[s, l]`` (s < l), fields ``h[s]`` and spins ``x[s]``,

    H = - sum_{s=0}^{N-1} sum_{l=s+1}^{N-1} J[s,l] x[s] x[l] - sum_{s=0}^{N-1} h[s] x[s].

:func:`split_by_site` splits every summation range at the site ``i`` into the earlier part
(``< i``), the site itself and the later part (``> i``), working out from the limits alone
which of the three parts each (possibly nested) range can reach. Each resulting term is then
classified by the positions of the spins it holds into the five groups

    earlier-earlier, earlier-site, site-later, earlier-later, later-later,

where a field term h_s x_s joins the group whose cavity field it feeds (h_i x_i goes with
earlier-site, h_l x_l with earlier-later). The conditional is formed from the groups:
earlier-earlier cancels between numerator and denominator, earlier-site is x_i phi_{i,i}
(the residual term 2 beta phi_{i,i}), and the rest defines rho_i^{+-}, the partition function
of the later spins in the cavity fields phi_{i,l} +- J_{i,l}. Nothing of this is read off a
table: the cavity fields and shifts are extracted from the split terms.

For a concrete N and site, :meth:`Derivation.at` substitutes the numbers and expands every
sum, ``rho^{+-}`` included, into explicit sums over the configurations of x_>i.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp
from sympy.concrete.expr_with_limits import ExprWithLimits

from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.nn_functions import PLUS_MINUS, Equation, latex, sigmoid, to_elementary

__all__ = [
    "GROUPS",
    "Derivation",
    "SpinSum",
    "Symbols",
    "SYMBOLS",
    "build_hamiltonian",
    "derive_conditional",
    "split_by_site",
    "conditional_function",
    "site_energy",
    "cavity_increment",
]

#: The five groups of terms of H relative to site i, in the order of docs/physics.md section 2.
GROUPS = ("earlier-earlier", "earlier-site", "site-later", "earlier-later", "later-later")

# Position classes of a spin index relative to the site: earlier, the site, later.
_EARLIER, _SITE, _LATER = "earlier", "site", "later"


@dataclass(frozen=True)
class Symbols:
    """The SymPy symbols every stage shares (one instance, :data:`SYMBOLS`)."""

    N: sp.Symbol
    i: sp.Symbol
    beta: sp.Symbol
    x: sp.IndexedBase
    J: sp.IndexedBase
    h: sp.IndexedBase
    phi: sp.IndexedBase
    s: sp.Symbol
    l: sp.Symbol  # noqa: E741 (docs/physics.md names the later site l)
    lp: sp.Symbol


SYMBOLS = Symbols(
    N=sp.Symbol("N", integer=True, positive=True),
    i=sp.Symbol("i", integer=True, nonnegative=True),
    beta=sp.Symbol("beta", positive=True),
    x=sp.IndexedBase("x"),
    J=sp.IndexedBase("J"),
    h=sp.IndexedBase("h"),
    phi=sp.IndexedBase("phi"),
    s=sp.Symbol("s", integer=True),
    l=sp.Symbol("l", integer=True),
    lp=sp.Symbol("l'", integer=True),
)


class SpinSum(ExprWithLimits):
    r"""``SpinSum(f, (l, a, b))``: the sum of f over x[a], ..., x[b] in {-1, +1}.

    ``l`` only names the block of spins (x is :data:`SYMBOLS.x`); with integer limits
    ``doit()`` expands it into the explicit sum over the 2^(b - a + 1) configurations.
    """

    __slots__ = ()

    def doit(self, **hints):
        f = expand_sums(self.function) if hints.get("deep", True) else self.function
        ((_, lo, hi),) = self.limits
        if not (lo.is_Integer and hi.is_Integer):
            return self.func(f, *self.limits)
        sites = range(int(lo), int(hi) + 1)
        x = SYMBOLS.x
        terms = []
        for values in itertools.product((1, -1), repeat=len(sites)):
            terms.append(f.xreplace({x[site]: v for site, v in zip(sites, values, strict=True)}))
        return sp.Add(*terms)

    def _latex(self, printer, exp=None):
        ((_, lo, hi),) = self.limits
        text = r"\sum_{x_{%s}, \ldots, x_{%s} = \pm 1} %s" % (
            printer._print(lo),
            printer._print(hi),
            printer.parenthesize(self.function, 1000),
        )
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)


def expand_sums(expr: sp.Expr) -> sp.Expr:
    """Expand every Sum and SpinSum of ``expr`` whose limits become integers, as explicit
    additions (SymPy's own ``doit`` gives up on nested sums of Indexed terms)."""

    def expand(node: sp.Sum) -> sp.Expr:
        summand, limits = node.function, list(reversed(node.limits))  # outer first
        return _expand_limits(summand, limits)

    def _expand_limits(summand, limits):
        if not limits:
            return expand_sums(summand)
        (var, lo, hi), inner = limits[0], limits[1:]
        if not (lo.is_Integer and hi.is_Integer):
            return sp.Sum(summand, *reversed(limits))
        terms = []
        for value in range(int(lo), int(hi) + 1):
            sub_inner = [(v, a.subs(var, value), b.subs(var, value)) for v, a, b in inner]
            terms.append(_expand_limits(summand.subs(var, value), sub_inner))
        return sp.Add(*terms)

    expr = expr.replace(lambda e: isinstance(e, sp.Sum), expand)
    return expr.replace(lambda e: isinstance(e, SpinSum), lambda e: e.doit())


def build_hamiltonian(N: int | sp.Expr | None = None) -> sp.Expr:
    """H(x) of docs/physics.md section 1 as nested SymPy sums (generic N when ``N`` is None)."""
    S = SYMBOLS
    size = S.N if N is None else sp.sympify(N)
    s, l = S.s, S.l
    pairs = sp.Sum(S.J[s, l] * S.x[s] * S.x[l], (l, s + 1, size - 1), (s, 0, size - 1))
    fields = sp.Sum(S.h[s] * S.x[s], (s, 0, size - 1))
    return -pairs - fields


# --- Note [site split] -----------------------------------------------------------------


def _representative(cls: str, site: sp.Expr, tag: str) -> sp.Expr:
    """A generic value of an index of position class ``cls``, used to compare limits."""
    slack = sp.Symbol(f"t_{tag}", integer=True, nonnegative=True)
    return {_EARLIER: site - 1 - slack, _SITE: site, _LATER: site + 1 + slack}[cls]


def _classes_of_range(lo, hi, site, known: Mapping[sp.Symbol, str], size) -> tuple[str, ...]:
    """Which of earlier / site / later the range [lo, hi] reaches, for every value of the
    outer indices of the given classes (and every N > site)."""
    reps = {var: _representative(cls, site, str(var)) for var, cls in known.items()}
    if isinstance(size, sp.Symbol):
        reps[size] = site + 1 + sp.Symbol("t_N", integer=True, nonnegative=True)
    d_lo = sp.expand(sp.sympify(lo).xreplace(reps) - site)
    d_hi = sp.expand(sp.sympify(hi).xreplace(reps) - site)
    if d_hi.is_negative:
        return (_EARLIER,)
    if d_lo.is_positive:
        return (_LATER,)
    if d_lo.is_nonpositive and d_hi.is_nonnegative:
        return (_EARLIER, _SITE, _LATER)
    raise ArnnGenError(f"cannot place the summation range [{lo}, {hi}] relative to site {site}")


@dataclass(frozen=True)
class _Piece:
    """One term of H after the split: summand, limits (outer first), index classes."""

    summand: sp.Expr
    limits: tuple[tuple[sp.Symbol, sp.Expr, sp.Expr], ...]
    classes: tuple[tuple[sp.Symbol, str], ...]

    def expr(self) -> sp.Expr:
        if not self.limits:
            return self.summand
        return sp.Sum(self.summand, *reversed(self.limits))


def _flatten(term: sp.Expr) -> tuple[sp.Expr, list[tuple]]:
    """(summand, limits outer first) of a possibly nested Sum, coefficients kept inside."""
    coeff, rest = term.as_coeff_Mul()
    limits: list[tuple] = []
    while isinstance(rest, sp.Sum):
        limits.extend(reversed(rest.limits))
        rest = rest.function
    return coeff * rest, limits


def _split_ranges(summand, limits, site, size, known) -> Iterator[_Piece]:
    if not limits:
        yield _Piece(summand, (), tuple(known.items()))
        return
    (var, lo, hi), inner = limits[0], limits[1:]
    reached = _classes_of_range(lo, hi, site, dict(known), size)
    pieces = {
        _EARLIER: (lo, site - 1),
        _SITE: None,
        _LATER: (site + 1, hi),
    }
    for cls in reached:
        if len(reached) == 1:
            bounds = (lo, hi)
        else:
            bounds = pieces[cls]
        sub_known = dict(known)
        if cls == _SITE:
            # The index takes the single value ``site``: no sum remains over it.
            new_inner = [(v, a.subs(var, site), b.subs(var, site)) for v, a, b in inner]
            for piece in _split_ranges(summand.subs(var, site), new_inner, site, size, known):
                yield piece
            continue
        sub_known[var] = cls
        for piece in _split_ranges(summand, inner, site, size, sub_known):
            yield _Piece(piece.summand, ((var, *bounds),) + piece.limits, piece.classes)


def _spin_classes(piece: _Piece, site) -> tuple[str, ...]:
    """Position classes of the spins x[.] of a piece, sorted."""
    classes = dict(piece.classes)
    found = []
    for node in sp.preorder_traversal(piece.summand):
        if isinstance(node, sp.Indexed) and node.base == SYMBOLS.x:
            (index,) = node.indices
            if index == site:
                found.append(_SITE)
            elif index in classes:
                found.append(classes[index])
            else:
                raise ArnnGenError(f"spin index {index} is neither the site nor summed over")
    return tuple(sorted(found))


_GROUP_OF = {
    (_EARLIER,): "earlier-earlier",
    (_EARLIER, _EARLIER): "earlier-earlier",
    (_SITE,): "earlier-site",
    (_EARLIER, _SITE): "earlier-site",
    (_LATER, _SITE): "site-later",
    (_LATER,): "earlier-later",
    (_EARLIER, _LATER): "earlier-later",
    (_LATER, _LATER): "later-later",
}


def split_by_site(hamiltonian: sp.Expr, site, size) -> dict[str, tuple[_Piece, ...]]:
    """Split the sums of ``hamiltonian`` at ``site`` and group the terms (Note [site split]).

    Returns a mapping from each name in :data:`GROUPS` to the pieces in it; summing
    ``piece.expr()`` over all groups gives back H.
    """
    groups: dict[str, list[_Piece]] = {name: [] for name in GROUPS}
    for term in sp.Add.make_args(hamiltonian):
        summand, limits = _flatten(term)
        for piece in _split_ranges(summand, limits, sp.sympify(site), size, {}):
            key = _spin_classes(piece, site)
            if key not in _GROUP_OF:
                raise ArnnGenError(f"H has a term that is not pairwise: {piece.expr()}")
            groups[_GROUP_OF[key]].append(piece)
    return {name: tuple(pieces) for name, pieces in groups.items()}


def _strip_spin(summand: sp.Expr, spin: sp.Indexed) -> sp.Expr:
    """summand / spin, for a summand holding the factor ``spin`` exactly once."""
    factors = list(sp.Mul.make_args(summand))
    if factors.count(spin) != 1:
        raise ArnnGenError(f"term {summand} is not linear in {spin}")
    factors.remove(spin)
    return sp.Mul(*factors)


def _later_coefficient(pieces: Sequence[_Piece], site, size) -> sp.Expr:
    """The coefficient c_l of x[l] in -sum(pieces) = sum_{l>site} c_l x[l], as an expression
    in SYMBOLS.l: each piece's later index becomes the outermost sum (the ranges of an
    earlier-later piece are independent, so the exchange is exact)."""
    S = SYMBOLS
    total = sp.Integer(0)
    for piece in pieces:
        classes = dict(piece.classes)
        later = [lim for lim in piece.limits if classes[lim[0]] == _LATER]
        if len(later) != 1:
            raise ArnnGenError(f"expected one later index in {piece.expr()}")
        var, lo, hi = later[0]
        if sp.simplify(lo - (site + 1)) != 0 or sp.simplify(hi - (size - 1)) != 0:
            raise ArnnGenError(f"later index of {piece.expr()} does not run over l > i")
        rest = [lim for lim in piece.limits if lim[0] != var]
        body = -_strip_spin(piece.summand, S.x[var]).subs(var, S.l)
        rest = [(v, a.subs(var, S.l), b.subs(var, S.l)) for v, a, b in rest]
        total += sp.Sum(body, *reversed(rest)) if rest else body
    return total


def _rename_later(piece: _Piece) -> sp.Expr:
    """-piece with its two later indices renamed l < l' (for readable output)."""
    S = SYMBOLS
    (outer, lo, hi), (inner, lo2, hi2) = piece.limits
    names = {outer: S.l, inner: S.lp}
    summand = -piece.summand.xreplace(names)
    return sp.Sum(sp.Sum(summand, (S.lp, lo2.xreplace(names), hi2)), (S.l, lo, hi))


@dataclass(frozen=True)
class Derivation:
    """The exact conditional of docs/physics.md section 2 and every intermediate.

    Attributes (SymPy objects; ``site`` is the 0-based index i, ``size`` is N):
        hamiltonian    H(x) as nested sums
        groups         GROUPS name -> sum of that group's terms of H
        phi_site       phi_{i,i} = h_i + sum_{s<i} J_{s,i} x_s (from the earlier-site group)
        cavity_field   phi_{i,l} as an expression in l (from the earlier-later group)
        shift          J_{i,l}, the coupling of x_i to x_l (from the site-later group)
        later_later    -H restricted to the later spins (sum over i < l < l')
        rho_plus, rho_minus   SpinSum over x_>i (written with phi[i, l])
        logit          2 beta phi_{i,i} + log rho^+ - log rho^-   (written with phi)
    """

    size: sp.Expr
    site: sp.Expr
    hamiltonian: sp.Expr
    groups: Mapping[str, sp.Expr]
    phi_site: sp.Expr
    cavity_field: sp.Expr
    shift: sp.Expr
    later_later: sp.Expr
    rho_plus: sp.Expr
    rho_minus: sp.Expr
    logit: sp.Expr

    @property
    def beta(self) -> sp.Symbol:
        return SYMBOLS.beta

    def phi_definition(self) -> dict[sp.Expr, sp.Expr]:
        """phi[i, l] -> its expression in the earlier spins (l generic)."""
        return {SYMBOLS.phi[self.site, SYMBOLS.l]: self.cavity_field}

    def expand_phi(self, expr: sp.Expr) -> sp.Expr:
        """Replace every phi[i, l] in ``expr`` by its definition in the earlier spins."""
        field = sp.Lambda(SYMBOLS.l, self.cavity_field)
        return expr.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base == SYMBOLS.phi,
            lambda e: field(e.indices[1]),
        )

    def sympy(self) -> sp.Expr:
        """P(x_i = +1 | x_<i) with phi expanded: a function of x_<i, J, h, beta."""
        return sigmoid(self.expand_phi(self.logit))

    def at(self, N: int, site: int) -> Derivation:
        """The derivation for a concrete system size and site, every sum expanded."""
        if isinstance(N, bool) or not (isinstance(N, int) and N >= 1):
            raise ArnnGenError(f"N must be a positive integer, got {N!r}")
        if isinstance(site, bool) or not (isinstance(site, int) and 0 <= site < N):
            raise ArnnGenError(f"site must be an integer in [0, {N - 1}], got {site!r}")
        values = {SYMBOLS.N: N, SYMBOLS.i: site}

        def concrete(expr):
            return expand_sums(sp.sympify(expr).subs(values))

        return Derivation(
            size=sp.Integer(N),
            site=sp.Integer(site),
            hamiltonian=concrete(self.hamiltonian),
            groups={name: concrete(expr) for name, expr in self.groups.items()},
            phi_site=concrete(self.phi_site),
            cavity_field=concrete(self.cavity_field),
            shift=concrete(self.shift),
            later_later=concrete(self.later_later),
            rho_plus=concrete(self.rho_plus),
            rho_minus=concrete(self.rho_minus),
            logit=concrete(self.logit),
        )

    def equations(self, N: int | None = None) -> tuple[Equation, ...]:
        """The conditional and its definitions, one equation each (N substituted if given)."""
        S = SYMBOLS
        i, l = self.site, S.l
        size = {S.N: N} if N is not None else {}
        rho_p = sp.Symbol(f"rho^+_{i}")  # SymPy prints it as \rho^{+}_{i}
        rho_m = sp.Symbol(f"rho^-_{i}")
        compact = sigmoid(2 * S.beta * S.phi[i, i] + sp.log(rho_p) - sp.log(rho_m))
        return (
            Equation.of(
                r"P(x_{%s} = +1 \mid x_{<%s})" % (latex(i), latex(i)),
                compact,
                lhs_text=f"P(x_{i} = +1 | x_<{i})",
            ),
            Equation.of(S.phi[i, l], self.cavity_field.subs(size)),
            Equation.of(
                r"\rho^{\pm}_{%s}" % latex(i),
                self._rho(sign=PLUS_MINUS).subs(size),
                lhs_text=f"rho^(+-)_{i}",
            ),
        )

    def latex_lines(self, N: int | None = None) -> tuple[str, ...]:
        """:meth:`equations` as LaTeX, one per line (each renders with mathtext)."""
        return tuple(eq.latex() for eq in self.equations(N))

    def latex(self) -> str:
        """All of :meth:`latex_lines` joined with ``\\\\``."""
        return r" \\ ".join(self.latex_lines())

    def _rho(self, sign) -> sp.Expr:
        S = SYMBOLS
        i, l = self.site, S.l
        field = sp.Sum((S.phi[i, l] + sign * self.shift) * S.x[l], (l, i + 1, self.size - 1))
        return SpinSum(
            sp.exp(S.beta * field + S.beta * self.later_later), (l, i + 1, self.size - 1)
        )


def derive_conditional(N: int | None = None, site: int | None = None) -> Derivation:
    """Derive P(x_i = +1 | x_<i) for generic N and i, or for a concrete (N, site)."""
    S = SYMBOLS
    size, i = S.N, S.i
    hamiltonian = build_hamiltonian()
    groups = split_by_site(hamiltonian, i, size)
    summed = {name: sp.Add(*(p.expr() for p in pieces)) for name, pieces in groups.items()}

    # earlier-site group = -x_i phi_{i,i}: divide out the site spin.
    phi_site = sp.Add(
        *(
            -_strip_spin(p.expr(), S.x[i])
            if not p.limits
            else sp.Sum(-_strip_spin(p.summand, S.x[i]), *reversed(p.limits))
            for p in groups["earlier-site"]
        )
    )
    # earlier-later group = -sum_{l>i} (phi_{i,l} - h_l ... ) x_l: the cavity fields.
    cavity_field = _later_coefficient(groups["earlier-later"], i, size)
    # site-later group = -x_i sum_{l>i} J_{i,l} x_l: the shift +- J_{i,l} of the fields.
    shift_pieces = [
        _Piece(_strip_spin(p.summand, S.x[i]), p.limits, p.classes) for p in groups["site-later"]
    ]
    shift = _later_coefficient(shift_pieces, i, size)
    later_later = sp.Add(*(_rename_later(p) for p in groups["later-later"]))

    # The residual term must be the cavity field at l = i: the recurrence of section 2.
    if sp.simplify(sp.expand(phi_site - cavity_field.subs(S.l, i)).doit()) != 0:
        raise ArnnGenError("derivation inconsistency: phi_{i,i} differs from phi_{i,l=i}")

    partial = Derivation(
        size=size,
        site=i,
        hamiltonian=hamiltonian,
        groups=summed,
        phi_site=phi_site,
        cavity_field=cavity_field,
        shift=shift,
        later_later=later_later,
        rho_plus=sp.Integer(0),
        rho_minus=sp.Integer(0),
        logit=sp.Integer(0),
    )
    rho_plus, rho_minus = partial._rho(1), partial._rho(-1)
    logit = 2 * S.beta * S.phi[i, i] + sp.log(rho_plus) - sp.log(rho_minus)
    derivation = Derivation(
        **{
            **{f: getattr(partial, f) for f in partial.__dataclass_fields__},
            "rho_plus": rho_plus,
            "rho_minus": rho_minus,
            "logit": logit,
        }
    )
    if N is None and site is None:
        return derivation
    if N is None or site is None:
        raise ArnnGenError("give both N and site for a concrete derivation, or neither")
    return derivation.at(N, site)


def conditional_function(derivation: Derivation, couplings, fields, beta: float):
    """A numeric function prefix -> P(x_i = +1 | x_<i = prefix) of a concrete derivation.

    ``couplings`` [N, N] and ``fields`` [N] are numbers (numpy arrays); the SymPy
    conditional is lambdified over the earlier spins with numpy.
    """
    S = SYMBOLS
    if not derivation.size.is_Integer:
        raise ArnnGenError("conditional_function needs a concrete derivation (use .at(N, i))")
    N, site = int(derivation.size), int(derivation.site)
    couplings = np.asarray(couplings, dtype=np.float64)
    fields = np.asarray(fields, dtype=np.float64)
    numbers = {S.beta: sp.Float(float(beta), 17)}
    for a in range(N):
        numbers[S.h[a]] = sp.Float(float(fields[a]), 17)
        for b in range(a + 1, N):
            numbers[S.J[a, b]] = sp.Float(float(couplings[a, b]), 17)
    expr = to_elementary(derivation.sympy()).xreplace(numbers)
    prefix = [sp.Symbol(f"x{s}") for s in range(site)]
    expr = expr.xreplace({S.x[s]: prefix[s] for s in range(site)})
    function = sp.lambdify(prefix, expr, modules="numpy")
    return lambda values: float(function(*[float(v) for v in values]))


def site_energy(derivation: Derivation | None = None, *, check_up_to: int = 5) -> sp.Expr:
    """-x_i phi_{i,i}: the terms of H(x) that site i forms with the earlier sites and its own
    field (the earlier-site group of the split). Each pair s < i and each field term lies in
    the group of exactly one site, so H(x) = sum_i -x_i phi_{i,i}: what the dense networks
    evaluate from the fields phi_{i,i} of their first layer. Checked by expansion, the group
    against -x_i phi_{i,i} and the sum over the sites against H, for N = 1..check_up_to
    (:class:`ArnnGenError` if either differs)."""
    S = SYMBOLS
    d = derivation or derive_conditional()
    i = d.site
    energy = -S.x[i] * S.phi[i, i]
    for N in range(1, check_up_to + 1):
        total = sp.Integer(0)
        for site in range(N):
            values = {S.N: N, i: site}
            group = expand_sums(d.groups["earlier-site"].subs(values))
            term = expand_sums(energy.xreplace({S.phi[i, i]: d.phi_site}).subs(values))
            if sp.expand(group - term) != 0:
                raise ArnnGenError(f"the earlier-site group of site {site} is not -x_i phi_ii")
            total += term
        if sp.expand(total - expand_sums(build_hamiltonian(N))) != 0:
            raise ArnnGenError(f"sum_i -x_i phi_ii differs from H(x) at N = {N}")
    return energy


def cavity_increment(derivation: Derivation | None = None, *, check_up_to: int = 4) -> sp.Expr:
    """phi_{i+1,l} - phi_{i,l} = J_{i,l} x_i: what fixing x_i adds to the cavity field of every
    later site l, so that ancestral sampling carries the fields from site to site in
    O(N - i) each. Read off the derivation (the site-later shift times x_i) and checked
    against the difference of the cavity fields at every concrete i < l < N <= check_up_to
    (:class:`ArnnGenError` if it differs)."""
    S = SYMBOLS
    d = derivation or derive_conditional()
    i, l = d.site, S.l
    increment = d.shift * S.x[i]
    for N in range(2, check_up_to + 1):
        for site in range(N - 1):
            for later in range(site + 1, N):
                values = {S.N: N, l: later}
                after = expand_sums(d.cavity_field.subs({**values, i: site + 1}))
                before = expand_sums(d.cavity_field.subs({**values, i: site}))
                step = expand_sums(increment.subs({**values, i: site}))
                if sp.expand(after - before - step) != 0:
                    raise ArnnGenError(
                        f"phi_{{i+1,l}} - phi_{{i,l}} is not J_il x_i at i = {site}, l = {later}"
                    )
    return increment
